//! Layered configuration: built-in defaults, then the system file, the user's file, the file given
//! with `--config`, then `EXGATE__SECTION__KEY` variables; resolved into checked [`Settings`].
//!
//! Every source is first read on its own so that an unknown key is reported with the file (or
//! variable) it is in. Values are checked after merging, and an error names the key, the source the
//! winning value came from, and what is expected.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use crate::admin;
use crate::model::{ConnectionName, ConnectionSettings, ConnectionSpec, EndpointUrl};
use crate::secret::{Secret, SecretRef};

/// The file name looked for in each configuration folder.
pub const FILE_NAME: &str = "exgate.toml";
/// The system-wide file, unless `EXGATE_SYSTEM_CONFIG` names another.
pub const SYSTEM_FILE: &str = "/etc/exgate/exgate.toml";
/// Where the gateway listens unless configured otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8087";
const ENV_PREFIX: &str = "EXGATE__";
/// `limits.max_item_mb` may be set within these.
const MAX_ITEM_MB: std::ops::RangeInclusive<u64> = 1..=4096;
/// `limits.max_wait_secs` may be at most this.
const MAX_WAIT_SECS: u64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown key `{key}` in {origin}; see docs/configuration.md for the keys exgate reads")]
    UnknownKey { key: String, origin: String },
    #[error("{key} (from {origin}): {message}")]
    Invalid {
        key: String,
        origin: String,
        message: String,
    },
    #[error("{path} cannot be read as TOML: {message}", path = .path.display())]
    Parse { path: PathBuf, message: String },
    /// A TOML syntax error, told by its position and key: the line itself may hold a secret.
    #[error("{path}:{line}:{column}: TOML syntax error{}: {message}; fix the file at that position", key.as_deref().map(|k| format!(" at key `{k}`")).unwrap_or_default(), path = .path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        key: Option<String>,
        message: String,
    },
    #[error("the configuration file {path} given with --config does not exist", path = .path.display())]
    Missing { path: PathBuf },
    #[error("the configuration could not be read: {0}")]
    Other(String),
    #[error(
        "cannot tell where to keep exgate's data: HOME is not set; set HOME or XDG_DATA_HOME, or store.path and secrets.master_key_file"
    )]
    NoHome,
}

/// The process environment, captured once so that loading is a pure function of its inputs.
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn dir(&self, xdg: &str, home_relative: &str) -> Option<PathBuf> {
        self.get(xdg)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| self.get("HOME").map(|h| Path::new(&h).join(home_relative)))
            .map(|d| d.join("exgate"))
    }

    /// `$XDG_CONFIG_HOME/exgate`, or `~/.config/exgate`.
    pub fn config_dir(&self) -> Option<PathBuf> {
        self.dir("XDG_CONFIG_HOME", ".config")
    }

    /// `$XDG_DATA_HOME/exgate`, or `~/.local/share/exgate`.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.dir("XDG_DATA_HOME", ".local/share")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    /// A configured admin password; `None` means the generated one kept (hashed) in the store.
    pub admin_password: Option<Secret>,
    /// Where browsers reach the gateway (for the sign-in redirect URI); default `http://<listen>`.
    pub public_url: Option<EndpointUrl>,
    /// Reverse proxies whose `X-Forwarded-For`/`Forwarded` the gateway believes (IPs or CIDRs).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `keep_refresh_tokens_alive`: refresh accounts idle for longer than this
    /// (`keep_alive_idle_days`), so Entra ID's 90 days of inactivity never pass; `None`: off.
    pub keep_refresh_tokens_alive: Option<time::Duration>,
}

/// The days an account may be idle before the gateway keeps its refresh token alive
/// (`server.keep_alive_idle_days`); under Entra ID's 90.
pub const KEEP_ALIVE_IDLE_DAYS: std::ops::RangeInclusive<u32> = 1..=89;
/// Its default.
pub const KEEP_ALIVE_IDLE_DAYS_DEFAULT: u32 = 30;

/// `[bridge]`: where `exgate bridge` listens and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The address every listener binds (default 127.0.0.1).
    pub listen: std::net::IpAddr,
    /// Each protocol's port, `None` when the protocol is left out; 0 picks a free port.
    pub imap_port: Option<u16>,
    pub pop_port: Option<u16>,
    pub smtp_port: Option<u16>,
    /// A PEM certificate chain and its key, for TLS towards clients.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// TLS from the first byte (`tls = "implicit"`) rather than STARTTLS/STLS.
    pub tls_implicit: bool,
    pub max_connections: usize,
    pub idle_timeout: std::time::Duration,
}

/// `[notify]`: how the gateway learns of mailbox changes and hands them to applications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Microsoft Graph posts notifications to `server.public_url` (which Graph must reach over
    /// HTTPS); off: Graph watches are polled every `poll_secs`.
    pub graph_push: bool,
    /// How often a watch whose backend cannot tell of changes is synced.
    pub poll: std::time::Duration,
    /// How often a watch whose backend tells of changes is synced anyway.
    pub safety_poll: std::time::Duration,
    /// How long a webhook's failing event is retried before it becomes a dead letter.
    pub webhook_retry: std::time::Duration,
    /// Webhooks may be plain `http://` beyond loopback (a private network without TLS).
    pub allow_http_webhooks: bool,
    /// How long the journal keeps events (streams resume, webhooks catch up within it).
    pub keep_events: std::time::Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            graph_push: true,
            poll: std::time::Duration::from_secs(30),
            safety_poll: std::time::Duration::from_secs(300),
            webhook_retry: std::time::Duration::from_secs(26 * 3600),
            allow_http_webhooks: false,
            keep_events: std::time::Duration::from_secs(7 * 86_400),
        }
    }
}

/// `notify.poll_secs`, `notify.safety_poll_secs`, `notify.webhook_retry_hours`,
/// `notify.keep_events_days`: their ranges.
pub const NOTIFY_POLL_SECS: std::ops::RangeInclusive<u64> = 1..=3600;
pub const NOTIFY_SAFETY_POLL_SECS: std::ops::RangeInclusive<u64> = 10..=86_400;
pub const NOTIFY_RETRY_HOURS: std::ops::RangeInclusive<u64> = 24..=168;
pub const NOTIFY_KEEP_DAYS: std::ops::RangeInclusive<u64> = 1..=90;

/// The bridge's default ports: the well-known ones plus 1000, so no privileges are needed.
pub const BRIDGE_PORTS: (u16, u16, u16) = (1143, 1110, 1587);
/// How many bridge sessions may run at once (`bridge.max_connections`).
pub const BRIDGE_MAX_CONNECTIONS: std::ops::RangeInclusive<usize> = 1..=10_000;
/// How long a bridge session may be idle (`bridge.idle_timeout_secs`); RFC 3501 asks servers
/// to wait at least 30 minutes, the default.
pub const BRIDGE_IDLE_SECS: std::ops::RangeInclusive<u64> = 10..=86_400;

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            listen: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            imap_port: Some(BRIDGE_PORTS.0),
            pop_port: Some(BRIDGE_PORTS.1),
            smtp_port: Some(BRIDGE_PORTS.2),
            tls_cert_file: None,
            tls_key_file: None,
            tls_implicit: false,
            max_connections: 256,
            idle_timeout: std::time::Duration::from_secs(1800),
        }
    }
}

/// A connection declared in a configuration file. It is read-only for the CLI and the API.
#[derive(Debug)]
pub struct ConfiguredConnection {
    pub name: ConnectionName,
    pub settings: ConnectionSettings,
    /// The file that declares it.
    pub origin: String,
    /// When that file was last changed.
    pub modified: time::OffsetDateTime,
}

/// Checked settings.
#[derive(Debug)]
pub struct Settings {
    /// The SQLite database file (`store.path`, or the path of a `sqlite://` `store.url`); not
    /// used when the store is PostgreSQL.
    pub store_path: PathBuf,
    /// Where the store is: the SQLite file above, or PostgreSQL (`store.url`).
    pub store: crate::store::StoreLocation,
    /// The 0600 file holding the master key that seals stored secrets.
    pub master_key_file: PathBuf,
    pub server: ServerSettings,
    /// A tracing filter directive such as `info` or `exgate_core=debug`.
    pub log_level: String,
    pub connections: Vec<ConfiguredConnection>,
    pub network: NetworkSettings,
    /// The per-mailbox limits the governor keeps (Microsoft's published ones by default).
    pub governor: crate::governor::GovernorPolicy,
    /// The per-mailbox limits of EWS requests (`[ews]`; modelled on Exchange's default
    /// throttling policy), kept by a governor of their own.
    pub ews_governor: crate::governor::GovernorPolicy,
    /// The local bridge (`exgate bridge`).
    pub bridge: BridgeConfig,
    /// Item sizes and waits of the mailbox pipeline (`[limits]`).
    pub limits: crate::pipeline::Limits,
    /// Change notifications (`[notify]`).
    pub notify: NotifyConfig,
    /// The configuration files that were read, in order.
    pub files: Vec<PathBuf>,
}

/// How exgate reaches identity providers and Microsoft's APIs.
#[derive(Debug, Clone, Default)]
pub struct NetworkSettings {
    /// Replaces the Entra ID login host of the connection's cloud (`login.microsoftonline.com`
    /// and its sovereign twins), for a proxy or a test double.
    pub authority_host: Option<EndpointUrl>,
    /// Replaces Microsoft Graph's v1.0 root of the connection's cloud
    /// (`https://graph.microsoft.com/v1.0` and its sovereign twins).
    pub graph_url: Option<EndpointUrl>,
    /// Replaces the Exchange Online admin API's root (`https://outlook.office365.com/adminapi/beta`
    /// and its sovereign twins), where `exgate app register --exchange` runs the cmdlets Graph
    /// cannot (`New-ServicePrincipal`, `Add-MailboxPermission`), for a proxy or a test double.
    pub exchange_admin_url: Option<EndpointUrl>,
    /// Replaces Exchange Online's EWS endpoint (`https://outlook.office365.com/EWS/Exchange.asmx`)
    /// for Online connections that chose the EWS backend, for a proxy or a test double.
    pub ews_url: Option<EndpointUrl>,
    /// PEM certificates to trust besides the system's roots (an internal AD FS, a TLS proxy).
    pub ca_pem: Option<Vec<u8>>,
    /// An autodiscover POX endpoint asked instead of the address's domain's candidates (a
    /// proxy, or exgate-mock in tests); its origin receives the credentials.
    pub autodiscover_url: Option<EndpointUrl>,
    /// Replace Exchange Online's IMAP, POP and SMTP servers of every Online connection that
    /// does not name its own (`[endpoints] imap_url / pop_url / smtp_url`), for a proxy or a
    /// test double.
    pub imap_url: Option<crate::mail::MailUrl>,
    pub pop_url: Option<crate::mail::MailUrl>,
    pub smtp_url: Option<crate::mail::MailUrl>,
}

impl NetworkSettings {
    /// The server of `protocol` for an Online connection in `cloud` whose own URL is `own`:
    /// the connection's, else `[endpoints]`'s, else Exchange Online's.
    pub fn mail_url(
        &self,
        protocol: crate::mail::MailProtocol,
        cloud: crate::model::Cloud,
        own: Option<&crate::mail::MailUrl>,
    ) -> crate::mail::MailUrl {
        use crate::mail::MailProtocol;
        let global = match protocol {
            MailProtocol::Imap => self.imap_url.as_ref(),
            MailProtocol::Pop => self.pop_url.as_ref(),
            MailProtocol::Smtp => self.smtp_url.as_ref(),
        };
        own.or(global)
            .cloned()
            .unwrap_or_else(|| crate::mail::MailUrl::exchange_online(protocol, cloud))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSettings {
    store: RawStore,
    secrets: RawSecrets,
    server: RawServer,
    log: RawLog,
    endpoints: RawEndpoints,
    tls: RawTls,
    graph: RawGraph,
    ews: RawGraph,
    limits: RawLimits,
    bridge: RawBridge,
    notify: RawNotify,
    connections: BTreeMap<String, RawConnection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawNotify {
    graph_push: Option<bool>,
    poll_secs: Option<u64>,
    safety_poll_secs: Option<u64>,
    webhook_retry_hours: Option<u64>,
    allow_http_webhooks: Option<bool>,
    keep_events_days: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawBridge {
    listen: Option<String>,
    protocols: Option<OneOrMany>,
    imap_port: Option<u16>,
    pop_port: Option<u16>,
    smtp_port: Option<u16>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls: Option<String>,
    max_connections: Option<usize>,
    idle_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLimits {
    max_item_mb: Option<u64>,
    max_wait_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawEndpoints {
    authority_host: Option<String>,
    graph_url: Option<String>,
    exchange_admin_url: Option<String>,
    ews_url: Option<String>,
    autodiscover_url: Option<String>,
    imap_url: Option<String>,
    pop_url: Option<String>,
    smtp_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawGraph {
    concurrent: Option<usize>,
    requests: Option<u32>,
    window_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawTls {
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawStore {
    path: Option<PathBuf>,
    url: Option<String>,
    password: Option<String>,
    max_connections: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSecrets {
    master_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawServer {
    listen: Option<String>,
    public_url: Option<String>,
    log_format: Option<String>,
    admin_password: Option<String>,
    trusted_proxies: Option<OneOrMany>,
    keep_refresh_tokens_alive: Option<bool>,
    keep_alive_idle_days: Option<u32>,
}

/// A list in a file, or one comma-separated string (an environment variable).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(&self) -> Vec<&str> {
        match self {
            Self::One(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect(),
            Self::Many(v) => v.iter().map(|s| s.trim()).collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLog {
    level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawConnection {
    target: Option<String>,
    cloud: Option<String>,
    tenant: Option<String>,
    server_version: Option<String>,
    ews_url: Option<String>,
    backend: Option<String>,
    auth: Option<String>,
    client_id: Option<String>,
    flow: Option<String>,
    redirect_uri: Option<String>,
    scopes: Option<Vec<String>>,
    return_urls: Option<Vec<String>>,
    authority: Option<String>,
    /// RFC 8707 resource indicator (custom authorities only).
    resource: Option<String>,
    username: Option<String>,
    /// `file:` or `env:` reference.
    client_secret: Option<String>,
    /// A PEM file holding the certificate (and possibly its key).
    certificate_file: Option<PathBuf>,
    /// `file:` or `env:` reference to the PEM private key.
    private_key: Option<String>,
    /// `file:` or `env:` reference.
    password: Option<String>,
    send: Option<String>,
    imap_url: Option<String>,
    pop_url: Option<String>,
    smtp_url: Option<String>,
    /// When the credential expires: `YYYY-MM-DD` or RFC 3339.
    credential_expires: Option<String>,
}

fn env_var_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.to_ascii_uppercase().replace('.', "__")
    )
}

fn env_source(env: &Env) -> Environment {
    let vars: config::Map<String, String> = env
        .0
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Environment::with_prefix("EXGATE")
        .prefix_separator("__")
        .separator("__")
        .source(Some(vars))
}

fn config_error(e: config::ConfigError) -> ConfigError {
    match e {
        config::ConfigError::FileParse { uri, cause } => ConfigError::Parse {
            path: PathBuf::from(uri.unwrap_or_default()),
            message: cause.to_string(),
        },
        other => ConfigError::Other(other.to_string()),
    }
}

/// Reads one source alone and reports the first key exgate does not know.
fn check_unknown_keys(cfg: Config, origin: impl Fn(&str) -> String) -> Result<(), ConfigError> {
    let mut unknown = Vec::new();
    let result: Result<RawSettings, _> =
        serde_ignored::deserialize(cfg, |path| unknown.push(path.to_string()));
    if let Some(key) = unknown.into_iter().next() {
        let origin = origin(&key);
        return Err(ConfigError::UnknownKey { key, origin });
    }
    result.map(drop).map_err(config_error)
}

/// Where a syntax error is: 1-based line and column of `offset` in `text`, and the key of that
/// line (`table.key`, or the table of a header line) — names only, never a value.
fn syntax_position(text: &str, offset: usize) -> (usize, usize, Option<String>) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before
        .get(line_start..)
        .map_or(1, |s| s.chars().count() + 1);
    let line = text.lines().nth(line_no - 1).unwrap_or_default().trim();
    let header = |l: &str| {
        l.strip_prefix('[')
            .and_then(|l| l.split(']').next())
            .map(|t| t.trim_matches(['[', ']', ' ']).to_owned())
    };
    let table = text
        .lines()
        .take(line_no - 1)
        .filter_map(|l| header(l.trim()))
        .last();
    let key = if line.starts_with('[') {
        header(line)
    } else {
        line.split_once('=').map(|(k, _)| {
            let k = k.trim().to_owned();
            match &table {
                Some(t) if !t.is_empty() => format!("{t}.{k}"),
                _ => k,
            }
        })
    };
    (line_no, column, key.filter(|k| !k.is_empty()))
}

/// Parses one configuration file with exgate's own checks before the `config` crate reads it:
/// a syntax error is told by position and key (the parser's own report quotes the line, which
/// may hold an inline secret), and a value of the wrong type is refused with its key (the
/// `config` crate would turn `store.path = 5` into the path `5`).
fn check_file(path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let table: toml::Table = match toml::from_str(&text) {
        Ok(table) => table,
        Err(e) => {
            let (line, column, key) = syntax_position(&text, e.span().map_or(0, |s| s.start));
            let value = text
                .lines()
                .nth(line - 1)
                .and_then(|l| l.split_once('=').map(|(_, v)| v.trim()))
                .unwrap_or_default();
            // The parser's message, unless it quotes any of the line's value.
            let message = e.message().trim().replace('\n', "; ");
            let quotes_value = value
                .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                .any(|w| w.len() >= 3 && message.contains(w));
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                key,
                message: if quotes_value {
                    "the value is not valid TOML".into()
                } else {
                    message
                },
            });
        }
    };
    let value = toml::Value::Table(table);
    if let Err(e) = serde_path_to_error::deserialize::<_, RawSettings>(value.clone()) {
        let key = e.path().to_string();
        let found = key
            .split('.')
            .try_fold(&value, |v, part| v.get(part))
            .map(toml::Value::type_str);
        let inner = e.into_inner().to_string();
        let expected = inner
            .split_once(", expected ")
            .map(|(_, x)| x.lines().next().unwrap_or_default().trim().to_owned());
        let message = match (expected, found) {
            (Some(expected), Some(found)) => {
                let article = if found.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                format!("expected {expected}, found {article} {found}")
            }
            (Some(expected), None) => format!("expected {expected}"),
            _ => "this value has the wrong type".to_owned(),
        };
        return Err(ConfigError::Invalid {
            key,
            origin: path.display().to_string(),
            message,
        });
    }
    Ok(())
}

/// Which files are read, in order. Missing optional files are skipped.
fn config_files(explicit: Option<&Path>, env: &Env) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    let system = env
        .get("EXGATE_SYSTEM_CONFIG")
        .map_or_else(|| PathBuf::from(SYSTEM_FILE), PathBuf::from);
    files.extend(Some(system).filter(|p| p.is_file()));
    files.extend(
        env.config_dir()
            .map(|d| d.join(FILE_NAME))
            .filter(|p| p.is_file()),
    );
    if let Some(path) = explicit {
        if !path.is_file() {
            return Err(ConfigError::Missing {
                path: path.to_path_buf(),
            });
        }
        files.push(path.to_path_buf());
    }
    Ok(files)
}

/// Loads and checks the settings.
pub fn load(explicit: Option<&Path>, env: &Env) -> Result<Settings, ConfigError> {
    let files = config_files(explicit, env)?;
    let mut builder = Config::builder();
    let mut layers = Vec::new();
    for path in &files {
        check_file(path)?;
        let source = File::from(path.as_path())
            .format(FileFormat::Toml)
            .required(true);
        let alone = Config::builder()
            .add_source(source.clone())
            .build()
            .map_err(config_error)?;
        check_unknown_keys(alone.clone(), |_| path.display().to_string())?;
        layers.push(Layer {
            file: Some(path.clone()),
            config: alone,
        });
        builder = builder.add_source(source);
    }
    let env_alone = Config::builder()
        .add_source(env_source(env))
        .build()
        .map_err(config_error)?;
    check_unknown_keys(env_alone.clone(), |key| {
        format!("the environment variable {}", env_var_name(key))
    })?;
    layers.push(Layer {
        file: None,
        config: env_alone,
    });
    let merged = builder
        .add_source(env_source(env))
        .build()
        .map_err(config_error)?;
    let raw: RawSettings = merged.try_deserialize().map_err(config_error)?;
    Resolver { layers, env }.resolve(raw, files)
}

/// One source read alone: a file, or (`file: None`) the `EXGATE__` variables.
struct Layer {
    file: Option<PathBuf>,
    config: Config,
}

struct Resolver<'a> {
    layers: Vec<Layer>,
    env: &'a Env,
}

impl Resolver<'_> {
    /// Where the value of `key` came from: a file path or an environment variable.
    /// The last source that sets `key`, or else the nearest table around it.
    fn origin(&self, key: &str) -> String {
        let mut probe = key;
        loop {
            let found = self
                .layers
                .iter()
                .rev()
                .find(|l| l.config.get::<config::Value>(probe).is_ok());
            match (found, probe.rsplit_once('.')) {
                (
                    Some(Layer {
                        file: Some(path), ..
                    }),
                    _,
                ) => return path.display().to_string(),
                (Some(Layer { file: None, .. }), _) => {
                    return format!("the environment variable {}", env_var_name(probe));
                }
                (None, Some((parent, _))) => probe = parent,
                (None, None) => return "the built-in defaults".to_owned(),
            }
        }
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_owned(),
            origin: self.origin(key),
            message: message.into(),
        }
    }

    fn secret(&self, key: &str, value: &str) -> Result<Secret, ConfigError> {
        let env = |name: &str| self.env.get(name);
        SecretRef::parse(value)
            .and_then(|r| r.resolve(&env))
            .map_err(|e| self.invalid(key, e.to_string()))
    }

    /// `[store]`: the SQLite file (`path`, or `url = "sqlite://PATH"`) or PostgreSQL
    /// (`url = "postgres://…"`, its password only by `file:`/`env:` reference in `password`).
    fn store(
        &self,
        raw: RawStore,
        data_dir: &dyn Fn() -> Result<PathBuf, ConfigError>,
    ) -> Result<(PathBuf, crate::store::StoreLocation), ConfigError> {
        use crate::store::{PostgresOptions, StoreLocation};
        let max_connections = match raw.max_connections {
            None => PostgresOptions::DEFAULT_MAX_CONNECTIONS,
            Some(n @ 1..=1000) => n,
            Some(n) => {
                return Err(self.invalid(
                    "store.max_connections",
                    format!("{n} is not a pool size; give 1 to 1000"),
                ));
            }
        };
        let password = raw
            .password
            .as_deref()
            .map(|v| self.secret("store.password", v))
            .transpose()?;
        let sqlite = |path: Option<PathBuf>| -> Result<_, ConfigError> {
            if password.is_some() {
                return Err(self.invalid(
                    "store.password",
                    "only a PostgreSQL store takes a password; set store.url = \"postgres://…\" or remove store.password",
                ));
            }
            let path = match path {
                Some(p) => p,
                None => data_dir()?.join("exgate.db"),
            };
            Ok((path.clone(), StoreLocation::Sqlite(path)))
        };
        let Some(url) = raw.url else {
            return sqlite(raw.path);
        };
        if raw.path.is_some() {
            return Err(self.invalid(
                "store.url",
                "store.url and store.path both name the store; keep one",
            ));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(self.invalid(
                    "store.url",
                    "`sqlite://` names no file; give sqlite:///var/lib/exgate/exgate.db",
                ));
            }
            return sqlite(Some(PathBuf::from(path)));
        }
        let is_postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let parsed = url::Url::parse(&url).ok().filter(|_| is_postgres);
        let Some(parsed) = parsed else {
            return Err(self.invalid(
                "store.url",
                "the store URL must start with sqlite:// (a file) or postgres:// (a PostgreSQL database)",
            ));
        };
        if parsed.password().is_some() {
            // Say so without repeating the URL, which holds the password.
            return Err(self.invalid(
                "store.url",
                "the URL holds a password; move it to store.password as a file: or env: reference",
            ));
        }
        // The SQLite path stays at its default for commands that name it; the store is PostgreSQL.
        let path = data_dir().map(|d| d.join("exgate.db")).unwrap_or_default();
        Ok((
            path,
            StoreLocation::Postgres(PostgresOptions {
                url,
                password,
                max_connections,
            }),
        ))
    }

    fn resolve(&self, raw: RawSettings, files: Vec<PathBuf>) -> Result<Settings, ConfigError> {
        let data_dir = || self.env.data_dir().ok_or(ConfigError::NoHome);
        let (store_path, store) = self.store(raw.store, &data_dir)?;
        let master_key_file = match self
            .env
            .get("EXGATE_MASTER_KEY_FILE")
            .map(PathBuf::from)
            .or(raw.secrets.master_key_file)
        {
            Some(p) => p,
            None => data_dir()?.join("master.key"),
        };

        let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
            self.invalid(
                "server.listen",
                format!("`{listen_text}` is not an address to listen on; expected IP:port such as {DEFAULT_LISTEN} (port 0 picks a free port)"),
            )
        })?;
        let log_format = match raw
            .server
            .log_format
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(self.invalid(
                    "server.log_format",
                    format!("`{other}` is not a log format; expected `human` or `json`"),
                ));
            }
        };
        let admin_password = raw
            .server
            .admin_password
            .as_deref()
            .map(|v| {
                let secret = self.secret("server.admin_password", v)?;
                admin::check_configured_password(&secret)
                    .map_err(|why| self.invalid("server.admin_password", why))?;
                Ok::<_, ConfigError>(secret)
            })
            .transpose()?;

        let public_url = raw
            .server
            .public_url
            .as_deref()
            .map(|u| {
                u.parse::<EndpointUrl>()
                    .map_err(|e| self.invalid("server.public_url", e.0))
            })
            .transpose()?;
        let trusted_proxies = raw
            .server
            .trusted_proxies
            .as_ref()
            .map(OneOrMany::items)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        self.invalid(
                            "server.trusted_proxies",
                            format!("`{p}` is not an IP address or network such as 10.0.0.0/8"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let idle_days = raw
            .server
            .keep_alive_idle_days
            .unwrap_or(KEEP_ALIVE_IDLE_DAYS_DEFAULT);
        if !KEEP_ALIVE_IDLE_DAYS.contains(&idle_days) {
            return Err(self.invalid(
                "server.keep_alive_idle_days",
                format!(
                    "must be between {} and {} (Entra ID drops a refresh token after 90 days without use)",
                    KEEP_ALIVE_IDLE_DAYS.start(),
                    KEEP_ALIVE_IDLE_DAYS.end()
                ),
            ));
        }
        let keep_refresh_tokens_alive = raw
            .server
            .keep_refresh_tokens_alive
            .unwrap_or(false)
            .then(|| time::Duration::days(i64::from(idle_days)));
        let mut connections = Vec::new();
        for (name, entry) in raw.connections {
            connections.push(self.connection(&name, entry)?);
        }
        let authority_host = raw
            .endpoints
            .authority_host
            .as_deref()
            .map(|h| {
                h.parse::<EndpointUrl>()
                    .map_err(|e| self.invalid("endpoints.authority_host", e.0))
            })
            .transpose()?;
        let graph_url = raw
            .endpoints
            .graph_url
            .as_deref()
            .map(|h| {
                h.parse::<EndpointUrl>()
                    .map_err(|e| self.invalid("endpoints.graph_url", e.0))
            })
            .transpose()?;
        let exchange_admin_url = raw
            .endpoints
            .exchange_admin_url
            .as_deref()
            .map(|h| {
                h.parse::<EndpointUrl>()
                    .map_err(|e| self.invalid("endpoints.exchange_admin_url", e.0))
            })
            .transpose()?;
        let ews_url = raw
            .endpoints
            .ews_url
            .as_deref()
            .map(|h| {
                h.parse::<EndpointUrl>()
                    .map_err(|e| self.invalid("endpoints.ews_url", e.0))
            })
            .transpose()?;
        let autodiscover_url = raw
            .endpoints
            .autodiscover_url
            .as_deref()
            .map(|h| {
                h.parse::<EndpointUrl>()
                    .map_err(|e| self.invalid("endpoints.autodiscover_url", e.0))
            })
            .transpose()?;
        let mail_url = |key: &str, value: &Option<String>, protocol: crate::mail::MailProtocol| {
            value
                .as_deref()
                .map(|v| {
                    let url: crate::mail::MailUrl =
                        v.parse().map_err(|e: crate::mail::url::MailUrlError| {
                            self.invalid(key, e.to_string())
                        })?;
                    if url.protocol() == protocol {
                        Ok(url)
                    } else {
                        Err(self.invalid(key, format!("`{url}` is not a {protocol} server URL")))
                    }
                })
                .transpose()
        };
        let imap_url = mail_url(
            "endpoints.imap_url",
            &raw.endpoints.imap_url,
            crate::mail::MailProtocol::Imap,
        )?;
        let pop_url = mail_url(
            "endpoints.pop_url",
            &raw.endpoints.pop_url,
            crate::mail::MailProtocol::Pop,
        )?;
        let smtp_url = mail_url(
            "endpoints.smtp_url",
            &raw.endpoints.smtp_url,
            crate::mail::MailProtocol::Smtp,
        )?;
        let ca_pem = raw
            .tls
            .ca_file
            .as_ref()
            .map(|path| {
                let pem = std::fs::read(path).map_err(|e| {
                    self.invalid(
                        "tls.ca_file",
                        format!("{} cannot be read: {e}", path.display()),
                    )
                })?;
                if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    return Err(self.invalid(
                        "tls.ca_file",
                        format!(
                            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                            path.display()
                        ),
                    ));
                }
                Ok(pem)
            })
            .transpose()?;

        Ok(Settings {
            store_path,
            store,
            master_key_file,
            server: ServerSettings {
                listen,
                log_format,
                admin_password,
                public_url,
                trusted_proxies,
                keep_refresh_tokens_alive,
            },
            log_level: raw.log.level.unwrap_or_else(|| "info".to_owned()),
            connections,
            network: NetworkSettings {
                authority_host,
                graph_url,
                exchange_admin_url,
                ews_url,
                ca_pem,
                autodiscover_url,
                imap_url,
                pop_url,
                smtp_url,
            },
            governor: self.governor(
                "graph",
                &raw.graph,
                crate::governor::GovernorPolicy::default(),
            )?,
            ews_governor: self.governor(
                "ews",
                &raw.ews,
                crate::governor::GovernorPolicy::ews_default(),
            )?,
            limits: self.limits(&raw.limits)?,
            bridge: self.bridge(raw.bridge)?,
            notify: self.notify(&raw.notify)?,
            files,
        })
    }

    fn notify(&self, raw: &RawNotify) -> Result<NotifyConfig, ConfigError> {
        let mut c = NotifyConfig::default();
        let ranged =
            |key: &str, value: Option<u64>, range: &std::ops::RangeInclusive<u64>| match value {
                Some(v) if !range.contains(&v) => Err(self.invalid(
                    key,
                    format!("must be between {} and {}", range.start(), range.end()),
                )),
                v => Ok(v),
            };
        if let Some(v) = ranged("notify.poll_secs", raw.poll_secs, &NOTIFY_POLL_SECS)? {
            c.poll = std::time::Duration::from_secs(v);
        }
        if let Some(v) = ranged(
            "notify.safety_poll_secs",
            raw.safety_poll_secs,
            &NOTIFY_SAFETY_POLL_SECS,
        )? {
            c.safety_poll = std::time::Duration::from_secs(v);
        }
        if let Some(v) = ranged(
            "notify.webhook_retry_hours",
            raw.webhook_retry_hours,
            &NOTIFY_RETRY_HOURS,
        )? {
            c.webhook_retry = std::time::Duration::from_secs(v * 3600);
        }
        if let Some(v) = ranged(
            "notify.keep_events_days",
            raw.keep_events_days,
            &NOTIFY_KEEP_DAYS,
        )? {
            c.keep_events = std::time::Duration::from_secs(v * 86_400);
        }
        c.graph_push = raw.graph_push.unwrap_or(c.graph_push);
        c.allow_http_webhooks = raw.allow_http_webhooks.unwrap_or(c.allow_http_webhooks);
        Ok(c)
    }

    fn bridge(&self, raw: RawBridge) -> Result<BridgeConfig, ConfigError> {
        let mut c = BridgeConfig::default();
        if let Some(listen) = &raw.listen {
            c.listen = listen.trim().parse().map_err(|_| {
                self.invalid(
                    "bridge.listen",
                    format!("`{listen}` is not an IP address (such as 127.0.0.1)"),
                )
            })?;
        }
        let (imap, pop, smtp) = BRIDGE_PORTS;
        c.imap_port = Some(raw.imap_port.unwrap_or(imap));
        c.pop_port = Some(raw.pop_port.unwrap_or(pop));
        c.smtp_port = Some(raw.smtp_port.unwrap_or(smtp));
        if let Some(protocols) = raw.protocols {
            let list = match protocols {
                OneOrMany::One(s) => s.split(',').map(|p| p.trim().to_owned()).collect(),
                OneOrMany::Many(v) => v,
            };
            let mut on = [false; 3];
            for p in &list {
                match p.to_ascii_lowercase().as_str() {
                    "imap" => on[0] = true,
                    "pop" => on[1] = true,
                    "smtp" => on[2] = true,
                    other => {
                        return Err(self.invalid(
                            "bridge.protocols",
                            format!("`{other}` is not a protocol; expected imap, pop or smtp"),
                        ));
                    }
                }
            }
            if !on.contains(&true) {
                return Err(self.invalid("bridge.protocols", "names no protocol"));
            }
            c.imap_port = c.imap_port.filter(|_| on[0]);
            c.pop_port = c.pop_port.filter(|_| on[1]);
            c.smtp_port = c.smtp_port.filter(|_| on[2]);
        }
        match (raw.tls_cert_file, raw.tls_key_file) {
            (Some(cert), Some(key)) => {
                c.tls_cert_file = Some(cert);
                c.tls_key_file = Some(key);
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(
                    self.invalid("bridge.tls_key_file", "is needed with bridge.tls_cert_file")
                );
            }
            (None, Some(_)) => {
                return Err(
                    self.invalid("bridge.tls_cert_file", "is needed with bridge.tls_key_file")
                );
            }
        }
        c.tls_implicit = match raw.tls.as_deref().map(str::trim) {
            None | Some("starttls") => false,
            Some("implicit") => true,
            Some(other) => {
                return Err(self.invalid(
                    "bridge.tls",
                    format!("`{other}` is not a TLS mode; expected starttls or implicit"),
                ));
            }
        };
        if c.tls_implicit && c.tls_cert_file.is_none() {
            return Err(self.invalid(
                "bridge.tls",
                "implicit TLS needs bridge.tls_cert_file and bridge.tls_key_file",
            ));
        }
        if let Some(n) = raw.max_connections {
            if !BRIDGE_MAX_CONNECTIONS.contains(&n) {
                return Err(self.invalid(
                    "bridge.max_connections",
                    format!(
                        "must be between {} and {}",
                        BRIDGE_MAX_CONNECTIONS.start(),
                        BRIDGE_MAX_CONNECTIONS.end()
                    ),
                ));
            }
            c.max_connections = n;
        }
        if let Some(secs) = raw.idle_timeout_secs {
            if !BRIDGE_IDLE_SECS.contains(&secs) {
                return Err(self.invalid(
                    "bridge.idle_timeout_secs",
                    format!(
                        "must be between {} and {}",
                        BRIDGE_IDLE_SECS.start(),
                        BRIDGE_IDLE_SECS.end()
                    ),
                ));
            }
            c.idle_timeout = std::time::Duration::from_secs(secs);
        }
        Ok(c)
    }

    fn limits(&self, raw: &RawLimits) -> Result<crate::pipeline::Limits, ConfigError> {
        let default = crate::pipeline::Limits::default();
        let mut limits = default;
        if let Some(mb) = raw.max_item_mb {
            if !MAX_ITEM_MB.contains(&mb) {
                return Err(self.invalid(
                    "limits.max_item_mb",
                    format!(
                        "must be between {} and {}",
                        MAX_ITEM_MB.start(),
                        MAX_ITEM_MB.end()
                    ),
                ));
            }
            limits.max_item_bytes = mb * 1024 * 1024;
        }
        if let Some(secs) = raw.max_wait_secs {
            if secs > MAX_WAIT_SECS {
                return Err(self.invalid(
                    "limits.max_wait_secs",
                    format!("must be at most {MAX_WAIT_SECS}"),
                ));
            }
            limits.max_wait = std::time::Duration::from_secs(secs);
        }
        Ok(limits)
    }

    /// The policy of section `section` (`graph` or `ews`) over its `default`.
    fn governor(
        &self,
        section: &str,
        raw: &RawGraph,
        default: crate::governor::GovernorPolicy,
    ) -> Result<crate::governor::GovernorPolicy, ConfigError> {
        let positive = |key: &str, v: u64| {
            if v == 0 {
                Err(self.invalid(key, "must be at least 1"))
            } else {
                Ok(v)
            }
        };
        if let Some(c) = raw.concurrent {
            positive(&format!("{section}.concurrent"), c as u64)?;
        }
        if let Some(r) = raw.requests {
            positive(&format!("{section}.requests"), u64::from(r))?;
        }
        if let Some(w) = raw.window_secs {
            positive(&format!("{section}.window_secs"), w)?;
        }
        Ok(crate::governor::GovernorPolicy {
            concurrent: raw.concurrent.unwrap_or(default.concurrent),
            requests: raw.requests.unwrap_or(default.requests),
            window: raw
                .window_secs
                .map_or(default.window, std::time::Duration::from_secs),
            burst: default.burst,
        })
    }

    fn connection(
        &self,
        name: &str,
        entry: RawConnection,
    ) -> Result<ConfiguredConnection, ConfigError> {
        let key = |field: &str| format!("connections.{name}.{field}");
        let parsed_name = name
            .parse::<ConnectionName>()
            .map_err(|e| self.invalid(&format!("connections.{name}"), e.0))?;
        let secret = |field: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| self.secret(&key(field), v))
                .transpose()
        };
        let certificate_pem = entry
            .certificate_file
            .as_ref()
            .map(|path| {
                std::fs::read_to_string(path).map_err(|e| {
                    self.invalid(
                        &key("certificate_file"),
                        format!("{} cannot be read: {e}", path.display()),
                    )
                })
            })
            .transpose()?;
        let spec = ConnectionSpec {
            target: entry.target,
            cloud: entry.cloud,
            tenant: entry.tenant,
            server_version: entry.server_version,
            ews_url: entry.ews_url,
            backend: entry.backend,
            auth: entry.auth,
            client_id: entry.client_id,
            flow: entry.flow,
            redirect_uri: entry.redirect_uri,
            scopes: entry.scopes,
            return_urls: entry.return_urls,
            authority: entry.authority,
            resource: entry.resource,
            username: entry.username,
            client_secret: secret("client_secret", &entry.client_secret)?,
            certificate_pem,
            private_key_pem: secret("private_key", &entry.private_key)?,
            password: secret("password", &entry.password)?,
            send: entry.send,
            imap_url: entry.imap_url,
            pop_url: entry.pop_url,
            smtp_url: entry.smtp_url,
            credential_expires: entry.credential_expires,
        };
        let settings = spec.validate().map_err(|e| {
            let field = match e.field {
                "certificate" => "certificate_file",
                "private_key" => "private_key",
                other => other,
            };
            let message = if e.missing {
                format!("missing: {}", e.message)
            } else {
                e.message
            };
            self.invalid(&key(field), message)
        })?;
        // Every key of the table comes from one file unless variables override single keys.
        let origin = self.origin(&key("auth"));
        let modified = std::fs::metadata(&origin)
            .and_then(|m| m.modified())
            .map_or_else(
                |_| time::OffsetDateTime::now_utc(),
                time::OffsetDateTime::from,
            );
        Ok(ConfiguredConnection {
            name: parsed_name,
            settings,
            origin,
            modified,
        })
    }
}

#[cfg(test)]
mod docs;

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn env(&self, extra: &[(&str, &str)]) -> Env {
            let root = self.dir.path().display().to_string();
            let mut pairs = vec![
                ("HOME".to_owned(), root.clone()),
                ("XDG_CONFIG_HOME".to_owned(), format!("{root}/config")),
                ("XDG_DATA_HOME".to_owned(), format!("{root}/data")),
                (
                    "EXGATE_SYSTEM_CONFIG".to_owned(),
                    format!("{root}/system.toml"),
                ),
            ];
            pairs.extend(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            Env::from_pairs(pairs)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
            path
        }
    }

    #[test]
    fn defaults_follow_xdg() {
        let f = Fixture::new();
        let s = load(None, &f.env(&[])).unwrap();
        assert_eq!(s.store_path, f.dir.path().join("data/exgate/exgate.db"));
        assert_eq!(
            s.master_key_file,
            f.dir.path().join("data/exgate/master.key")
        );
        assert_eq!(s.server.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.server.log_format, LogFormat::Human);
        assert!(s.files.is_empty());
    }

    #[test]
    fn the_bridge_section_is_read_and_checked() {
        let f = Fixture::new();
        let s = load(None, &f.env(&[])).unwrap();
        assert_eq!(s.bridge, BridgeConfig::default());
        assert_eq!(s.bridge.imap_port, Some(1143));

        let path = f.write(
            "b.toml",
            "[bridge]\nprotocols = [\"imap\", \"smtp\"]\nimap_port = 0\nidle_timeout_secs = 60\n",
        );
        let s = load(Some(&path), &f.env(&[])).unwrap();
        assert_eq!(
            (s.bridge.imap_port, s.bridge.pop_port, s.bridge.smtp_port),
            (Some(0), None, Some(1587))
        );
        assert_eq!(s.bridge.idle_timeout.as_secs(), 60);
        let s = load(None, &f.env(&[("EXGATE__BRIDGE__PROTOCOLS", "pop")])).unwrap();
        assert_eq!((s.bridge.imap_port, s.bridge.pop_port), (None, Some(1110)));

        for (text, key) in [
            ("[bridge]\nlisten = \"everywhere\"\n", "bridge.listen"),
            ("[bridge]\nprotocols = [\"nntp\"]\n", "bridge.protocols"),
            ("[bridge]\nprotocols = []\n", "bridge.protocols"),
            (
                "[bridge]\ntls_cert_file = \"/x.pem\"\n",
                "bridge.tls_key_file",
            ),
            ("[bridge]\ntls = \"implicit\"\n", "bridge.tls"),
            ("[bridge]\ntls = \"sometimes\"\n", "bridge.tls"),
            ("[bridge]\nmax_connections = 0\n", "bridge.max_connections"),
            (
                "[bridge]\nidle_timeout_secs = 1\n",
                "bridge.idle_timeout_secs",
            ),
        ] {
            let path = f.write("bad.toml", text);
            let err = load(Some(&path), &f.env(&[])).unwrap_err().to_string();
            assert!(err.starts_with(key), "{text}: {err}");
        }
    }

    #[test]
    fn layers_apply_in_order() {
        let f = Fixture::new();
        f.write(
            "system.toml",
            "[server]\nlisten = \"127.0.0.1:1001\"\nlog_format = \"json\"\n",
        );
        f.write(
            "config/exgate/exgate.toml",
            "[server]\nlisten = \"127.0.0.1:1002\"\n",
        );
        let explicit = f.write("explicit.toml", "[log]\nlevel = \"debug\"\n");
        let env = f.env(&[]);
        let s = load(Some(&explicit), &env).unwrap();
        assert_eq!(s.server.listen.port(), 1002);
        assert_eq!(s.server.log_format, LogFormat::Json);
        assert_eq!(s.log_level, "debug");
        assert_eq!(s.files.len(), 3);
        let env = f.env(&[
            ("EXGATE__SERVER__LISTEN", "127.0.0.1:1003"),
            ("EXGATE_MASTER_KEY_FILE", "/k/master.key"),
        ]);
        let s = load(Some(&explicit), &env).unwrap();
        assert_eq!(s.server.listen.port(), 1003);
        assert_eq!(s.master_key_file, PathBuf::from("/k/master.key"));
    }

    #[test]
    fn unknown_key_names_the_key_and_file() {
        let f = Fixture::new();
        let path = f.write(
            "config/exgate/exgate.toml",
            "[server]\nlisen = \"127.0.0.1:1\"\n",
        );
        let err = load(None, &f.env(&[])).unwrap_err().to_string();
        assert!(err.contains("unknown key `server.lisen`"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn unknown_variable_is_named() {
        let f = Fixture::new();
        let err = load(None, &f.env(&[("EXGATE__SERVER__LISTN", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("EXGATE__SERVER__LISTN"), "{err}");
    }

    #[test]
    fn bad_value_names_key_origin_and_expectation() {
        let f = Fixture::new();
        let path = f.write("c.toml", "[server]\nlisten = \"everywhere\"\n");
        let err = load(Some(&path), &f.env(&[])).unwrap_err().to_string();
        assert!(err.starts_with("server.listen (from "), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("expected IP:port"), "{err}");

        let err = load(None, &f.env(&[("EXGATE__SERVER__LOG_FORMAT", "xml")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("EXGATE__SERVER__LOG_FORMAT"), "{err}");
        assert!(err.contains("expected `human` or `json`"), "{err}");
    }

    #[test]
    fn the_ews_url_replaces_exchange_onlines_and_must_be_safe() {
        let f = Fixture::new();
        let path = f.write(
            "ews.toml",
            "[endpoints]\news_url = \"https://ews.proxy.example/EWS/Exchange.asmx\"\n",
        );
        let settings = load(Some(&path), &f.env(&[])).unwrap();
        assert_eq!(
            settings.network.ews_url.unwrap().as_url().as_str(),
            "https://ews.proxy.example/EWS/Exchange.asmx"
        );
        // Tokens never go to a plain-HTTP host that is not this machine.
        let path = f.write(
            "ews.toml",
            "[endpoints]\news_url = \"http://ews.proxy.example/EWS/Exchange.asmx\"\n",
        );
        let err = load(Some(&path), &f.env(&[])).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, .. } if key == "endpoints.ews_url"),
            "{err}"
        );
    }

    #[test]
    fn missing_explicit_file_and_bad_toml_are_errors() {
        let f = Fixture::new();
        let err = load(Some(Path::new("/nonexistent/x.toml")), &f.env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Missing { .. }), "{err}");
        let path = f.write("bad.toml", "[server\nlisten=");
        let err = load(Some(&path), &f.env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { line: 1, .. }), "{err}");
    }

    #[test]
    fn values_of_the_wrong_type_are_refused_with_the_key() {
        let f = Fixture::new();
        for (text, key, expected) in [
            // Once became a store file named `5`.
            ("[store]\npath = 5\n", "store.path", "found an integer"),
            (
                "[secrets]\nmaster_key_file = true\n",
                "secrets.master_key_file",
                "found a boolean",
            ),
            (
                "[server]\nlisten = 8087\n",
                "server.listen",
                "found an integer",
            ),
            (
                "[server]\npublic_url = [\"https://x\"]\n",
                "server.public_url",
                "found an array",
            ),
            ("[log]\nlevel = 3\n", "log.level", "found an integer"),
            (
                "[limits]\nmax_item_mb = \"20\"\n",
                "limits.max_item_mb",
                "found a string",
            ),
            (
                "[graph]\nconcurrent = 1.5\n",
                "graph.concurrent",
                "found a float",
            ),
            ("[tls]\nca_file = 1\n", "tls.ca_file", "found an integer"),
            (
                "[endpoints]\ngraph_url = 2\n",
                "endpoints.graph_url",
                "found an integer",
            ),
            (
                "[endpoints]\news_url = 2\n",
                "endpoints.ews_url",
                "found an integer",
            ),
            (
                "[connections.prod]\nscopes = \"Mail.Read\"\n",
                "connections.prod.scopes",
                "found a string",
            ),
            (
                "[connections.prod]\nclient_secret = 123456789\n",
                "connections.prod.client_secret",
                "found an integer",
            ),
        ] {
            let path = f.write("typed.toml", text);
            let err = load(Some(&path), &f.env(&[])).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(&err, ConfigError::Invalid { key: k, .. } if k == key),
                "{text}: {message}"
            );
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(expected), "{text}: {message}");
            assert!(message.contains("expected "), "{message}");
            assert!(!message.contains('\n'), "{message}");
            // The value itself is not repeated (it may be a secret).
            assert!(!message.contains("123456789"), "{message}");
        }
        assert!(!f.dir.path().join("5").exists());
        assert!(!Path::new("5").exists());
    }

    #[test]
    fn a_toml_syntax_error_names_position_and_key_but_never_the_line() {
        let f = Fixture::new();
        let secret = "Zx8Q~s3cr3t-Value_0123456789abcdefghij";
        for text in [
            format!("[connections.prod]\ntenant = \"contoso.com\"\nclient_secret = \"{secret}\n"),
            format!("[connections.prod]\nclient_secret = {secret}\n"),
            format!("[connections.prod]\nclient_secret = \"{secret}\" x\n"),
        ] {
            let path = f.write("broken.toml", &text);
            let err = load(Some(&path), &f.env(&[])).unwrap_err();
            let message = err.to_string();
            assert!(
                !message.contains(secret)
                    && !message.contains("Zx8Q")
                    && !message.contains("s3cr3t"),
                "{message}"
            );
            assert!(
                message.contains("key `connections.prod.client_secret`"),
                "{message}"
            );
            let line = text.lines().count();
            assert!(
                message.contains(&format!("broken.toml:{line}:")),
                "{message}"
            );
        }
    }

    #[test]
    fn declared_connections_resolve_secret_references() {
        let f = Fixture::new();
        let secret_file = f.write("secret.txt", "s3cr3t~value-0123456789abcdefghij\n");
        let path = f.write(
            "c.toml",
            &format!(
                "[connections.Prod]\ntenant = \"contoso.onmicrosoft.com\"\nauth = \"oauth2-app-only\"\n\
                 client_id = \"11111111-2222-3333-4444-555555555555\"\nclient_secret = \"file:{}\"\n\
                 [connections.lab]\news_url = \"https://mail.lab.example/EWS/Exchange.asmx\"\nauth = \"ntlm\"\n\
                 username = \"LAB\\\\svc\"\npassword = \"env:LAB_PASSWORD\"\n",
                secret_file.display()
            ),
        );
        let s = load(Some(&path), &f.env(&[("LAB_PASSWORD", "pw")])).unwrap();
        let names: Vec<_> = s.connections.iter().map(|c| c.name.to_string()).collect();
        assert_eq!(names, ["Prod", "lab"]);
        assert_eq!(s.connections[0].origin, path.display().to_string());
        let secret = s.connections[0].settings.auth.secret().unwrap();
        assert_eq!(secret.expose(), "s3cr3t~value-0123456789abcdefghij");

        let err = load(Some(&path), &f.env(&[])).unwrap_err().to_string();
        assert!(err.contains("connections.lab.password"), "{err}");
        assert!(err.contains("LAB_PASSWORD is not set"), "{err}");
    }

    #[test]
    fn inline_secrets_and_invalid_connections_are_refused() {
        let f = Fixture::new();
        let path = f.write(
            "c.toml",
            "[connections.x]\ntenant = \"common\"\nauth = \"oauth2-app-only\"\n\
             client_id = \"11111111-2222-3333-4444-555555555555\"\nclient_secret = \"inline-value\"\n",
        );
        let err = load(Some(&path), &f.env(&[])).unwrap_err().to_string();
        assert!(err.contains("connections.x.client_secret"), "{err}");
        assert!(err.contains("not written inline"), "{err}");
        assert!(!err.contains("inline-value"), "{err}");

        let path = f.write(
            "d.toml",
            "[connections.y]\ntenant = \"not-a-guid-0000\"\nauth = \"oauth2-delegated\"\n",
        );
        let err = load(Some(&path), &f.env(&[])).unwrap_err().to_string();
        assert!(err.contains("connections.y.tenant"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");

        let path = f.write("e.toml", "[connections.z]\ntenant = \"common\"\n");
        let err = load(Some(&path), &f.env(&[])).unwrap_err().to_string();
        assert!(err.contains("connections.z.auth"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn weak_configured_admin_password_is_refused() {
        let f = Fixture::new();
        let path = f.write("c.toml", "[server]\nadmin_password = \"env:PW\"\n");
        let err = load(Some(&path), &f.env(&[("PW", "changeme")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.admin_password"), "{err}");
        assert!(err.contains("well-known default"), "{err}");
        let s = load(
            Some(&path),
            &f.env(&[("PW", "a long and unusual passphrase")]),
        )
        .unwrap();
        assert!(s.server.admin_password.is_some());
    }

    #[test]
    fn store_url_names_sqlite_or_postgres_with_its_password_by_reference() {
        use crate::store::StoreLocation;
        let f = Fixture::new();
        let path = f.write("a.toml", "[store]\nurl = \"sqlite:///srv/exgate/x.db\"\n");
        let s = load(Some(&path), &f.env(&[])).unwrap();
        assert_eq!(s.store_path, PathBuf::from("/srv/exgate/x.db"));
        assert!(matches!(&s.store, StoreLocation::Sqlite(p) if p == &s.store_path));

        let path = f.write(
            "b.toml",
            "[store]\nurl = \"postgres://exgate@db:5432/exgate?sslmode=verify-full\"\n\
             password = \"env:PGPW\"\nmax_connections = 25\n",
        );
        let s = load(Some(&path), &f.env(&[("PGPW", "pg-secret-value")])).unwrap();
        let StoreLocation::Postgres(pg) = &s.store else {
            panic!("{:?}", s.store)
        };
        assert_eq!(
            pg.url,
            "postgres://exgate@db:5432/exgate?sslmode=verify-full"
        );
        assert_eq!(
            pg.password.as_ref().map(Secret::expose),
            Some("pg-secret-value")
        );
        assert_eq!(pg.max_connections, 25);
        assert!(!format!("{:?}", s.store).contains("pg-secret-value"));

        for (text, key, why) in [
            (
                "url = \"postgres://exgate:hunter2@db/exgate\"",
                "store.url",
                "holds a password",
            ),
            (
                "url = \"mysql://db/exgate\"",
                "store.url",
                "must start with",
            ),
            ("url = \"sqlite://\"", "store.url", "names no file"),
            (
                "url = \"sqlite:///x.db\"\npath = \"/y.db\"",
                "store.url",
                "keep one",
            ),
            (
                "password = \"env:PGPW\"",
                "store.password",
                "only a PostgreSQL",
            ),
            (
                "url = \"postgres://db/exgate\"\nmax_connections = 0",
                "store.max_connections",
                "1 to 1000",
            ),
        ] {
            let path = f.write("c.toml", &format!("[store]\n{text}\n"));
            let err = load(Some(&path), &f.env(&[("PGPW", "pg-secret-value")]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(why), "{text}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
