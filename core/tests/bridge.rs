//! `exgate bridge` with clients that only know passwords: Python's imaplib, poplib and smtplib
//! sign in with a bridge user's local password; the bridge relays to the mock's Exchange Online
//! IMAP, POP and SMTP with XOAUTH2 and the app's token. Wrong passwords, refusals by Exchange
//! (explained with the fix) and a non-loopback listener without TLS are tried too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use exgate_core::auth::SignIn;
use exgate_core::bridge::{Bridge, BridgeSettings, BridgeUsers, Relay};
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::mail::MailProtocol;
use exgate_core::model::ConnectionSpec;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::mailproto::{MailSwitchChange, ServicePrincipalSwitch};

struct Running {
    users: Arc<BridgeUsers>,
    addrs: Vec<(MailProtocol, SocketAddr)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn port(&self, protocol: MailProtocol) -> u16 {
        self.addrs
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| a.port())
            .unwrap()
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.served.await.unwrap();
    }
}

fn settings(listen: IpAddr) -> BridgeSettings {
    BridgeSettings {
        listen,
        imap_port: Some(0),
        pop_port: Some(0),
        smtp_port: Some(0),
        tls: None,
        max_connections: 16,
        idle_timeout: Duration::from_secs(60),
    }
}

/// A store, sign-in, bridge users and a relay over `network`, in a temporary directory.
async fn parts(
    network: NetworkSettings,
) -> (
    Arc<Connections>,
    Arc<BridgeUsers>,
    Arc<Relay>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let vault = Arc::new(Vault::open_or_create(&dir.path().join("key")).unwrap());
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("db"), vault)
            .await
            .unwrap(),
    );
    let clock = Arc::new(SystemClock);
    let connections = Arc::new(Connections::new(store.clone(), vec![], clock.clone()));
    let signin = Arc::new(
        SignIn::new(
            store.clone(),
            connections.clone(),
            network.clone(),
            clock.clone(),
        )
        .unwrap(),
    );
    let users = Arc::new(BridgeUsers::new(store, connections.clone(), clock));
    let relay = Arc::new(Relay::new(connections.clone(), signin, network).unwrap());
    (connections, users, relay, dir)
}

/// A bridge for the daemon app's connection to the mock, serving on 127.0.0.1.
async fn bridge(mock: &MockMicrosoft) -> Running {
    let network = NetworkSettings {
        authority_host: Some(mock.base_url().parse().unwrap()),
        imap_url: Some(mock.imap_url().parse().unwrap()),
        pop_url: Some(mock.pop_stls_url().parse().unwrap()),
        smtp_url: Some(mock.smtp_url().parse().unwrap()),
        ca_pem: Some(mock.mail_ca_pem().into_bytes()),
        ..NetworkSettings::default()
    };
    let (connections, users, relay, dir) = parts(network).await;
    let spec = ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some(seed::DAEMON_APP.into()),
        client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
        ..ConnectionSpec::default()
    };
    connections.add("daemon", &spec).await.unwrap();
    let bound = Bridge::new(
        settings(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        users.clone(),
        relay,
    )
    .bind()
    .await
    .unwrap();
    let addrs = bound.addrs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));
    Running {
        users,
        addrs,
        stop: Some(stop),
        served,
        _dir: dir,
    }
}

const SCRIPT: &str = r#"
import imaplib, poplib, smtplib, sys
from email.message import EmailMessage

imap_port, pop_port, smtp_port, user, password, to, subject = sys.argv[1:]

# IMAP: LOGIN with the local password, then mailbox commands relayed to Exchange.
imap = imaplib.IMAP4("127.0.0.1", int(imap_port))
typ, _ = imap.login(user, password)
assert typ == "OK", typ
typ, data = imap.select("INBOX")
assert typ == "OK" and int(data[0]) > 0, data
typ, data = imap.uid("SEARCH", None, "ALL")
first = data[0].split()[0]
typ, data = imap.uid("FETCH", first, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert typ == "OK" and b"Subject:" in data[0][1], data
imap.logout()

# IMAP AUTHENTICATE PLAIN without an initial response (a `+` continuation).
imap = imaplib.IMAP4("127.0.0.1", int(imap_port))
typ, _ = imap.authenticate("PLAIN", lambda _: f"\0{user}\0{password}".encode())
assert typ == "OK", typ
imap.logout()

# POP3: USER/PASS, STAT, RETR.
pop = poplib.POP3("127.0.0.1", int(pop_port))
pop.user(user)
pop.pass_(password)
count, size = pop.stat()
assert count > 0 and size > 0, (count, size)
resp, lines, _ = pop.retr(1)
assert resp.startswith(b"+OK") and lines, resp
pop.quit()

# SMTP: AUTH (smtplib picks PLAIN), then a message sent as the mailbox.
smtp = smtplib.SMTP("127.0.0.1", int(smtp_port))
smtp.login(user, password)
msg = EmailMessage()
msg["From"] = user
msg["To"] = to
msg["Subject"] = subject
msg.set_content("sent through the exgate bridge")
smtp.send_message(msg)
smtp.quit()

# SMTP AUTH LOGIN, both answers in 334 continuations.
smtp = smtplib.SMTP("127.0.0.1", int(smtp_port))
smtp.ehlo()
smtp.user, smtp.password = user, password
code, _ = smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
assert code == 235, code
smtp.quit()

# A wrong password is refused by the bridge itself.
try:
    imaplib.IMAP4("127.0.0.1", int(imap_port)).login(user, password + "x")
    raise SystemExit("a wrong password was accepted")
except imaplib.IMAP4.error as e:
    assert "Invalid credentials" in str(e), e
print("ok")
"#;

fn python(args: &[String]) -> std::process::Output {
    Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("python3 runs (cargo xtask ci installs it)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_clients_read_and_send_through_the_bridge_with_a_local_password() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let running = bridge(&mock).await;
    let (user, password) = running
        .users
        .add("daemon", seed::ADELE, None)
        .await
        .unwrap();
    assert_eq!(user.mailbox.as_str(), seed::ADELE);
    assert!(user.principal.is_none(), "an app-only user acts as the app");

    let args: Vec<String> = vec![
        running.port(MailProtocol::Imap).to_string(),
        running.port(MailProtocol::Pop).to_string(),
        running.port(MailProtocol::Smtp).to_string(),
        seed::ADELE.to_owned(),
        password.expose().to_owned(),
        seed::MEGAN.to_owned(),
        "through the bridge".to_owned(),
    ];
    let out = tokio::task::spawn_blocking(move || python(&args))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Exchange saw XOAUTH2 for Adele from the app, over each protocol, and the message arrived.
    let sessions = mock.mail_sessions();
    for protocol in ["Imap", "Pop", "Smtp"] {
        assert!(
            sessions
                .iter()
                .any(|s| format!("{:?}", s.protocol) == protocol
                    && s.mechanism.as_deref() == Some("XOAUTH2")
                    && s.mailbox.as_deref() == Some(seed::ADELE)
                    && s.app_only
                    && s.outcome.as_deref() == Some("ok")),
            "{protocol}: {sessions:?}"
        );
    }
    assert!(
        mock.delivered(seed::MEGAN)
            .iter()
            .any(|(_, subject)| subject == "through the bridge"),
        "{:?}",
        mock.delivered(seed::MEGAN)
    );
    // The local password never reached Exchange.
    assert!(!format!("{sessions:?}").contains(password.expose()));
    running.stop().await;
}

/// Speaks one IMAP exchange with the bridge and returns everything it answered.
async fn imap_login(port: u16, user: &str, password: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("a1 LOGIN \"{user}\" \"{password}\"\r\na2 LOGOUT\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_by_exchange_reaches_the_client_with_the_fix() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let running = bridge(&mock).await;
    let (_, password) = running
        .users
        .add("daemon", seed::MEGAN, None)
        .await
        .unwrap();
    // The app's service principal is not registered in Exchange.
    let mut change = MailSwitchChange::default();
    change.service_principals.insert(
        seed::DAEMON_APP.into(),
        ServicePrincipalSwitch {
            registered: Some(false),
            full_access: None,
        },
    );
    mock.change_mail_switches(&change).unwrap();

    let answer = imap_login(
        running.port(MailProtocol::Imap),
        seed::MEGAN,
        password.expose(),
    )
    .await;
    assert!(answer.contains("a1 NO [UNAVAILABLE] exgate:"), "{answer}");
    assert!(answer.contains("New-ServicePrincipal"), "{answer}");
    assert!(answer.contains(seed::DAEMON_APP), "{answer}");
    // The session stays usable after a refusal: LOGOUT is answered.
    assert!(answer.contains("a2 OK LOGOUT completed."), "{answer}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_unknown_or_removed_and_wrong_passwords_get_the_same_answer() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let running = bridge(&mock).await;
    let (_, password) = running
        .users
        .add("daemon", seed::ADELE, None)
        .await
        .unwrap();
    let port = running.port(MailProtocol::Imap);

    let wrong = imap_login(port, seed::ADELE, "not-the-password").await;
    let unknown = imap_login(port, seed::MEGAN, password.expose()).await;
    running.users.remove(seed::ADELE).await.unwrap();
    let removed = imap_login(port, seed::ADELE, password.expose()).await;
    for answer in [&wrong, &unknown, &removed] {
        assert!(
            answer.contains("a1 NO [AUTHENTICATIONFAILED] Invalid credentials."),
            "{answer}"
        );
    }
    // Exchange was never asked.
    assert!(
        mock.mail_sessions().is_empty(),
        "{:?}",
        mock.mail_sessions()
    );
    // A second user for the same mailbox is refused.
    running
        .users
        .add("daemon", seed::MEGAN, None)
        .await
        .unwrap();
    let again = running
        .users
        .add("daemon", seed::MEGAN, None)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    running.stop().await;
}

#[tokio::test]
async fn listening_beyond_loopback_without_tls_is_refused() {
    let (_, users, relay, _dir) = parts(NetworkSettings::default()).await;
    let err = Bridge::new(settings(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), users, relay)
        .bind()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("in the clear"), "{err}");
}
