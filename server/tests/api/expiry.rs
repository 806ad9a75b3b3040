//! `credential_expires` through the API: set, shown with its warning, cleared; and the gauge.

use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::AppOnly;

#[tokio::test]
async fn a_credential_expiry_is_shown_warned_about_cleared_and_measured() {
    let t = AppOnly::start().await;
    let soon = (OffsetDateTime::now_utc() + Duration::days(5)).date();
    let (status, view) =
        t.gw.admin(
            "PATCH",
            "/api/v1/connections/contoso",
            json!({ "credential_expires": soon.to_string() }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let credential = &view["credential"];
    assert_eq!(credential["kind"], "client secret", "{view}");
    assert_eq!(credential["expires"], format!("{soon}T00:00:00Z"));
    assert_eq!(credential["source"], "given");
    assert_eq!(credential["warning"], "within-7-days", "{view}");
    let seconds = credential["seconds_left"].as_i64().unwrap();
    assert!(seconds > 3 * 86_400 && seconds <= 5 * 86_400, "{view}");
    assert!(
        credential["message"]
            .as_str()
            .unwrap()
            .contains("exgate connection edit contoso --client-secret-file FILE"),
        "{view}"
    );
    let (_, list) = t.gw.admin("GET", "/api/v1/connections", Value::Null).await;
    assert_eq!(list[0]["credential"]["warning"], "within-7-days", "{list}");

    // The gauge: seconds left for the connection.
    let resp = t.gw.send("GET", "/metrics", None, Value::Null).await;
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("exgate_credential_expiry_seconds{connection=\"contoso\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    let gauge: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((gauge - seconds).abs() < 60, "{line} against {seconds}");

    // Bad input changes nothing; "none" clears it, and the gauge goes with it.
    let (status, err) =
        t.gw.admin(
            "PATCH",
            "/api/v1/connections/contoso",
            json!({ "credential_expires": "soon" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("credential_expires"),
        "{err}"
    );
    let (_, view) =
        t.gw.admin("GET", "/api/v1/connections/contoso", Value::Null)
            .await;
    assert_eq!(view["credential"]["warning"], "within-7-days", "{view}");
    let (status, view) =
        t.gw.admin(
            "PATCH",
            "/api/v1/connections/contoso",
            json!({ "credential_expires": "none" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert!(view["credential"].is_null(), "{view}");
    let resp = t.gw.send("GET", "/metrics", None, Value::Null).await;
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        !text.contains("exgate_credential_expiry_seconds{"),
        "{text}"
    );
}
