//! The connection catalogue: connections created through the CLI or API (in the store) and
//! connections declared in configuration files (read-only), under one set of names.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Error;
use crate::clock::Clock;
use crate::config::ConfiguredConnection;
use crate::model::StaticUser;
use crate::model::{Connection, ConnectionId, ConnectionName, ConnectionSpec, InvalidInput};
use crate::store::{Store, StoreError};
use crate::ttl::{TTL, TtlCache};

/// Where a connection is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Created through the CLI or API; editable.
    Store,
    /// Declared in this configuration file; change it there.
    File(String),
}

/// A stored connection with the name of a declared one. Both are listed; using the name is an
/// error ([`Error::NameClash`]) until one is removed (`remove` removes the stored one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameClash {
    pub name: String,
    /// The configuration file that declares the name.
    pub origin: String,
}

impl std::fmt::Display for NameClash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connection `{name}` is declared in {origin} and also stored (with its own accounts); \
             commands that use it fail until one is gone: remove or rename it in {origin}, or \
             remove the stored one with `exgate connection remove {name}`",
            name = self.name,
            origin = self.origin
        )
    }
}

#[derive(Debug, Clone)]
pub struct ConnectionEntry {
    pub connection: Connection,
    pub source: Source,
}

#[derive(Debug)]
pub struct Connections {
    store: Arc<dyn Store>,
    configured: Vec<ConnectionEntry>,
    /// The declared connections again, shared ([`Connections::get_shared`]), in the same order.
    configured_shared: Vec<Arc<Connection>>,
    clock: Arc<dyn Clock>,
    /// Stored connections by lower-case name, and by ID.
    by_name: TtlCache<String, Arc<Connection>>,
    by_id: TtlCache<ConnectionId, Connection>,
    static_users: TtlCache<ConnectionId, Arc<Vec<StaticUser>>>,
    /// The lower-case names of the stored connections (to find clashes with declared ones).
    stored_names: TtlCache<(), Arc<Vec<String>>>,
    /// Every stored connection, by name (a command that names none lists them, then uses one).
    stored: TtlCache<(), Vec<Connection>>,
}

fn parse_name(name: &str) -> Result<ConnectionName, Error> {
    name.parse::<ConnectionName>()
        .map_err(|e| InvalidInput::new("name", e.0).into())
}

/// A declared connection's ID, stable across restarts so that accounts can refer to it.
fn configured_id(name: &ConnectionName) -> ConnectionId {
    let digest = Sha256::digest(format!(
        "exgate/connection/{}",
        name.as_str().to_ascii_lowercase()
    ));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // A v8 UUID is "custom": derived here from the name.
    ConnectionId::from_uuid(Uuid::new_v8(bytes))
}

impl Connections {
    pub fn new(
        store: Arc<dyn Store>,
        configured: Vec<ConfiguredConnection>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let configured: Vec<ConnectionEntry> = configured
            .into_iter()
            .map(|c| ConnectionEntry {
                connection: Connection {
                    id: configured_id(&c.name),
                    name: c.name,
                    settings: c.settings,
                    created_at: c.modified,
                    updated_at: c.modified,
                },
                source: Source::File(c.origin),
            })
            .collect();
        let configured_shared = configured
            .iter()
            .map(|e| Arc::new(e.connection.clone()))
            .collect();
        Self {
            store,
            configured,
            configured_shared,
            clock,
            by_name: TtlCache::new(TTL),
            by_id: TtlCache::new(TTL),
            static_users: TtlCache::new(TTL),
            stored_names: TtlCache::new(TTL),
            stored: TtlCache::new(TTL),
        }
    }

    /// Whether a connection of this name (in any case) is stored.
    async fn is_stored(&self, name: &str) -> Result<bool, Error> {
        let names = match self.stored_names.get(&()) {
            Some(names) => names,
            None => {
                let names: Arc<Vec<String>> = Arc::new(
                    self.store
                        .connections()
                        .await?
                        .iter()
                        .map(|c| c.name.as_str().to_ascii_lowercase())
                        .collect(),
                );
                self.stored_names.put((), Arc::clone(&names));
                names
            }
        };
        Ok(names.iter().any(|n| n.eq_ignore_ascii_case(name)))
    }

    /// Stored connections whose name a configuration file also declares.
    pub async fn clashes(&self) -> Result<Vec<NameClash>, Error> {
        let mut clashes = Vec::new();
        for entry in &self.configured {
            if self.is_stored(entry.connection.name.as_str()).await?
                && let Source::File(origin) = &entry.source
            {
                clashes.push(NameClash {
                    name: entry.connection.name.to_string(),
                    origin: origin.clone(),
                });
            }
        }
        Ok(clashes)
    }

    fn configured(&self, name: &ConnectionName) -> Option<&ConnectionEntry> {
        self.configured.iter().find(|e| {
            e.connection
                .name
                .as_str()
                .eq_ignore_ascii_case(name.as_str())
        })
    }

    /// Every connection, sorted by name; where a declared and a stored connection share a name,
    /// both (the declared one first; see [`Connections::clashes`]).
    pub async fn list(&self) -> Result<Vec<ConnectionEntry>, Error> {
        let mut all = self.configured.clone();
        let stored = match self.stored.get(&()) {
            Some(stored) => stored,
            None => {
                let stored = self.store.connections().await?;
                // What was read answers the lookups that usually follow (`resolve` -> `get`).
                self.stored.put((), stored.clone());
                self.stored_names.put(
                    (),
                    Arc::new(
                        stored
                            .iter()
                            .map(|c| c.name.as_str().to_ascii_lowercase())
                            .collect(),
                    ),
                );
                for c in &stored {
                    self.by_name
                        .put(c.name.as_str().to_ascii_lowercase(), Arc::new(c.clone()));
                    self.by_id.put(c.id, c.clone());
                }
                stored
            }
        };
        for connection in stored {
            all.push(ConnectionEntry {
                connection,
                source: Source::Store,
            });
        }
        all.sort_by(|a, b| {
            a.connection
                .name
                .as_str()
                .to_ascii_lowercase()
                .cmp(&b.connection.name.as_str().to_ascii_lowercase())
        });
        Ok(all)
    }

    pub async fn get(&self, name: &str) -> Result<ConnectionEntry, Error> {
        let (connection, declared) = self.lookup(name).await?;
        Ok(match declared {
            Some(i) => self.configured[i].clone(),
            None => ConnectionEntry {
                connection: Connection::clone(&connection),
                source: Source::Store,
            },
        })
    }

    /// [`Connections::get`] without a copy of the connection: what every request asks.
    pub async fn get_shared(&self, name: &str) -> Result<Arc<Connection>, Error> {
        Ok(self.lookup(name).await?.0)
    }

    /// The named connection, and the index of the declared one it is, if it is.
    async fn lookup(&self, name: &str) -> Result<(Arc<Connection>, Option<usize>), Error> {
        // A declared name, or a stored one cached under the name as given (lower case), is
        // valid: found without parsing or allocating.
        if let Some(i) = self
            .configured
            .iter()
            .position(|e| e.connection.name.as_str().eq_ignore_ascii_case(name))
        {
            let entry = &self.configured[i];
            if self.is_stored(name).await?
                && let Source::File(origin) = &entry.source
            {
                return Err(Error::NameClash {
                    name: entry.connection.name.to_string(),
                    origin: origin.clone(),
                });
            }
            return Ok((Arc::clone(&self.configured_shared[i]), Some(i)));
        }
        if !name.bytes().any(|b| b.is_ascii_uppercase())
            && let Some(c) = self.by_name.get_by(name)
        {
            return Ok((c, None));
        }
        let name = parse_name(name)?;
        let key = name.as_str().to_ascii_lowercase();
        let connection = match self.by_name.get(&key) {
            Some(c) => c,
            None => {
                let c = Arc::new(self.store.connection(&name).await?.ok_or_else(|| {
                    Error::NotFound {
                        what: "connection",
                        name: name.to_string(),
                    }
                })?);
                self.by_name.put(key, Arc::clone(&c));
                c
            }
        };
        Ok((connection, None))
    }

    /// The named connection, or the only one there is when no name is given.
    pub async fn resolve(&self, name: Option<&str>) -> Result<ConnectionEntry, Error> {
        if let Some(name) = name {
            return self.get(name).await;
        }
        let mut all = self.list().await?;
        all.dedup_by(|a, b| {
            a.connection
                .name
                .as_str()
                .eq_ignore_ascii_case(b.connection.name.as_str())
        });
        match all.len() {
            // A declared and a stored connection of the same name are one name, and an error.
            1 => self.get(all.remove(0).connection.name.as_str()).await,
            0 => Err(Error::NotFound {
                what: "connection",
                name: "(any)".into(),
            }),
            _ => {
                let names: Vec<String> =
                    all.iter().map(|e| e.connection.name.to_string()).collect();
                Err(InvalidInput::missing(
                    "connection",
                    format!(
                        "there are several connections ({}); name one",
                        names.join(", ")
                    ),
                )
                .into())
            }
        }
    }

    /// The connection with this ID (accounts and tokens refer to connections by ID).
    pub async fn by_id(&self, id: ConnectionId) -> Result<Connection, Error> {
        if let Some(entry) = self.configured.iter().find(|e| e.connection.id == id) {
            return Ok(entry.connection.clone());
        }
        if let Some(c) = self.by_id.get(&id) {
            return Ok(c);
        }
        let c = self
            .store
            .connection_by_id(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "connection",
                name: id.to_string(),
            })?;
        self.by_id.put(id, c.clone());
        Ok(c)
    }

    /// The static users of a connection.
    pub async fn static_users(&self, connection: ConnectionId) -> Result<Vec<StaticUser>, Error> {
        let users = self.static_users_shared(connection).await?;
        Ok(users.as_ref().clone())
    }

    /// [`Connections::static_users`] without a copy: what every request asks.
    pub async fn static_users_shared(
        &self,
        connection: ConnectionId,
    ) -> Result<Arc<Vec<StaticUser>>, Error> {
        if let Some(users) = self.static_users.get(&connection) {
            return Ok(users);
        }
        let users = Arc::new(self.store.static_users(connection).await?);
        self.static_users.put(connection, Arc::clone(&users));
        Ok(users)
    }

    /// Maps a principal to a mailbox the connection's service identity acts on.
    pub async fn add_static_user(&self, user: &StaticUser) -> Result<(), Error> {
        self.static_users.clear();
        self.store
            .insert_static_user(user)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => Error::AlreadyExists {
                    what: "static user",
                    name: user.principal.to_string(),
                },
                other => other.into(),
            })
    }

    pub async fn remove_static_user(&self, user: &StaticUser) -> Result<(), Error> {
        self.static_users.clear();
        self.store.delete_static_user(user.id).await?;
        Ok(())
    }

    /// Drops every cached connection and static user (another process changed them).
    pub fn forget_cached(&self) {
        self.forget();
    }

    /// Drops the cached static users (another process changed them).
    pub fn forget_cached_static_users(&self) {
        self.static_users.clear();
    }

    fn forget(&self) {
        self.stored.clear();
        self.stored_names.clear();
        self.by_name.clear();
        self.by_id.clear();
        self.static_users.clear();
    }

    /// Validates `spec` and stores a new connection. Nothing is written if any check fails.
    pub async fn add(&self, name: &str, spec: &ConnectionSpec) -> Result<Connection, Error> {
        let name = parse_name(name)?;
        if self.configured(&name).is_some() {
            return Err(Error::AlreadyExists {
                what: "connection",
                name: name.to_string(),
            });
        }
        let settings = spec.validate()?;
        let now = self.clock.now();
        let connection = Connection {
            id: ConnectionId::new_random(),
            name,
            settings,
            created_at: now,
            updated_at: now,
        };
        self.forget();
        self.store
            .insert_connection(&connection)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => Error::AlreadyExists {
                    what: "connection",
                    name: connection.name.to_string(),
                },
                other => other.into(),
            })?;
        tracing::info!(connection = %connection.name, id = %connection.id, "connection added");
        Ok(connection)
    }

    /// Applies the fields `change` sets; see [`ConnectionSettings::edited`](crate::model::ConnectionSettings::edited).
    pub async fn edit(
        &self,
        name: &str,
        change: ConnectionSpec,
        clear_credential: bool,
    ) -> Result<Connection, Error> {
        let entry = self.get(name).await?;
        if let Source::File(origin) = entry.source {
            return Err(Error::ReadOnly {
                name: entry.connection.name.to_string(),
                origin,
            });
        }
        let mut connection = entry.connection;
        connection.settings = connection
            .settings
            .edited(change, clear_credential)
            .validate()?;
        connection.updated_at = self.clock.now();
        self.forget();
        if !self.store.update_connection(&connection).await? {
            return Err(Error::NotFound {
                what: "connection",
                name: connection.name.to_string(),
            });
        }
        tracing::info!(connection = %connection.name, "connection edited");
        Ok(connection)
    }

    /// Deletes a stored connection with its accounts and static users.
    /// Where a declared connection has the name of a stored one, removes the stored one (the
    /// declared one cannot be removed here, and is usable again afterwards).
    pub async fn remove(&self, name: &str) -> Result<(), Error> {
        let parsed = parse_name(name)?;
        let stored_name = match self.configured(&parsed) {
            Some(declared) if !self.is_stored(parsed.as_str()).await? => {
                return Err(Error::ReadOnly {
                    name: declared.connection.name.to_string(),
                    origin: match &declared.source {
                        Source::File(origin) => origin.clone(),
                        Source::Store => String::new(),
                    },
                });
            }
            Some(_) => parsed,
            None => self.get(name).await?.connection.name,
        };
        self.forget();
        if !self.store.delete_connection(&stored_name).await? {
            return Err(Error::NotFound {
                what: "connection",
                name: stored_name.to_string(),
            });
        }
        tracing::info!(connection = %stored_name, "connection removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use time::macros::datetime;

    use super::*;
    use crate::clock::MockClock;
    use crate::config::ConfiguredConnection;
    use crate::secret::{Secret, Vault};
    use crate::store::SqliteStore;

    fn spec() -> ConnectionSpec {
        ConnectionSpec {
            tenant: Some("contoso.onmicrosoft.com".into()),
            auth: Some("oauth2-delegated".into()),
            client_id: Some("11111111-2222-3333-4444-555555555555".into()),
            ..ConnectionSpec::default()
        }
    }

    async fn service(dir: &tempfile::TempDir, clock: MockClock) -> Connections {
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("k")).unwrap());
        let store = SqliteStore::open(&dir.path().join("db"), vault)
            .await
            .unwrap();
        let declared = ConfiguredConnection {
            name: "declared".parse().unwrap(),
            settings: spec().validate().unwrap(),
            origin: "/etc/exgate/exgate.toml".into(),
            modified: datetime!(2025-06-01 0:00 UTC),
        };
        Connections::new(Arc::new(store), vec![declared], Arc::new(clock))
    }

    #[tokio::test]
    async fn timestamps_come_from_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let mut clock = MockClock::new();
        let mut seq = mockall::Sequence::new();
        clock
            .expect_now()
            .times(1)
            .in_sequence(&mut seq)
            .return_const(datetime!(2026-01-01 0:00 UTC));
        clock
            .expect_now()
            .times(1)
            .in_sequence(&mut seq)
            .return_const(datetime!(2026-02-01 0:00 UTC));
        let svc = service(&dir, clock).await;
        let added = svc.add("prod", &spec()).await.unwrap();
        assert_eq!(added.created_at, datetime!(2026-01-01 0:00 UTC));
        let change = ConnectionSpec {
            backend: Some("ews".into()),
            ..ConnectionSpec::default()
        };
        let edited = svc.edit("PROD", change, false).await.unwrap();
        assert_eq!(edited.created_at, datetime!(2026-01-01 0:00 UTC));
        assert_eq!(edited.updated_at, datetime!(2026-02-01 0:00 UTC));
        assert_eq!(svc.get("prod").await.unwrap().connection, edited);
    }

    #[tokio::test]
    async fn declared_connections_are_listed_and_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut clock = MockClock::new();
        clock
            .expect_now()
            .return_const(datetime!(2026-01-01 0:00 UTC));
        let svc = service(&dir, clock).await;
        svc.add("stored", &spec()).await.unwrap();
        let names: Vec<_> = svc
            .list()
            .await
            .unwrap()
            .iter()
            .map(|e| e.connection.name.to_string())
            .collect();
        assert_eq!(names, ["declared", "stored"]);
        let declared = svc.get("declared").await.unwrap();
        assert_eq!(
            declared.source,
            Source::File("/etc/exgate/exgate.toml".into())
        );
        assert_eq!(
            declared.connection.id,
            svc.get("Declared").await.unwrap().connection.id
        );

        let err = svc.remove("declared").await.unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        let err = svc.add("DECLARED", &spec()).await.unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        let err = svc
            .edit("declared", ConnectionSpec::default(), false)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("declared in /etc/exgate/exgate.toml"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_declared_name_that_is_also_stored_is_reported_and_never_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let mut clock = MockClock::new();
        clock
            .expect_now()
            .return_const(datetime!(2026-01-01 0:00 UTC));
        // Stored first, through the CLI or API; declared in a file later.
        {
            let vault = Arc::new(Vault::open_or_create(&dir.path().join("k")).unwrap());
            let store = SqliteStore::open(&dir.path().join("db"), vault)
                .await
                .unwrap();
            let mut clock = MockClock::new();
            clock
                .expect_now()
                .return_const(datetime!(2025-01-01 0:00 UTC));
            Connections::new(Arc::new(store), vec![], Arc::new(clock))
                .add("Declared", &spec())
                .await
                .unwrap();
        }
        let svc = service(&dir, clock).await;

        // Both are listed, and the clash is reported.
        let listed: Vec<_> = svc
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.connection.name.to_string(), e.source))
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "declared".to_owned(),
                    Source::File("/etc/exgate/exgate.toml".into())
                ),
                ("Declared".to_owned(), Source::Store),
            ]
        );
        let clashes = svc.clashes().await.unwrap();
        assert_eq!(
            clashes,
            [NameClash {
                name: "declared".into(),
                origin: "/etc/exgate/exgate.toml".into()
            }]
        );
        assert!(
            clashes[0]
                .to_string()
                .contains("`exgate connection remove declared`"),
            "{}",
            clashes[0]
        );

        // Using the name is an error that says what to do, by name or as the only name.
        for err in [
            svc.get("DECLARED").await.unwrap_err(),
            svc.resolve(None).await.unwrap_err(),
        ] {
            assert!(matches!(err, Error::NameClash { .. }), "{err}");
            assert_eq!(err.kind(), crate::ErrorKind::Conflict);
            assert!(
                err.to_string()
                    .contains("declared in /etc/exgate/exgate.toml and also stored"),
                "{err}"
            );
        }

        // Removing the name removes the stored one; the declared one is then used.
        svc.remove("declared").await.unwrap();
        assert!(svc.clashes().await.unwrap().is_empty());
        assert_eq!(
            svc.get("declared").await.unwrap().source,
            Source::File("/etc/exgate/exgate.toml".into())
        );
        assert!(matches!(
            svc.remove("declared").await,
            Err(Error::ReadOnly { .. })
        ));
    }

    #[tokio::test]
    async fn invalid_edits_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut clock = MockClock::new();
        clock
            .expect_now()
            .return_const(datetime!(2026-01-01 0:00 UTC));
        let svc = service(&dir, clock).await;
        let before = svc.add("prod", &spec()).await.unwrap();
        let change = ConnectionSpec {
            flow: Some("device-code".into()),
            client_secret: Some(Secret::new("abc8Q~secret-value-0123456789")),
            ..ConnectionSpec::default()
        };
        let err = svc.edit("prod", change, false).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Invalid);
        assert_eq!(svc.get("prod").await.unwrap().connection, before);
        assert!(matches!(
            svc.remove("nope").await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            svc.add("bad name", &spec()).await,
            Err(Error::Invalid(_))
        ));
    }
}
