//! The real `exgate` binary in an isolated environment. On failure each check prints the command,
//! its exit code, stdout and stderr.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_SECRET: &str = "Abc8Q~cli-test-secret-value-0123456789xyz";
const PASSWORD: &str = "onprem-password-for-the-cli-test";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures")
        .join(name)
}

struct Env {
    dir: tempfile::TempDir,
}

struct Run {
    cmd: String,
    out: Output,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn dump(&self) -> String {
        format!(
            "command: {}\nexit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.cmd,
            self.out.status.code(),
            self.stdout(),
            self.stderr()
        )
    }
    fn ok(self) -> Self {
        assert_eq!(self.out.status.code(), Some(0), "{}", self.dump());
        self
    }
    /// Asserts the exit code and that stderr contains every needle.
    fn fails(self, code: i32, needles: &[&str]) -> Self {
        assert_eq!(self.out.status.code(), Some(code), "{}", self.dump());
        for needle in needles {
            assert!(
                self.stderr().contains(needle),
                "missing {needle:?}\n{}",
                self.dump()
            );
        }
        self
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", self.dump()))
    }
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data/exgate")
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_exgate"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("EXGATE_SYSTEM_CONFIG", self.dir.path().join("system.toml"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(input) = stdin {
            pipe.write_all(input.as_bytes()).unwrap();
        }
        drop(pipe);
        Run {
            cmd: format!("exgate {}", args.join(" ")),
            out: child.wait_with_output().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn list(&self) -> Value {
        self.run(&["connection", "list", "--json"]).ok().json()
    }
}

/// `add` with the flags of every auth kind, then `show --json`, must give back every field.
#[test]
fn add_then_show_round_trips_every_auth_kind() {
    let env = Env::new();
    let secret_file = env.write("secret.txt", &format!("{CLIENT_SECRET}\n"));
    let cert = fixture("app.crt");
    let key = fixture("app.key");
    let combined = fixture("app.pem");
    let thumbprint = {
        let out = env
            .run(&[
                "connection",
                "add",
                "probe",
                "--tenant",
                "common",
                "--auth",
                "oauth2-app-only",
                "--client-id",
                CLIENT_ID,
                "--certificate",
                combined.to_str().unwrap(),
            ])
            .ok();
        drop(out);
        let v = env
            .run(&["connection", "show", "probe", "--json"])
            .ok()
            .json();
        env.run(&["connection", "remove", "probe"]).ok();
        v["auth"]["certificate"]["thumbprint_sha256"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(thumbprint.len(), 64);

    let cases: Vec<(&str, Vec<String>, Option<&str>, Value)> = vec![
        (
            "delegated",
            strings(&[
                "--tenant",
                "contoso.onmicrosoft.com",
                "--cloud",
                "usgov",
                "--backend",
                "graph",
                "--auth",
                "oauth2-delegated",
                "--client-id",
                CLIENT_ID,
                "--flow",
                "authorization-code",
                "--redirect-uri",
                "https://portal.contoso.com/service/oauth2/authorize",
                "--scope",
                "Mail.ReadWrite",
                "--scope",
                "offline_access",
                "--return-url",
                "https://portal.contoso.com/exchange/",
                "--client-secret-file",
                secret_file.to_str().unwrap(),
            ]),
            None,
            json!({
                "target": {"kind": "online", "cloud": "usgov", "tenant": "contoso.onmicrosoft.com"},
                "backend": "graph",
                "send": "auto", "sends_with": "graph",
                "auth": {"kind": "oauth2-delegated", "client_id": CLIENT_ID, "flow": "authorization-code",
                    "redirect_uri": "https://portal.contoso.com/service/oauth2/authorize",
                    "scopes": ["Mail.ReadWrite", "offline_access"],
                    "return_urls": ["https://portal.contoso.com/exchange/"], "client_secret_set": true}
            }),
        ),
        (
            "public-device",
            strings(&[
                "--tenant",
                "organizations",
                "--auth",
                "oauth2-delegated",
                "--client-id",
                CLIENT_ID,
                "--flow",
                "device-code",
            ]),
            None,
            json!({
                "target": {"kind": "online", "cloud": "global", "tenant": "organizations"},
                "backend": "auto",
                "send": "auto", "sends_with": "graph",
                "auth": {"kind": "oauth2-delegated", "client_id": CLIENT_ID, "flow": "device-code",
                    "scopes": [], "client_secret_set": false}
            }),
        ),
        (
            "app-secret-stdin",
            strings(&[
                "--tenant",
                TENANT,
                "--cloud",
                "china",
                "--auth",
                "oauth2-app-only",
                "--client-id",
                CLIENT_ID,
                "--client-secret-file",
                "-",
            ]),
            Some(CLIENT_SECRET),
            json!({
                "target": {"kind": "online", "cloud": "china", "tenant": TENANT},
                "backend": "auto",
                "send": "auto", "sends_with": "graph",
                "auth": {"kind": "oauth2-app-only", "client_id": CLIENT_ID, "client_secret_set": true}
            }),
        ),
        (
            "app-cert",
            strings(&[
                "--tenant",
                TENANT,
                "--auth",
                "oauth2-app-only",
                "--client-id",
                CLIENT_ID,
                "--certificate",
                cert.to_str().unwrap(),
                "--private-key",
                key.to_str().unwrap(),
            ]),
            None,
            json!({
                "target": {"kind": "online", "cloud": "global", "tenant": TENANT},
                "backend": "auto",
                "send": "auto", "sends_with": "graph",
                "auth": {"kind": "oauth2-app-only", "client_id": CLIENT_ID, "client_secret_set": false,
                    "certificate": {"thumbprint_sha256": thumbprint, "private_key_set": true}}
            }),
        ),
        (
            "adfs",
            strings(&[
                "--ews-url",
                "https://mail.contoso.com/EWS/Exchange.asmx",
                "--server-version",
                "2016",
                "--backend",
                "ews",
                "--auth",
                "oauth2-delegated",
                "--client-id",
                CLIENT_ID,
                "--authority",
                "https://adfs.contoso.com/adfs/.well-known/openid-configuration",
            ]),
            None,
            json!({
                "target": {"kind": "server", "server_version": "2016",
                    "ews_url": "https://mail.contoso.com/EWS/Exchange.asmx"},
                "backend": "ews",
                "send": "auto", "sends_with": "ews",
                "authority": "https://adfs.contoso.com/adfs/.well-known/openid-configuration",
                "auth": {"kind": "oauth2-delegated", "client_id": CLIENT_ID, "flow": "authorization-code",
                    "scopes": [], "client_secret_set": false}
            }),
        ),
        (
            "basic",
            strings(&[
                "--ews-url",
                "https://mail.contoso.com/EWS/Exchange.asmx",
                "--server-version",
                "se",
                "--auth",
                "basic",
                "--username",
                "svc@contoso.com",
                "--password-file",
                "-",
            ]),
            Some(PASSWORD),
            json!({
                "target": {"kind": "server", "server_version": "se",
                    "ews_url": "https://mail.contoso.com/EWS/Exchange.asmx"},
                "backend": "auto",
                "send": "auto", "sends_with": "ews",
                "auth": {"kind": "basic", "username": "svc@contoso.com", "password_set": true}
            }),
        ),
        (
            "ntlm",
            strings(&[
                "--target",
                "server",
                "--ews-url",
                "https://mail.contoso.com/EWS/Exchange.asmx",
                "--auth",
                "ntlm",
                "--username",
                "CONTOSO\\svc",
                "--password-file",
                "-",
            ]),
            Some(PASSWORD),
            json!({
                "target": {"kind": "server", "server_version": "2019",
                    "ews_url": "https://mail.contoso.com/EWS/Exchange.asmx"},
                "backend": "auto",
                "send": "auto", "sends_with": "ews",
                "auth": {"kind": "ntlm", "username": "CONTOSO\\svc", "password_set": true}
            }),
        ),
    ];

    for (name, flags, stdin, expected) in &cases {
        let mut args = vec!["connection", "add", name];
        args.extend(flags.iter().map(String::as_str));
        let added = env.run_with_stdin(&args, *stdin).ok();
        assert!(
            added.stdout().contains(&format!("added connection {name}")),
            "{}",
            added.dump()
        );

        let shown = env.run(&["connection", "show", name, "--json"]).ok();
        let mut got = shown.json();
        assert_eq!(got["name"], *name);
        assert_eq!(got["source"], "store");
        let obj = got.as_object_mut().unwrap();
        for volatile in ["id", "created_at", "updated_at", "name", "source"] {
            assert!(
                obj.remove(volatile).is_some(),
                "{volatile} missing\n{}",
                shown.dump()
            );
        }
        // A certificate's expiry is read from the certificate itself (made when the test
        // runs, so its date moves): check its source, then compare the rest.
        if let Some(credential) = got.as_object_mut().unwrap().remove("credential") {
            assert_eq!(credential["source"], "certificate", "{}", shown.dump());
            assert!(credential["days_left"].as_i64().is_some_and(|d| d > 0));
        }
        assert_eq!(&got, expected, "{}", shown.dump());
        for secret in [CLIENT_SECRET, PASSWORD] {
            assert!(!shown.stdout().contains(secret));
        }
    }

    let listed = env.list();
    assert_eq!(listed.as_array().unwrap().len(), cases.len());
    let table = env.run(&["connection", "list"]).ok().stdout();
    assert!(table.starts_with("NAME"), "{table}");
    for (name, ..) in &cases {
        assert!(table.contains(name), "{table}");
    }

    // Nothing secret reached the disk in clear text.
    let key_line = std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .nth(3)
        .unwrap()
        .to_owned();
    for file in std::fs::read_dir(env.data()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        for secret in [CLIENT_SECRET, PASSWORD, key_line.as_str()] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} on disk"
            );
        }
    }
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn bad_input_names_the_problem_and_changes_nothing() {
    let env = Env::new();
    env.run(&[
        "connection",
        "add",
        "prod",
        "--tenant",
        "contoso.onmicrosoft.com",
        "--auth",
        "oauth2-delegated",
        "--client-id",
        CLIENT_ID,
    ])
    .ok();
    let before = env.list();
    let secret_file = env.write("secret.txt", CLIENT_SECRET);
    let secret_id_file = env.write("secret-id.txt", "9b5d7c2e-1f0a-4d3b-8c6e-2a1b0c9d8e7f\n");

    env.run(&[
        "connection",
        "add",
        "x",
        "--tenant",
        "72f988bf-86f1-41af-91ab-2d7cd011db4",
        "--auth",
        "oauth2-delegated",
        "--client-id",
        CLIENT_ID,
    ])
    .fails(
        2,
        &["invalid tenant", "malformed tenant GUID", "8-4-4-4-12"],
    );
    env.run(&[
        "connection",
        "add",
        "x",
        "--tenant",
        "contoso.onmicrosoft.com",
        "--auth",
        "oauth2-delegated",
        "--client-id",
        CLIENT_ID,
        "--return-url",
        "http://portal.contoso.com/",
    ])
    .fails(2, &["return_urls", "http://", "https://"]);
    env.run(&[
        "connection",
        "add",
        "x",
        "--tenant",
        "common",
        "--auth",
        "oauth2-delegated",
        "--client-id",
        CLIENT_ID,
        "--flow",
        "device-code",
        "--client-secret-file",
        secret_file.to_str().unwrap(),
    ])
    .fails(
        2,
        &[
            "invalid client_secret",
            "public-client flow",
            "AADSTS700025",
        ],
    );
    env.run(&[
        "connection",
        "add",
        "x",
        "--tenant",
        "common",
        "--auth",
        "oauth2-app-only",
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        secret_id_file.to_str().unwrap(),
    ])
    .fails(2, &["secret's ID", "Value"]);
    env.run(&[
        "connection",
        "add",
        "x",
        "--ews-url",
        "http://mail.contoso.com/EWS/Exchange.asmx",
        "--auth",
        "basic",
        "--username",
        "svc",
        "--password-file",
        secret_file.to_str().unwrap(),
    ])
    .fails(2, &["invalid ews_url", "http://", "use https://"]);
    env.run(&[
        "connection",
        "add",
        "x",
        "--tenant",
        "common",
        "--auth",
        "oauth2-delegated",
        "--client-id",
        CLIENT_ID,
        "--authority",
        "http://idp.contoso.com/.well-known/openid-configuration",
    ])
    .fails(2, &["invalid authority", "clear text"]);
    env.run(&[
        "connection",
        "add",
        "x",
        "--tenant",
        "common",
        "--auth",
        "oauth2-app-only",
        "--client-id",
        CLIENT_ID,
    ])
    .fails(2, &["missing client_secret", "--client-secret-file"]);
    env.run(&[
        "connection",
        "add",
        "PROD",
        "--tenant",
        "common",
        "--auth",
        "oauth2-delegated",
        "--client-id",
        CLIENT_ID,
    ])
    .fails(
        1,
        &[
            "connection `PROD` already exists",
            "nothing was changed",
            "exgate connection edit",
        ],
    );
    env.run(&[
        "connection",
        "add",
        "x",
        "--tenant",
        "common",
        "--auth",
        "oauth2-app-only",
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        "/nonexistent/secret",
    ])
    .fails(2, &["/nonexistent/secret cannot be read"]);
    env.run(&["connection", "edit", "prod", "--client-id", "not-a-guid"])
        .fails(2, &["malformed client ID"]);
    env.run(&["connection", "edit", "prod"])
        .fails(2, &["nothing to change"]);
    env.run(&["connection", "remove", "nope"])
        .fails(1, &["connection `nope` does not exist"]);
    env.run(&["connection", "add", "y", "--client-secret", "inline"])
        .fails(2, &["--client-secret"]);

    assert_eq!(env.list(), before);
}

#[test]
fn edit_changes_only_what_is_given() {
    let env = Env::new();
    let secret_file = env.write("secret.txt", CLIENT_SECRET);
    env.run(&[
        "connection",
        "add",
        "prod",
        "--tenant",
        "contoso.onmicrosoft.com",
        "--auth",
        "oauth2-delegated",
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        secret_file.to_str().unwrap(),
    ])
    .ok();
    let before = env
        .run(&["connection", "show", "prod", "--json"])
        .ok()
        .json();

    env.run(&["connection", "edit", "prod", "--backend", "ews"])
        .ok();
    let after = env
        .run(&["connection", "show", "prod", "--json"])
        .ok()
        .json();
    assert_eq!(after["backend"], "ews");
    assert_eq!(after["auth"], before["auth"]);
    assert_eq!(after["created_at"], before["created_at"]);

    // To a public client on the device-code flow: the secret must go.
    env.run(&["connection", "edit", "prod", "--flow", "device-code"])
        .fails(2, &["public-client flow"]);
    env.run(&[
        "connection",
        "edit",
        "prod",
        "--flow",
        "device-code",
        "--remove-credential",
    ])
    .ok();
    let public = env
        .run(&["connection", "show", "prod", "--json"])
        .ok()
        .json();
    assert_eq!(public["auth"]["flow"], "device-code");
    assert_eq!(public["auth"]["client_secret_set"], false);

    env.run(&["connection", "remove", "prod"]).ok();
    assert_eq!(env.list(), json!([]));
}

#[test]
fn a_key_file_others_can_read_is_refused_with_the_fix() {
    let env = Env::new();
    env.run(&["connection", "list"]).ok();
    let key = env.data().join("master.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.run(&["connection", "list"])
        .fails(2, &["mode 0644", &format!("chmod 600 {}", key.display())]);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.run(&["connection", "list"]).ok();
}

#[test]
fn configuration_errors_name_the_key_and_the_file() {
    let env = Env::new();
    let user_file = env.write(
        "config/exgate/exgate.toml",
        "[store]\npth = \"/tmp/x.db\"\n",
    );
    env.run(&["connection", "list"]).fails(
        2,
        &["unknown key `store.pth`", &user_file.display().to_string()],
    );
    std::fs::remove_file(&user_file).unwrap();

    let explicit = env.write(
        "other.toml",
        "[connections.bad]\ntenant = \"common\"\nauth = \"basic\"\n",
    );
    env.run(&["--config", explicit.to_str().unwrap(), "connection", "list"])
        .fails(
            2,
            &[
                "connections.bad.auth",
                &explicit.display().to_string(),
                "no longer accepts basic",
            ],
        );
    env.run(&["--config", "/nonexistent/exgate.toml", "connection", "list"])
        .fails(2, &["/nonexistent/exgate.toml", "does not exist"]);
}

#[test]
fn declared_connections_are_listed_and_read_only() {
    let env = Env::new();
    env.write("app-secret", CLIENT_SECRET);
    let file = env.write(
        "config/exgate/exgate.toml",
        &format!(
            "[connections.ops]\ntenant = \"{TENANT}\"\nauth = \"oauth2-app-only\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"file:{}\"\n",
            env.dir.path().join("app-secret").display()
        ),
    );
    let shown = env
        .run(&["connection", "show", "ops", "--json"])
        .ok()
        .json();
    assert_eq!(shown["source"], file.display().to_string());
    assert_eq!(shown["auth"]["client_secret_set"], true);
    env.run(&["connection", "remove", "ops"])
        .fails(1, &["declared in", &file.display().to_string()]);
    env.run(&[
        "connection",
        "add",
        "ops",
        "--tenant",
        "common",
        "--auth",
        "oauth2-delegated",
        "--client-id",
        CLIENT_ID,
    ])
    .fails(1, &["already exists"]);
}

#[test]
fn completions_are_generated() {
    let env = Env::new();
    let out = env.run(&["completions", "bash"]).ok().stdout();
    assert!(out.contains("_exgate()"), "{out}");
    assert!(out.contains("connection"), "{out}");
    env.run(&["completions", "tcsh"])
        .fails(2, &["invalid value"]);
}
