//! The gateway's hot path: a mailbox request whose token is fresh reads nothing from the store.

use std::sync::Arc;

use axum::http::StatusCode;
use exgate_core::clock::SystemClock;
use exgate_core::secret::Vault;
use exgate_core::services::Services;
use exgate_core::store::{CountingStore, SqliteStore};
use exgate_server::AppState;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use serde_json::{Value, json};

use crate::{Gateway, Home, PUBLIC_URL, html_page};

/// A mocked gateway whose store counts the calls made to it.
async fn counted_gateway(home: &Home, mock: &MockMicrosoft) -> (Gateway, Arc<CountingStore>) {
    let mut settings = home.settings([
        ("EXGATE__ENDPOINTS__AUTHORITY_HOST", mock.base_url()),
        ("EXGATE__ENDPOINTS__GRAPH_URL", mock.graph_url()),
    ]);
    let vault = Arc::new(Vault::open_or_create(&settings.master_key_file).unwrap());
    let sqlite = SqliteStore::open(&settings.store_path, Arc::clone(&vault))
        .await
        .unwrap();
    let counting = Arc::new(CountingStore::new(Arc::new(sqlite)));
    let services = Services::over(
        counting.clone(),
        vault,
        &mut settings,
        Arc::new(SystemClock),
    )
    .unwrap();
    let state = AppState::new(services, settings, PUBLIC_URL.into());
    (Gateway::new(state).await, counting)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_mailbox_request_with_a_fresh_token_reads_nothing_from_the_store() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = Home::new();
    let (gw, counting) = counted_gateway(&home, &mock).await;
    gw.connection(json!({
        "name": "web", "tenant": seed::TENANT_ID, "auth": "oauth2-delegated",
        "client_id": seed::WEB_APP, "client_secret": seed::WEB_APP_SECRET,
    }))
    .await;
    let key = gw.app_key("portal", &["web"]).await;
    mock.set_auto_approve(Some(seed::ADELE));
    let (status, login) = gw
        .call(
            "POST",
            "/api/v1/connections/web/logins",
            &key,
            json!({ "principal": "u42" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{login}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(login["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let (status, html) = html_page(&gw, location.strip_prefix(PUBLIC_URL).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{html}");

    let folders = "/api/v1/connections/web/users/u42/folders";
    let (status, body) = gw.call("GET", folders, &key, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    counting.take();
    let (status, body) = gw.call("GET", folders, &key, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        counting.take(),
        Vec::<&str>::new(),
        "a second request: key, connection, account and token all from memory"
    );
}
