//! Several gateways on one PostgreSQL: the real `exgate-server` binary, N processes sharing one
//! throwaway cluster ([`TempPostgres`]), one master key and one mock Microsoft cloud. What one
//! instance starts or stores, the others see (a sign-in finishes, and its status answers, on any
//! of them); an account is refreshed by one instance at a time;
//! a killed instance loses nothing it acknowledged; a key revoked on one is refused by the others
//! within a second; under load the three never exceed the mock's per-mailbox limit together.
//!
//! [`Cluster`] is the harness: [`Cluster::start`] brings up the database, the key and the mock;
//! [`Cluster::gateway`] starts one more instance on it (with extra configuration if needed).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use exgate_core::secret::Vault;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::postgres::TempPostgres;
use serde_json::{Value, json};
use sqlx::Connection as _;

mod support;
use support::hidden_inputs;

const WAIT: Duration = Duration::from_secs(60);
const ADMIN_PASSWORD: &str = "cluster-admin-Password-7Qz!x9Lw2Rk5";
const CONNECTION: &str = "contoso";

/// One database, one master key and one mock cloud, shared by the gateways started on them.
struct Cluster {
    _pg: TempPostgres,
    url: String,
    dir: tempfile::TempDir,
    key_file: PathBuf,
    mock: MockMicrosoft,
}

/// One `exgate-server` process of a [`Cluster`].
struct Gateway {
    child: Child,
    base: String,
    stderr: PathBuf,
    _home: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let pg = TempPostgres::start();
        let url = pg.create_database();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("master.key");
        // Every instance opens the same key; made once here, before any of them starts.
        Vault::open_or_create(&key_file).unwrap();
        let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
        Self {
            _pg: pg,
            url,
            dir,
            key_file,
            mock,
        }
    }

    /// Starts one more gateway on the cluster; `extra` is appended to its configuration.
    fn gateway(&self, extra: &str) -> Gateway {
        let home = tempfile::tempdir_in(self.dir.path()).unwrap();
        let config = home.path().join("config/exgate/exgate.toml");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(
            &config,
            format!(
                "[endpoints]\nauthority_host = \"{}\"\ngraph_url = \"{}\"\n\n\
                 [store]\nurl = \"{}\"\n\n[secrets]\nmaster_key_file = \"{}\"\n\n\
                 [server]\nadmin_password = \"env:EXGATE_TEST_ADMIN\"\n{extra}\n",
                self.mock.base_url(),
                self.mock.graph_url(),
                self.url,
                self.key_file.display(),
            ),
        )
        .unwrap();
        let stderr = home.path().join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_exgate-server"))
            .args(["--listen", "127.0.0.1:0"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("EXGATE_SYSTEM_CONFIG", home.path().join("none.toml"))
            .env("EXGATE_TEST_ADMIN", ADMIN_PASSWORD)
            .env("EXGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let base = loop {
            match lines.recv_timeout(WAIT) {
                Ok(line) if line.contains("listening on ") => {
                    break line.rsplit(' ').next().unwrap().to_owned();
                }
                Ok(line) => seen.push(line),
                Err(e) => panic!(
                    "the gateway did not start ({e}); stdout: {seen:#?}; stderr: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                ),
            }
        };
        Gateway {
            child,
            base,
            stderr,
            _home: home,
        }
    }

    async fn db(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url).await.unwrap()
    }

    /// Puts every stored access token past its refresh point (still valid), as if its time had
    /// come.
    async fn due_for_refresh(&self) {
        sqlx::query("UPDATE access_tokens SET refresh_at = '2000-01-01T00:00:00Z'")
            .execute(&mut self.db().await)
            .await
            .unwrap();
    }

    /// Whether the stored access token of the account is fresh again (a refresh committed).
    async fn refreshed(&self) -> bool {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT refresh_at FROM access_tokens WHERE account_id <> ''")
                .fetch_all(&mut self.db().await)
                .await
                .unwrap();
        !rows.is_empty() && rows.iter().all(|(at,)| at.as_str() > "2001")
    }
}

/// The inode of the TCP socket from local port `port` (to the database), from the kernel's table.
fn socket_inode(port: u16) -> Option<String> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            std::fs::read_to_string(table)
                .ok()?
                .lines()
                .skip(1)
                .find_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local = fields.get(1)?;
                    let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
                    (local_port == port).then(|| fields.get(9).map(|i| (*i).to_owned()))?
                })
        })
}

impl Gateway {
    /// Whether this process is in the middle of an account's refresh: one of its database
    /// sessions holds the account's row (its turn) while it waits for the identity provider.
    async fn holds_refresh_turn(&self, cluster: &Cluster) -> bool {
        // A turn is the one transaction that stays open while nothing runs in it: its last
        // statement is the row lock or the read of the stored access token after it.
        let ports: Vec<(i32,)> = sqlx::query_as(
            "SELECT client_port FROM pg_stat_activity WHERE state = 'idle in transaction' \
             AND (query LIKE '%FOR UPDATE%' OR query LIKE 'SELECT token_sealed%')",
        )
        .fetch_all(&mut cluster.db().await)
        .await
        .unwrap();
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())) else {
            return false;
        };
        let sockets: Vec<String> = fds
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .map(|link| link.display().to_string())
            .collect();
        ports.iter().any(|(port,)| {
            u16::try_from(*port)
                .ok()
                .and_then(socket_inode)
                .is_some_and(|inode| sockets.contains(&format!("socket:[{inode}]")))
        })
    }

    /// Kills the process at once (SIGKILL): no shutdown, no flush.
    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// A counter of `/metrics`.
    async fn metric(&self, http: &reqwest::Client, name: &str) -> u64 {
        let text = http
            .get(format!("{}/metrics", self.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

/// Waits until `check` holds, or fails after a minute saying `what`.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates the delegated connection through `gateway`'s admin API.
async fn create_connection(http: &reqwest::Client, gateway: &Gateway) {
    create_connection_named(http, gateway, CONNECTION).await;
}

/// Creates a delegated connection named `name` through `gateway`'s admin API.
async fn create_connection_named(http: &reqwest::Client, gateway: &Gateway, name: &str) {
    let resp = http
        .post(format!("{}/api/v1/connections", gateway.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({
            "name": name, "tenant": seed::TENANT_ID, "auth": "oauth2-delegated",
            "client_id": seed::WEB_APP, "client_secret": seed::WEB_APP_SECRET,
            "return_urls": ["https://portal.contoso.com/linked"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// Starts a browser sign-in for `u42` on `start`, signs Adele in at the mock, and answers the
/// callback URL the mock sends the browser to (not followed).
async fn sign_in_until_callback(
    cluster: &Cluster,
    http: &reqwest::Client,
    start: &Gateway,
    return_url: Option<&str>,
) -> (String, String) {
    let mut body = json!({ "principal": "u42" });
    if let Some(url) = return_url {
        body["return_url"] = url.into();
    }
    let resp = http
        .post(format!(
            "{}/api/v1/connections/{CONNECTION}/logins",
            start.base
        ))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let login: Value = resp.json().await.unwrap();
    let page = http
        .get(login["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = hidden_inputs(&page);
    assert!(!form.is_empty(), "{page}");
    form.push(("login".into(), seed::ADELE.into()));
    form.push(("passwd".into(), seed::ADELE_PASSWORD.into()));
    form.push(("consent".into(), "accept".into()));
    let action = format!(
        "{}/{}/oauth2/v2.0/authorize",
        cluster.mock.base_url(),
        seed::TENANT_ID
    );
    let resp = http.post(action).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 302, "{}", resp.text().await.unwrap());
    (
        resp.headers()["location"].to_str().unwrap().to_owned(),
        login["login_id"].as_str().unwrap().to_owned(),
    )
}

/// Signs `u42` in through `gateway` (start and callback on it).
async fn sign_in(cluster: &Cluster, http: &reqwest::Client, gateway: &Gateway) {
    let (callback, _) = sign_in_until_callback(cluster, http, gateway, None).await;
    let done = http.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
}

/// A mailbox request for `u42` through `gateway`: it needs the account's access token.
async fn list_folders(http: &reqwest::Client, gateway: &Gateway) -> reqwest::StatusCode {
    http.get(format!(
        "{}/api/v1/connections/{CONNECTION}/users/u42/folders",
        gateway.base
    ))
    .basic_auth("admin", Some(ADMIN_PASSWORD))
    .send()
    .await
    .unwrap()
    .status()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_started_on_one_instance_finishes_through_anothers_callback() {
    let cluster = Cluster::start().await;
    let b = cluster.gateway("");
    let c = cluster.gateway("");
    // Behind one public name, the identity provider sends the browser back to B.
    let a = cluster.gateway(&format!("public_url = \"{}\"", b.base));
    let http = client();
    create_connection(&http, &a).await;

    let (callback, login_id) = sign_in_until_callback(
        &cluster,
        &http,
        &a,
        Some("https://portal.contoso.com/linked"),
    )
    .await;
    assert!(
        callback.starts_with(&format!("{}/service/oauth2/authorize?", b.base)),
        "{callback}"
    );
    let done = http.get(&callback).send().await.unwrap();
    // B knew the sign-in (its PKCE verifier, nonce, the application's return URL and login ID)
    // only from the store.
    assert_eq!(done.status(), 303, "{}", b.stderr());
    let location = done.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://portal.contoso.com/linked?")
            && location.contains(&format!("login_id={login_id}"))
            && location.contains("status=signed_in"),
        "{location}"
    );

    // Single use on every instance: a replay on C finds nothing.
    let replay = http.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    let text = replay.text().await.unwrap();
    let replay_on_c = callback.replacen(&b.base, &c.base, 1);
    let again = http.get(&replay_on_c).send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(text.contains("start the sign-in again"), "{text}");

    // The account is in the store: every instance uses it.
    for g in [&a, &b, &c] {
        assert_eq!(list_folders(&http, g).await, 200, "{}", g.stderr());
    }
}

/// `GET …/connections/{connection}/logins/{login_id}` on `gateway`, as the admin or with `key`.
async fn login_status(
    http: &reqwest::Client,
    gateway: &Gateway,
    connection: &str,
    login_id: &str,
    key: Option<&str>,
) -> (reqwest::StatusCode, Value) {
    let req = http.get(format!(
        "{}/api/v1/connections/{connection}/logins/{login_id}",
        gateway.base
    ));
    let req = match key {
        Some(key) => req.bearer_auth(key),
        None => req.basic_auth("admin", Some(ADMIN_PASSWORD)),
    };
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_started_on_one_instance_is_followed_by_its_login_id_on_the_others() {
    let cluster = Cluster::start().await;
    let b = cluster.gateway("");
    let c = cluster.gateway("");
    // Behind one public name, the identity provider sends the browser back to B.
    let a = cluster.gateway(&format!("public_url = \"{}\"", b.base));
    let http = client();
    create_connection(&http, &a).await;
    // Another connection, and an application's key for it only.
    create_connection_named(&http, &a, "fabrikam").await;
    let created: Value = http
        .post(format!("{}/api/v1/keys", a.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({ "name": "fabrikam-app", "connections": ["fabrikam"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other_key = created["key"].as_str().unwrap().to_owned();

    // Started on A; the user is at the identity provider, the callback not yet taken.
    let (callback, login_id) = sign_in_until_callback(&cluster, &http, &a, None).await;
    for g in [&a, &b, &c] {
        let (status, body) = login_status(&http, g, CONNECTION, &login_id, None).await;
        assert_eq!(status, 200, "{body} {}", g.stderr());
        assert_eq!(body, json!({ "status": "pending" }), "{}", g.base);
    }

    // The callback lands on B; A and C learn the outcome from the store.
    let done = http.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 200, "{}", b.stderr());
    for g in [&b, &c, &a] {
        let (status, body) = login_status(&http, g, CONNECTION, &login_id, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "signed_in", "{body}");
        assert_eq!(body["principal"], "u42", "{body}");
    }

    // The login ID is no oracle: on another connection it is unknown, even to the admin; a key
    // for that connection learns nothing of it there, and may not ask on this one.
    for g in [&b, &c] {
        let (status, body) = login_status(&http, g, "fabrikam", &login_id, None).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["code"], "not_found", "{body}");
        let (status, body) = login_status(&http, g, "fabrikam", &login_id, Some(&other_key)).await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = login_status(&http, g, CONNECTION, &login_id, Some(&other_key)).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.get("principal").is_none(), "{body}");
        let (status, _) = login_status(&http, g, CONNECTION, "no-such-login", None).await;
        assert_eq!(status, 404);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_token_requests_over_three_instances_cause_one_refresh_and_lose_no_refresh_token()
 {
    let cluster = Cluster::start().await;
    let gateways = [
        cluster.gateway(""),
        cluster.gateway(""),
        cluster.gateway(""),
    ];
    let http = client();
    create_connection(&http, &gateways[0]).await;
    sign_in(&cluster, &http, &gateways[0]).await;
    // A spent refresh token is refused from now on, so a lost rotation would show.
    cluster.mock.set_strict_rotation(true);
    let refreshes_before = cluster.mock.refresh_grants();
    // The refresh takes a moment, as Entra's can: every instance loads the due token meanwhile.
    cluster.mock.set_latency(Duration::from_secs(1));
    cluster.due_for_refresh().await;

    let requests: Vec<_> = (0..1000)
        .map(|i| {
            let http = http.clone();
            let url = format!(
                "{}/api/v1/connections/{CONNECTION}/users/u42/folders",
                gateways[i % 3].base
            );
            tokio::spawn(async move {
                http.get(url)
                    .basic_auth("admin", Some(ADMIN_PASSWORD))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await.unwrap().unwrap(), 200);
    }
    // An instance that loaded the stored token (due) started one refresh of it; one of them
    // reached the identity provider, the others waited for its turn and took what it stored.
    // (On a busy machine an instance may load the token only after the refresh was committed,
    // and then has nothing to refresh: at most one refresh per instance, not exactly one.)
    let started = || async {
        let mut started = 0;
        for g in &gateways {
            started += g.metric(&http, "exgate_token_refreshes_total").await;
        }
        started
    };
    until("one of the instances committed a refresh", || async {
        started().await >= 1 && cluster.refreshed().await
    })
    .await;
    let refreshes = started().await;
    assert!(
        (1..=3).contains(&refreshes),
        "{refreshes} refreshes: at most one per instance"
    );
    for g in &gateways {
        assert_eq!(
            g.metric(&http, "exgate_token_refresh_failures_total").await,
            0,
            "{}",
            g.stderr()
        );
    }
    assert_eq!(cluster.mock.refresh_grants() - refreshes_before, 1);

    // No refresh token was lost: a new instance, due again, refreshes with the stored one.
    cluster.mock.set_latency(Duration::ZERO);
    cluster.due_for_refresh().await;
    let d = cluster.gateway("");
    assert_eq!(list_folders(&http, &d).await, 200);
    until("the fourth instance refreshed", || async {
        cluster.refreshed().await
    })
    .await;
    assert_eq!(cluster.mock.refresh_grants() - refreshes_before, 2);
    assert_eq!(
        d.metric(&http, "exgate_token_refresh_failures_total").await,
        0,
        "{}",
        d.stderr()
    );
    assert_eq!(list_folders(&http, &gateways[1]).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_an_instance_in_the_middle_of_refreshes_and_writes_loses_nothing_acknowledged() {
    let cluster = Cluster::start().await;
    let mut gateways = vec![
        cluster.gateway(""),
        cluster.gateway(""),
        cluster.gateway(""),
    ];
    let http = client();
    create_connection(&http, &gateways[0]).await;
    sign_in(&cluster, &http, &gateways[0]).await;
    // Tokens to be refreshed a second after they are issued, and token requests that take a
    // while: under load, some instance is always in the middle of a refresh.
    cluster.mock.set_refresh_in(Some(1));
    cluster.mock.set_latency(Duration::from_millis(400));
    cluster.due_for_refresh().await;

    let bases: Arc<Vec<String>> = Arc::new(gateways.iter().map(|g| g.base.clone()).collect());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..6 {
        let (http, bases, stop) = (http.clone(), Arc::clone(&bases), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            // What the instance acknowledged: the API keys it answered 201 for.
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let base = &bases[(w + n) % 3];
                n += 1;
                let name = format!("w{w}-{n}");
                let created = http
                    .post(format!("{base}/api/v1/keys"))
                    .basic_auth("admin", Some(ADMIN_PASSWORD))
                    .json(&json!({ "name": name, "connections": [CONNECTION] }))
                    .send()
                    .await;
                if let Ok(resp) = created
                    && resp.status() == 201
                    && let Ok(body) = resp.json::<Value>().await
                {
                    acknowledged.push((name, body["key"].as_str().unwrap().to_owned()));
                }
                let _ = http
                    .get(format!(
                        "{base}/api/v1/connections/{CONNECTION}/users/u42/folders"
                    ))
                    .basic_auth("admin", Some(ADMIN_PASSWORD))
                    .send()
                    .await;
            }
            acknowledged
        }));
    }

    // Let the load run until the instance to be killed has refreshed a few times, then kill it
    // while it holds an account's refresh turn (its call to the identity provider in flight) and
    // its writes go on.
    until("the first instance refreshed under load", || async {
        gateways[0]
            .metric(&http, "exgate_token_refreshes_total")
            .await
            >= 3
    })
    .await;
    until(
        "the first instance is in the middle of a refresh",
        || async { gateways[0].holds_refresh_turn(&cluster).await },
    )
    .await;
    gateways[0].kill_9();
    let refreshes = cluster.mock.refresh_grants();
    until("the survivors refreshed after the kill", || async {
        cluster.mock.refresh_grants() >= refreshes + 2
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for w in workers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(acknowledged.len() > 10, "{}", acknowledged.len());

    // Every acknowledged key is there, on the survivors and on a new instance, and works.
    gateways.push(cluster.gateway(""));
    let listed: Value = http
        .get(format!("{}/api/v1/keys", gateways[3].base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: std::collections::BTreeSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    for (name, _) in &acknowledged {
        assert!(
            names.contains(name.as_str()),
            "acknowledged key {name} lost"
        );
    }
    for (i, (_, key)) in acknowledged.iter().enumerate().step_by(7) {
        let g = &gateways[1 + i % 3];
        let resp = http
            .get(format!(
                "{}/api/v1/connections/{CONNECTION}/users/u42/folders",
                g.base
            ))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", g.stderr());
    }
    // And the account's refresh token survived: the account is active and refreshes still work.
    cluster.mock.set_latency(Duration::ZERO);
    let before = cluster.mock.refresh_grants();
    cluster.due_for_refresh().await;
    let e = cluster.gateway("");
    assert_eq!(list_folders(&http, &e).await, 200);
    until("a new instance refreshed", || async {
        cluster.mock.refresh_grants() > before && cluster.refreshed().await
    })
    .await;
    assert_eq!(
        e.metric(&http, "exgate_token_refresh_failures_total").await,
        0,
        "{}",
        e.stderr()
    );
    let account: Value = http
        .get(format!(
            "{}/api/v1/connections/{CONNECTION}/accounts/u42",
            e.base
        ))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["status"], "active", "{account}");
}

/// What `key` gets from `gateway` for the list of keys (an admin route that needs no account).
async fn keys_status(http: &reqwest::Client, gateway: &Gateway, key: &str) -> reqwest::StatusCode {
    http.get(format!("{}/api/v1/keys", gateway.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_revoked_on_one_instance_is_refused_by_the_other_processes_within_a_second() {
    let cluster = Cluster::start().await;
    let gateways = [
        cluster.gateway(""),
        cluster.gateway(""),
        cluster.gateway(""),
    ];
    let http = client();
    let created: Value = http
        .post(format!("{}/api/v1/keys", gateways[0].base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({ "name": "leaked", "admin": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, key) = (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
    );
    // Every process knows the key and has it in its cache (kept five seconds).
    for g in &gateways {
        assert_eq!(keys_status(&http, g, &key).await, 200, "{}", g.stderr());
    }
    let revoked = http
        .delete(format!("{}/api/v1/keys/{id}", gateways[0].base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(1);
    for g in &gateways {
        loop {
            let status = keys_status(&http, g, &key).await;
            if status == 401 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} still answers {status} to the revoked key a second after its revocation",
                g.base
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // The admin password still works everywhere.
    for g in &gateways {
        let status = http
            .get(format!("{}/api/v1/keys", g.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_processes_under_load_never_exceed_the_mailbox_limit_together() {
    // The mock keeps Exchange Online's 4 requests at once and a budget of 40 per 2 seconds
    // (Microsoft's 10,000 per 10 minutes, scaled to a test). The gateways are told 36 per 2
    // seconds: the rest covers what three processes on one busy machine add to a request's way
    // to the mock (the policy's margin is 10 ms).
    let mock_policy = exgate_testkit::graph::ThrottlePolicy {
        concurrent: 4,
        requests: 40,
        window: Duration::from_secs(2),
    };
    let cluster = Cluster::start().await;
    cluster.mock.set_graph_throttling(Some(mock_policy));
    let policy = "\n[graph]\nconcurrent = 4\nrequests = 36\nwindow_secs = 2\n";
    let gateways = [
        cluster.gateway(policy),
        cluster.gateway(policy),
        cluster.gateway(policy),
    ];
    let http = client();
    let resp = http
        .post(format!("{}/api/v1/connections", gateways[0].base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({
            "name": "daemon", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
            "client_id": seed::DAEMON_APP, "client_secret": seed::DAEMON_APP_SECRET,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let resp = http
        .post(format!(
            "{}/api/v1/connections/daemon/static-users",
            gateways[1].base
        ))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({ "principal": "adele", "mailbox": seed::ADELE }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());

    let created: Value = http
        .post(format!("{}/api/v1/keys", gateways[2].base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({ "name": "load", "admin": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();

    // 24 clients over the three processes list Adele's messages as fast as they are answered,
    // for a little more than two of the mock's windows.
    let run = mock_policy.window * 2 + Duration::from_millis(500);
    let started = Instant::now();
    let clients: Vec<_> = (0..24)
        .map(|c| {
            let url = format!(
                "{}/api/v1/connections/daemon/users/adele/messages?limit=5",
                gateways[c % 3].base
            );
            let (http, key) = (http.clone(), key.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while started.elapsed() < run {
                    let resp = http.get(&url).bearer_auth(&key).send().await.unwrap();
                    let status = resp.status().as_u16();
                    statuses.push((status, resp.text().await.unwrap()));
                }
                statuses
            })
        })
        .collect();
    let mut answered = 0usize;
    for c in clients {
        for (status, body) in c.await.unwrap() {
            assert_eq!(status, 200, "{body}");
            answered += 1;
        }
    }
    assert_eq!(
        cluster.mock.graph_throttled(seed::ADELE),
        0,
        "the mock refused requests ({answered} answered)"
    );
    assert!(
        cluster.mock.max_concurrent_seen(seed::ADELE) <= 4,
        "{} in progress at once",
        cluster.mock.max_concurrent_seen(seed::ADELE)
    );
    // The load went beyond one window's budget, so the limit was reached and kept.
    assert!(
        answered > 54,
        "only {answered} answered: the load did not reach the limit"
    );
}
