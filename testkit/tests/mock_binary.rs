//! The `exgate-mock` binary: ready line, serving on loopback, TLS, seeds, clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use exgate_testkit::entra::seed::{
    ADELE, ADELE_PASSWORD, DAEMON_APP, DAEMON_APP_SECRET, MEGAN, MEGAN_PASSWORD, PUBLIC_APP, SALES,
    TENANT_DOMAIN, TENANT_ID, WEB_APP, WEB_APP_SECRET,
};
use serde_json::{Value, json};

/// A running `exgate-mock`; killed if a test fails before stopping it.
struct Mock {
    child: Option<Child>,
    ready: Value,
}

impl Mock {
    fn start(args: &[&str]) -> Mock {
        let mut child = Command::new(env!("CARGO_BIN_EXE_exgate-mock"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready = match serde_json::from_str(&line) {
            Ok(ready) => ready,
            Err(e) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "no ready line ({e}): {line:?}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        Mock {
            child: Some(child),
            ready,
        }
    }

    fn base(&self) -> String {
        self.ready["base_url"].as_str().unwrap().to_string()
    }

    /// SIGTERM, then the process's exit and output.
    fn stop(mut self) -> Output {
        let child = self.child.take().unwrap();
        assert!(
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        child.wait_with_output().unwrap()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn assert_clean_exit(out: &Output) {
    assert!(
        out.status.success(),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exgate-mock"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn prints_a_ready_line_serves_and_exits_cleanly_on_sigterm() {
    let mock = Mock::start(&[]);
    let ready = mock.ready.clone();
    assert_eq!(ready["ready"], true);
    let base = mock.base();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert_eq!(ready["entra"]["authority"], format!("{base}/{TENANT_ID}"));
    assert_eq!(
        ready["entra"]["discovery_url"],
        format!("{base}/{TENANT_ID}/v2.0/.well-known/openid-configuration")
    );
    assert_eq!(ready["ca_cert"], Value::Null);
    assert_eq!(ready["exchange_admin_url"], format!("{base}/adminapi/beta"));
    let tenant = &ready["tenants"][0];
    assert_eq!(tenant["id"], TENANT_ID);
    assert_eq!(tenant["domain"], TENANT_DOMAIN);
    assert!(
        tenant["users"]
            .as_array()
            .unwrap()
            .contains(&json!({"upn": ADELE, "password": ADELE_PASSWORD}))
    );
    let apps = tenant["apps"].as_array().unwrap();
    assert!(apps.contains(&json!({
        "client_id": PUBLIC_APP, "name": "exgate CLI", "public_client": true, "secret": null
    })));
    assert!(apps.iter().any(|a| a["secret"] == WEB_APP_SECRET));

    let body = reqwest::get(format!("{base}/healthz"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
    let discovery: Value = reqwest::get(ready["entra"]["discovery_url"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], format!("{base}/{TENANT_ID}/v2.0"));

    assert_clean_exit(&mock.stop());
}

#[tokio::test]
async fn tls_writes_the_ca_certificate_that_clients_trust() {
    let mock = Mock::start(&["--tls"]);
    let base = mock.base();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let ca_path = mock.ready["ca_cert"].as_str().unwrap().to_string();
    let ca = std::fs::read(&ca_path).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(health, "ok");
    let out = mock.stop();
    assert_clean_exit(&out);
    assert!(
        !Path::new(&ca_path).exists(),
        "the temporary CA file outlived the process"
    );

    let dir = tempfile::tempdir().unwrap();
    let chosen = dir.path().join("mock-ca.pem");
    let mock = Mock::start(&["--tls", "--ca-out", chosen.to_str().unwrap()]);
    assert_eq!(mock.ready["ca_cert"], chosen.to_str().unwrap());
    let pem = std::fs::read_to_string(&chosen).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_clean_exit(&mock.stop());
}

#[tokio::test]
async fn serves_a_seed_file_with_its_own_tenant_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.json");
    let fabrikam = "3c1d9e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
    let app = "7d6c5b4a-3333-4333-8333-000000000001";
    let seed = json!({
        "tenants": [{
            "id": fabrikam,
            "domain": "fabrikam.onmicrosoft.com",
            "users": [{
                "upn": "alex@fabrikam.onmicrosoft.com",
                "password": "Alex-Passw0rd!",
                "object_id": "9a8b7c6d-0000-4000-8000-000000000001",
                "display_name": "Alex Wilber"
            }],
            "apps": [{
                "client_id": app,
                "name": "fabrikam daemon",
                "secrets": [{"id": "1b2c3d4e-0000-4000-8000-000000000009", "value": "fab~secret", "expires": "2099-01-01T00:00:00Z"}],
                "application_permissions": {"https://graph.microsoft.com": ["Mail.Read"]}
            }]
        }]
    });
    std::fs::write(&seed_path, seed.to_string()).unwrap();
    let mock = Mock::start(&[
        "--seed",
        seed_path.to_str().unwrap(),
        "--token-lifetime",
        "77",
    ]);
    let base = mock.base();
    assert_eq!(
        mock.ready["entra"]["authority"],
        format!("{base}/{fabrikam}")
    );
    assert_eq!(mock.ready["tenants"][0]["apps"][0]["secret"], "fab~secret");
    assert_eq!(mock.ready["tenants"].as_array().unwrap().len(), 1);

    let issued: Value = reqwest::Client::new()
        .post(format!("{base}/fabrikam.onmicrosoft.com/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app),
            ("client_secret", "fab~secret"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(issued["expires_in"], 77, "{issued}");
    // The default tenant is not there.
    let missing = reqwest::Client::new()
        .post(format!("{base}/{TENANT_ID}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    assert_clean_exit(&mock.stop());
}

#[tokio::test]
async fn auto_approve_signs_the_user_in_without_a_form() {
    let mock = Mock::start(&["--auto-approve", ADELE]);
    let base = mock.base();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(format!(
            "{base}/{TENANT_ID}/oauth2/v2.0/authorize?client_id={PUBLIC_APP}&response_type=code\
             &redirect_uri=http%3A%2F%2Flocalhost%3A5000&scope=User.Read&state=s"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("http://localhost:5000/?code="),
        "{location}"
    );
    assert_clean_exit(&mock.stop());
}

#[test]
fn bad_seed_files_and_arguments_exit_2_with_a_precise_message() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"tenants\": [").unwrap();
    let out = run(&["--seed", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("the seed file {} is unusable", broken.display())),
        "{stderr}"
    );
    assert!(stderr.contains("not valid JSON"), "{stderr}");

    let invalid = dir.path().join("invalid.json");
    std::fs::write(
        &invalid,
        r#"{"tenants":[{"id":"not-a-guid","domain":"x.example"}]}"#,
    )
    .unwrap();
    let out = run(&["--seed", invalid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tenant #0: id `not-a-guid` is not a GUID"),
        "{stderr}"
    );

    let out = run(&["--seed", dir.path().join("missing.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the seed file"));

    let out = run(&["--auto-approve", "ghost@contoso.onmicrosoft.com"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no seeded tenant has this user"));

    let out = run(&["--token-lifetime", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-lifetime `soon`"));
}

#[test]
fn rejects_unknown_arguments_with_usage() {
    let out = run(&["--port"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: exgate-mock"));
}

async fn graph_token(base: &str) -> String {
    let issued: Value = reqwest::Client::new()
        .post(format!("{base}/{TENANT_ID}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    issued["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn serves_graph_with_generated_fixtures_and_scaled_throttling() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("adele.json");
    let again = dir.path().join("again.json");
    for path in [&file, &again] {
        let out = run(&[
            "fixtures",
            "--mailbox",
            ADELE,
            "--messages",
            "500",
            "--attachment-every",
            "25",
            "--contacts",
            "30",
            "--seed",
            "7",
            "--out",
            path.to_str().unwrap(),
        ]);
        assert_clean_exit(&out);
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(&again).unwrap(),
        "the same seed writes the same file"
    );
    let content: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(content["mailbox"], ADELE);
    assert_eq!(content["messages"].as_array().unwrap().len(), 500);

    let mock = Mock::start(&[
        "--mailboxes",
        file.to_str().unwrap(),
        "--throttle-scale",
        "10000",
    ]);
    let base = mock.base();
    let graph = mock.ready["graph_url"].as_str().unwrap().to_string();
    assert_eq!(graph, format!("{base}/graph/v1.0"));
    assert_eq!(
        mock.ready["tenants"][0]["shared_mailboxes"],
        json!([{"address": SALES, "display_name": "Sales"}])
    );
    let token = graph_token(&base).await;
    let client = reqwest::Client::new();
    let count: Value = client
        .get(format!(
            "{graph}/users/{ADELE}/messages?$count=true&$top=1&$select=id"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count["@odata.count"], 500, "{count}");
    // Scaled by 10,000: one request per 60 ms per mailbox; three in one batch exceed it.
    let url = format!("/users/{MEGAN}/mailFolders/inbox");
    let batch: Value = client
        .post(format!("{graph}/$batch"))
        .bearer_auth(&token)
        .json(&json!({"requests": [
            {"id": "1", "method": "GET", "url": url},
            {"id": "2", "method": "GET", "url": url},
            {"id": "3", "method": "GET", "url": url}
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let throttled = batch["responses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert!(throttled >= 2, "{batch}");
    assert_clean_exit(&mock.stop());
}

#[test]
fn bad_mailbox_files_and_fixture_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let stranger = dir.path().join("stranger.json");
    std::fs::write(&stranger, r#"{"mailbox": "ghost@contoso.onmicrosoft.com"}"#).unwrap();
    let out = run(&["--mailboxes", stranger.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ghost@contoso.onmicrosoft.com")
            && stderr.contains("neither a seeded user"),
        "{stderr}"
    );
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"mailbox": "adele@contoso.onmicrosoft.com", "messages": [{"folder": "Nowhere", "subject": "x", "from": {"address": "a@b.c"}, "received": "2026-11-01T00:00:00Z"}]}"#,
    )
    .unwrap();
    let out = run(&["--mailboxes", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("folder `Nowhere` is not listed"),
        "{stderr}"
    );

    let out = run(&["fixtures", "--out", "x.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fixtures needs --mailbox"));
    let out = run(&["--throttle-scale", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn fault_flags_and_the_admin_endpoint_drive_faults_in_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("faults.json");
    std::fs::write(
        &plan,
        r#"{"rules":[{"match":{"method":"GET","path":"/messages"},"fault":{"kind":"json_array"}}]}"#,
    )
    .unwrap();
    let mock = Mock::start(&[
        "--fault",
        "429=18446744073709551615,times=2,method=GET,path=/mailfolders",
        "--fault",
        "503=120,service=entra,path=/devicecode",
        "--faults",
        plan.to_str().unwrap(),
        "--chaos",
        "0,seed=3,mix=reset",
    ]);
    let base = mock.base();
    let token = graph_token(&base).await;
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("{base}/graph/v1.0/users/{ADELE}{path}"))
            .bearer_auth(&token)
            .send()
    };
    for _ in 0..2 {
        let a = get("/mailFolders").await.unwrap();
        assert_eq!(a.status(), 429);
        assert_eq!(a.headers()["retry-after"], "18446744073709551615");
    }
    assert_eq!(get("/mailFolders").await.unwrap().status(), 200);
    assert_eq!(get("/messages").await.unwrap().text().await.unwrap(), "[]");
    let device = client
        .post(format!("{base}/{TENANT_ID}/oauth2/v2.0/devicecode"))
        .form(&[("client_id", PUBLIC_APP), ("scope", "User.Read")])
        .send()
        .await
        .unwrap();
    assert_eq!(device.status(), 503);
    assert_eq!(device.headers()["retry-after"], "120");

    // At run time: a reset for the next POST, then the counters.
    let admin = format!("{base}/_mock/faults");
    let added = client
        .post(&admin)
        .body(r#"{"match":{"method":"POST"},"fault":{"kind":"reset"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200);
    let send = client
        .post(format!("{base}/graph/v1.0/users/{ADELE}/messages"))
        .bearer_auth(&token)
        .json(&json!({"subject": "x"}))
        .send()
        .await;
    assert!(send.is_err(), "{send:?}");
    let report: Value = client
        .get(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        report["injected"],
        json!({"429": 2, "503": 1, "json_array": 1, "reset": 1})
    );
    assert_eq!(report["rules"].as_array().unwrap().len(), 5);
    let cleared = client.delete(&admin).send().await.unwrap();
    assert_eq!(cleared.status(), 200);
    let report: Value = client
        .get(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["total"], 0);
    assert_clean_exit(&mock.stop());
}

#[test]
fn bad_fault_flags_exit_2_naming_the_problem() {
    for (args, expected) in [
        (&["--fault", "418"][..], "unknown fault kind `418`"),
        (&["--fault", "delay"][..], "needs milliseconds"),
        (
            &["--fault", "reset,color=red"][..],
            "unknown fault option `color`",
        ),
        (&["--chaos", "2,mix=reset"][..], "between 0 and 1"),
        (
            &["--faults", "/nonexistent/faults.json"][..],
            "cannot read the fault file",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn fixtures_with_large_attachments_stay_small_on_disk_and_serve_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("large.json");
    let out = run(&[
        "fixtures",
        "--mailbox",
        ADELE,
        "--out",
        file.to_str().unwrap(),
        "--messages",
        "20",
        "--attachment-every",
        "0",
        "--events-years",
        "0",
        "--contacts",
        "0",
        "--large-every",
        "10",
        "--large-size",
        "20971520",
    ]);
    assert_clean_exit(&out);
    let len = std::fs::metadata(&file).unwrap().len();
    assert!(len < 200_000, "{len} bytes on disk");
    let content: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let large: Vec<&Value> = content["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["attachments"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["generated_size"] == 20_971_520)
        .map(|_| &content["mailbox"])
        .collect();
    assert_eq!(large.len(), 2);

    let mock = Mock::start(&["--mailboxes", file.to_str().unwrap()]);
    let base = mock.base();
    let token = graph_token(&base).await;
    let client = reqwest::Client::new();
    let page: Value = client
        .get(format!(
            "{base}/graph/v1.0/users/{ADELE}/messages?$filter=hasAttachments eq true&$select=id"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = page["value"][0]["id"].as_str().unwrap().to_string();
    let attachments: Value = client
        .get(format!(
            "{base}/graph/v1.0/users/{ADELE}/messages/{id}/attachments"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let aid = attachments["value"][0]["id"].as_str().unwrap();
    let raw = client
        .get(format!(
            "{base}/graph/v1.0/users/{ADELE}/messages/{id}/attachments/{aid}/$value"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(raw.len(), 20_971_520);
    assert_clean_exit(&mock.stop());
}

/// POSTs a token request to the binary; answers (status, body).
async fn token_request(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/{TENANT_ID}/oauth2/v2.0/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn password_grant(base: &str, upn: &str, password: &str) -> (u16, Value) {
    token_request(
        base,
        &[
            ("grant_type", "password"),
            ("client_id", PUBLIC_APP),
            ("username", upn),
            ("password", password),
            ("scope", "Mail.ReadWrite offline_access"),
        ],
    )
    .await
}

async fn refresh_grant(base: &str, refresh_token: &str) -> (u16, Value) {
    token_request(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", PUBLIC_APP),
            ("refresh_token", refresh_token),
            ("scope", "Mail.ReadWrite offline_access"),
        ],
    )
    .await
}

fn aadsts(answer: &(u16, Value)) -> (u16, Value) {
    (answer.0, answer.1["error_codes"][0].clone())
}

async fn admin(base: &str, change: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let request = match change {
        None => client.get(format!("{base}/_mock/entra")),
        Some(body) => client
            .post(format!("{base}/_mock/entra"))
            .body(body.to_string()),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn entra_switch_flags_shape_the_binarys_answers() {
    let mock = Mock::start(&[
        "--token-lifetime",
        "600",
        "--refresh-in",
        "300",
        "--strict-rotation",
        "--require-mfa",
        MEGAN,
        "--revoke-consent",
        DAEMON_APP,
        "--public-client-flows",
        &format!("{WEB_APP}=on"),
    ]);
    let base = mock.base();

    let (status, switches) = admin(&base, None).await;
    assert_eq!(status, 200, "{switches}");
    assert_eq!(switches["token_lifetime"], 600);
    assert_eq!(switches["refresh_in"], 300);
    assert_eq!(switches["strict_rotation"], true);
    assert_eq!(switches["mfa_required"], json!([MEGAN]));
    assert_eq!(switches["consent_revoked"], json!([DAEMON_APP]));
    assert_eq!(switches["public_client_flows"][WEB_APP], true);
    assert_eq!(switches["public_client_flows"][PUBLIC_APP], true);

    let (status, issued) = password_grant(&base, ADELE, ADELE_PASSWORD).await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["expires_in"], 600);
    assert_eq!(issued["refresh_in"], 300);
    let rt1 = issued["refresh_token"].as_str().unwrap().to_string();
    let (status, refreshed) = refresh_grant(&base, &rt1).await;
    assert_eq!(status, 200, "{refreshed}");
    // Strict rotation: the refresh token used is spent.
    assert_eq!(
        aadsts(&refresh_grant(&base, &rt1).await),
        (400, json!(70008))
    );

    assert_eq!(
        aadsts(&password_grant(&base, MEGAN, MEGAN_PASSWORD).await),
        (400, json!(50076))
    );

    // Revoked consent: an app-only token without roles.
    let (status, app_only) = token_request(
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{app_only}");
    assert!(
        jwt_claims(app_only["access_token"].as_str().unwrap())
            .get("roles")
            .is_none()
    );
    assert_clean_exit(&mock.stop());
}

fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_entra_admin_endpoint_reads_and_changes_every_switch_at_run_time() {
    let mock = Mock::start(&[]);
    let base = mock.base();

    let (status, defaults) = admin(&base, None).await;
    assert_eq!(status, 200);
    assert_eq!(defaults["token_lifetime"], 3600);
    assert_eq!(defaults["refresh_in"], Value::Null);
    assert_eq!(defaults["strict_rotation"], false);
    assert_eq!(defaults["consent_revoked"], json!([]));
    assert_eq!(defaults["mfa_required"], json!([]));
    assert_eq!(defaults["public_client_flows"][PUBLIC_APP], true);

    // By default (Entra) the old refresh token stays valid.
    let (_, issued) = password_grant(&base, ADELE, ADELE_PASSWORD).await;
    let rt1 = issued["refresh_token"].as_str().unwrap().to_string();
    assert!(issued.get("refresh_in").is_none());
    assert_eq!(refresh_grant(&base, &rt1).await.0, 200);
    assert_eq!(refresh_grant(&base, &rt1).await.0, 200);

    let (status, changed) = admin(
        &base,
        Some(json!({
            "token_lifetime": 120,
            "refresh_in": 60,
            "strict_rotation": true,
            "mfa_required": [ADELE],
            "consent_revoked": [DAEMON_APP],
        })),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["token_lifetime"], 120);
    assert_eq!(changed["mfa_required"], json!([ADELE]));
    assert_eq!(admin(&base, None).await.1, changed);
    assert_eq!(
        aadsts(&refresh_grant(&base, &rt1).await),
        (400, json!(50076))
    );

    let (status, _) = admin(&base, Some(json!({"mfa_required": []}))).await;
    assert_eq!(status, 200);
    let (status, again) = refresh_grant(&base, &rt1).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["expires_in"], 120);
    assert_eq!(again["refresh_in"], 60);
    assert_eq!(
        aadsts(&refresh_grant(&base, &rt1).await),
        (400, json!(70008))
    );

    // Public client flows off: the password grant without a credential is refused.
    let (status, _) = admin(
        &base,
        Some(json!({"public_client_flows": {PUBLIC_APP: false}, "refresh_in": 0})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        aadsts(&password_grant(&base, MEGAN, MEGAN_PASSWORD).await),
        (401, json!(7000218))
    );
    assert_eq!(admin(&base, None).await.1["refresh_in"], Value::Null);

    // Unusable changes are refused whole, naming the problem.
    for (bad, says) in [
        (
            json!({"strict_rotation": false, "token_lifetime": 0}),
            "token_lifetime",
        ),
        (
            json!({"strict_rotation": false, "consent_revoked": ["nobody"]}),
            "`nobody`",
        ),
        (
            json!({"strict_rotation": false, "mfa_required": ["ghost@x.example"]}),
            "ghost@x.example",
        ),
        (
            json!({"strict_rotation": false, "lifetime": 5}),
            "unknown field `lifetime`",
        ),
    ] {
        let (status, answer) = admin(&base, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    assert_eq!(admin(&base, None).await.1["strict_rotation"], true);
    assert_clean_exit(&mock.stop());
}

#[test]
fn bad_entra_switch_flags_exit_2_naming_the_problem() {
    for (args, says) in [
        (
            &["--revoke-consent", "nobody"][..],
            "--revoke-consent `nobody`",
        ),
        (
            &["--require-mfa", "ghost@x.example"][..],
            "--require-mfa `ghost@x.example`",
        ),
        (
            &[
                "--public-client-flows",
                "0a1b2c3d-1111-4111-8111-111111111111=maybe",
            ][..],
            "is not CLIENT_ID=on|off",
        ),
        (
            &["--public-client-flows", "nobody=on"][..],
            "--public-client-flows `nobody`",
        ),
        (
            &["--refresh-in", "0"][..],
            "--refresh-in must be at least 1",
        ),
        (&["--refresh-in"][..], "--refresh-in needs a value"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn generic_oidc_flag_serves_the_standards_following_provider() {
    let off = Mock::start(&[]);
    assert!(off.ready["oidc"].is_null(), "{}", off.ready);
    let status = reqwest::get(format!(
        "{}/oidc/.well-known/openid-configuration",
        off.base()
    ))
    .await
    .unwrap()
    .status();
    assert_eq!(status, 404);
    assert_clean_exit(&off.stop());

    let mock = Mock::start(&[
        "--generic-oidc",
        "--oidc-id-token-fault",
        "wrong_nonce",
        "--auto-approve",
        ADELE,
    ]);
    let base = mock.base();
    let oidc = &mock.ready["oidc"];
    assert_eq!(oidc["issuer"], format!("{base}/oidc"));
    assert_eq!(oidc["resource"], "https://api.contoso.test");
    assert!(
        oidc["clients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["client_id"] == "exgate-portal" && c["secret"].is_null()),
        "{oidc}"
    );
    let doc: Value = reqwest::get(oidc["discovery_url"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], oidc["issuer"]);
    let (status, switches) = {
        let resp = reqwest::get(format!("{base}/_mock/oidc")).await.unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200);
    assert_eq!(switches["id_token_fault"], "wrong_nonce");
    assert_eq!(switches["auto_approve"], ADELE);
    assert_clean_exit(&mock.stop());
}

#[test]
fn the_oidc_id_token_fault_needs_generic_oidc_and_a_known_kind() {
    let out = run(&["--oidc-id-token-fault", "wrong_nonce"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--generic-oidc"));
    let out = run(&["--generic-oidc", "--oidc-id-token-fault", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
}

#[tokio::test]
async fn the_mail_servers_are_in_the_ready_line_and_their_switches_in_flags_and_admin() {
    use std::os::unix::fs::PermissionsExt as _;
    let mock = Mock::start(&[
        "--imap-disabled",
        MEGAN,
        "--security-defaults",
        "--sp-full-access",
        &format!("{DAEMON_APP}={SALES}"),
        "--imap-connection-limit",
        "3",
    ]);
    let ready = &mock.ready;
    for (field, scheme) in [
        ("imap_url", "imaps://127.0.0.1:"),
        ("imap_starttls_url", "imap://127.0.0.1:"),
        ("pop_url", "pop3s://127.0.0.1:"),
        ("pop_stls_url", "pop3://127.0.0.1:"),
        ("smtp_url", "smtp://127.0.0.1:"),
        ("smtps_url", "smtps://127.0.0.1:"),
    ] {
        let url = ready[field].as_str().unwrap();
        assert!(url.starts_with(scheme), "{field}: {url}");
        // Something answers there.
        let addr = url.split_once("://").unwrap().1;
        std::net::TcpStream::connect(addr).unwrap();
    }
    let ca = ready["mail_ca_cert"].as_str().unwrap().to_string();
    let pem = std::fs::read_to_string(&ca).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let mode = std::fs::metadata(&ca).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the user reads the CA file");

    // The flags are the switches GET /_mock/mail reports.
    let base = mock.base();
    let client = reqwest::Client::new();
    let switches: Value = client
        .get(format!("{base}/_mock/mail"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(switches["mailboxes"][MEGAN]["imap_enabled"], false);
    assert_eq!(switches["mailboxes"][ADELE]["imap_enabled"], true);
    assert_eq!(
        switches["organization"][TENANT_ID]["security_defaults"],
        true
    );
    assert_eq!(
        switches["service_principals"][DAEMON_APP]["full_access"],
        json!([SALES])
    );
    assert_eq!(switches["imap_connection_limit"], 3);

    // POST changes them; a bad change is refused whole.
    let changed = client
        .post(format!("{base}/_mock/mail"))
        .body(json!({"pop_enabled": {ADELE: false}, "security_defaults": false}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["mailboxes"][ADELE]["pop_enabled"], false);
    assert_eq!(
        changed["organization"][TENANT_ID]["security_defaults"],
        false
    );
    let refused = client
        .post(format!("{base}/_mock/mail"))
        .body(json!({"pop_enabled": {"nobody@contoso.onmicrosoft.com": false}, "imap_connection_limit": 9}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("nobody@"),
        "{body}"
    );
    let after: Value = client
        .get(format!("{base}/_mock/mail"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        after["imap_connection_limit"], 3,
        "nothing of a refused change applies"
    );
    assert_clean_exit(&mock.stop());
    assert!(
        !Path::new(&ca).exists(),
        "the temporary CA file outlived the process"
    );

    // With --tls the mail servers chain to the --tls CA: one file.
    let mock = Mock::start(&["--tls"]);
    assert_eq!(mock.ready["mail_ca_cert"], mock.ready["ca_cert"]);
    assert_clean_exit(&mock.stop());
}
