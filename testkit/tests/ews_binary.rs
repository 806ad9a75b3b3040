//! The `exgate-mock` binary's EWS: the ready line names the EWS and autodiscover URLs, the
//! EWS flags shape what it answers, `/_mock/ews` changes it at run time, bad flags exit 2.

mod ews_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ews_support::{all_between, dfid, envelope, find_items, http};
use exgate_testkit::entra::seed::{ADELE, ADELE_PASSWORD};
use serde_json::Value;

struct Mock {
    child: Child,
    ready: Value,
}

impl Mock {
    fn start(args: &[&str]) -> Mock {
        let mut child = Command::new(env!("CARGO_BIN_EXE_exgate-mock"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready = serde_json::from_str(&line).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("no ready line ({e}): {line:?}")
        });
        Mock { child, ready }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn find_inbox(url: &str) -> (u16, String) {
    let r = http()
        .post(url)
        .header(
            "authorization",
            format!(
                "Basic {}",
                STANDARD.encode(format!("{ADELE}:{ADELE_PASSWORD}"))
            ),
        )
        .body(envelope("", &find_items(&dfid("inbox"), "IdOnly", "", "")))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn the_ready_line_names_ews_and_the_flags_switch_it() {
    let mock = Mock::start(&[
        "--ews-version",
        "2010sp2",
        "--ews-throttle",
        "27,1,3600",
        "--ews-block-apps",
        "--ews-no-streaming",
        "--ews-drop-notifications",
        "--autodiscover-redirect-url",
        "http://evil.example/autodiscover/autodiscover.xml",
    ]);
    let base = mock.ready["base_url"].as_str().unwrap().to_string();
    let ews = mock.ready["ews_url"].as_str().unwrap().to_string();
    assert_eq!(ews, format!("{base}/EWS/Exchange.asmx"));
    assert_eq!(
        mock.ready["autodiscover_url"],
        format!("{base}/autodiscover/autodiscover.xml")
    );
    let switches: Value = http()
        .get(format!("{base}/_mock/ews"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(switches["version"], "Exchange2010_SP2");
    assert_eq!(switches["block_apps"], true);
    assert_eq!(switches["throttling"]["budget"], 1);
    assert_eq!(switches["autodiscover_redirect"]["kind"], "url");
    assert_eq!(switches["streaming"], false);
    assert_eq!(switches["drop_notifications"], true);
    // Exchange2016 is too new for 2010 SP2.
    let (status, text) = find_inbox(&ews).await;
    assert_eq!(status, 500);
    assert!(text.contains("ErrorInvalidServerVersion"));
    let changed = http()
        .post(format!("{base}/_mock/ews"))
        .body(r#"{"version": "Exchange2019"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let (status, first) = find_inbox(&ews).await;
    assert_eq!(status, 200, "{first}");
    let (status, busy) = find_inbox(&ews).await;
    assert_eq!(status, 500);
    assert!(busy.contains("ErrorServerBusy"));
    assert!(!all_between(&busy, r#"<t:Value Name="BackOffMilliseconds">"#, "<").is_empty());
    exgate_testkit::xsd::validate_soap(&[text, first, busy]).unwrap();
}

#[test]
fn bad_ews_flags_exit_2_naming_the_problem() {
    for (args, wanted) in [
        (
            vec!["--ews-version", "2003"],
            "unknown Exchange version `2003`",
        ),
        (vec!["--ews-throttle", "1,2"], "--ews-throttle `1,2`"),
        (vec!["--ews-throttle", "0,1,1"], "at least 1"),
        (
            vec!["--ews-auth", "basic,kerberos"],
            "`kerberos` is none of",
        ),
        (
            vec!["--autodiscover-redirect-addr", "nobody"],
            "not an SMTP address",
        ),
        (vec!["--fault", "429,service=smtp"], "service `smtp`"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_exgate-mock"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_exgate-mock"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stderr);
    assert!(text.contains("/EWS/Exchange.asmx") && text.contains("--ews-version"));
}
