//! Registering an app through the mock Graph as an admin would (device code through Microsoft
//! Graph Command Line Tools), and the registered app at work at the mock Entra: secrets,
//! certificates, consent in `roles`/`scp`, Graph's permission checks, and Exchange's admin API
//! (`InvokeCommand`) making app-only IMAP work.

#[path = "mail/support.rs"]
mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::seed::*;
use exgate_testkit::fixtures::{APP_CERT_PEM, APP_KEY_PEM};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
const EXCHANGE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn mock() -> MockMicrosoft {
    let m = MockMicrosoft::start(exgate_testkit::Seed::contoso())
        .await
        .unwrap();
    m.set_device_code_interval(0);
    m
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Raw token endpoint answer.
async fn token_answer(m: &MockMicrosoft, form: &[(&str, &str)]) -> (u16, Value) {
    let r = http()
        .post(m.token_endpoint(TENANT_ID))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// A delegated token through the device code flow, as `upn` approving it.
async fn device_token(m: &MockMicrosoft, client_id: &str, scope: &str, upn: &str) -> Value {
    let start: Value = http()
        .post(m.device_code_endpoint(TENANT_ID))
        .form(&[("client_id", client_id), ("scope", scope)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    m.approve_device_code(start["user_code"].as_str().unwrap(), upn)
        .unwrap();
    let (status, body) = token_answer(
        m,
        &[
            ("grant_type", DEVICE_GRANT),
            ("client_id", client_id),
            ("device_code", start["device_code"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// An admin's (or anyone's) Graph token through Microsoft Graph Command Line Tools.
async fn graph_cli_token(m: &MockMicrosoft, upn: &str) -> String {
    let body = device_token(
        m,
        GRAPH_CLI_APP,
        "https://graph.microsoft.com/.default offline_access",
        upn,
    )
    .await;
    body["access_token"].as_str().unwrap().to_string()
}

async fn secret_token(
    m: &MockMicrosoft,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> (u16, Value) {
    token_answer(
        m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", scope),
        ],
    )
    .await
}

struct Graph<'a> {
    m: &'a MockMicrosoft,
    token: String,
}

impl Graph<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = http()
            .request(method, format!("{}{path}", self.m.graph_url()))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

/// The resource's service principal, found by its app ID, and the ID of a permission by name.
async fn resource_sp(g: &Graph<'_>, app_id: &str) -> Value {
    let list = g
        .get(&format!("/servicePrincipals?$filter=appId eq '{app_id}'"))
        .await;
    let items = list["value"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    items[0].clone()
}

fn permission_id(sp: &Value, kind: &str, name: &str) -> String {
    sp[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["value"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn an_admin_registers_an_app_and_its_secret_consent_and_roles_work_at_once() {
    let m = mock().await;
    let g = Graph {
        m: &m,
        token: graph_cli_token(&m, ADMIN).await,
    };
    let scp = claims(&g.token)["scp"].as_str().unwrap().to_string();
    assert!(scp.contains("Application.ReadWrite.All"), "{scp}");

    // Permissions resolved by name from the resources' service principals: Microsoft's IDs.
    let graph_sp = resource_sp(&g, GRAPH_APP_ID).await;
    let exchange_sp = resource_sp(&g, EXCHANGE_APP_ID).await;
    let mail_read_role = permission_id(&graph_sp, "appRoles", "Mail.Read");
    assert_eq!(mail_read_role, "810c84a8-4a9e-49e6-bf7d-12d183f40d01");
    let mail_read_scope = permission_id(&graph_sp, "oauth2PermissionScopes", "Mail.Read");
    assert_eq!(mail_read_scope, "570282fd-fa5c-430d-a7fd-fc8dc98a9dca");
    let imap_role = permission_id(&exchange_sp, "appRoles", "IMAP.AccessAsApp");
    let by_key = g
        .get(&format!(
            "/servicePrincipals(appId='{GRAPH_APP_ID}')?$select=id,appRoles"
        ))
        .await;
    assert_eq!(by_key["id"], graph_sp["id"]);
    assert!(by_key.get("oauth2PermissionScopes").is_none(), "$select");

    let (status, app) = g
        .post(
            "/applications",
            json!({
                "displayName": "exgate registered",
                "signInAudience": "AzureADMyOrg",
                "isFallbackPublicClient": true,
                "publicClient": {"redirectUris": ["http://localhost"]},
                "web": {"redirectUris": ["https://gateway.example/service/oauth2/authorize"]},
                "requiredResourceAccess": [
                    {"resourceAppId": GRAPH_APP_ID, "resourceAccess": [
                        {"id": mail_read_role, "type": "Role"},
                        {"id": mail_read_scope, "type": "Scope"}]},
                    {"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": [
                        {"id": imap_role, "type": "Role"}]}
                ]
            }),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    let app_id = app["appId"].as_str().unwrap().to_string();
    let object_id = app["id"].as_str().unwrap().to_string();
    assert_ne!(app_id, object_id);
    assert_eq!(app["isFallbackPublicClient"], true);
    let found = g
        .get(&format!("/applications?$filter=appId eq '{app_id}'"))
        .await;
    assert_eq!(found["value"][0]["id"], object_id.as_str());
    let found = g
        .get("/applications?$filter=displayName eq 'exgate registered'")
        .await;
    assert_eq!(found["value"].as_array().unwrap().len(), 1);

    // A secret: its value comes back once.
    let (status, secret) = g
        .post(
            &format!("/applications/{object_id}/addPassword"),
            json!({"passwordCredential": {"displayName": "exgate", "endDateTime": "2099-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(status, 200, "{secret}");
    let value = secret["secretText"].as_str().unwrap().to_string();
    assert_eq!(secret["hint"], &value[..3]);
    let listed = g.get(&format!("/applications(appId='{app_id}')")).await;
    assert_eq!(listed["passwordCredentials"][0]["secretText"], Value::Null);
    assert_eq!(listed["passwordCredentials"][0]["keyId"], secret["keyId"]);
    assert_eq!(
        listed["passwordCredentials"][0]["endDateTime"],
        "2099-01-01T00:00:00Z"
    );

    // Without a service principal, Entra refuses app-only tokens.
    let (status, body) =
        secret_token(&m, &app_id, &value, "https://graph.microsoft.com/.default").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_codes"][0], 7000229);

    let (status, sp) = g.post("/servicePrincipals", json!({"appId": app_id})).await;
    assert_eq!(status, 201, "{sp}");
    let sp_id = sp["id"].as_str().unwrap().to_string();
    let (status, again) = g.post("/servicePrincipals", json!({"appId": app_id})).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(
        again["error"]["code"],
        "Request_MultipleObjectsWithSameKeyValue"
    );

    // A token now, without roles: nothing is consented yet.
    let (status, body) =
        secret_token(&m, &app_id, &value, "https://graph.microsoft.com/.default").await;
    assert_eq!(status, 200, "{body}");
    let token = claims(body["access_token"].as_str().unwrap());
    assert_eq!(token["oid"], sp_id.as_str());
    assert!(token.get("roles").is_none(), "{token}");

    // Admin consent: an app role assignment per application permission.
    let graph_sp_id = graph_sp["id"].as_str().unwrap();
    let assign =
        json!({"principalId": sp_id, "resourceId": graph_sp_id, "appRoleId": mail_read_role});
    let (status, assignment) = g
        .post(
            &format!("/servicePrincipals/{graph_sp_id}/appRoleAssignedTo"),
            assign.clone(),
        )
        .await;
    assert_eq!(status, 201, "{assignment}");
    assert_eq!(assignment["appRoleId"], mail_read_role.as_str());
    let (status, dup) = g
        .post(
            &format!("/servicePrincipals/{graph_sp_id}/appRoleAssignedTo"),
            assign,
        )
        .await;
    assert_eq!(status, 400, "{dup}");
    assert_eq!(
        dup["error"]["message"],
        "Permission being assigned already exists on the object."
    );
    let (status, body) =
        secret_token(&m, &app_id, &value, "https://graph.microsoft.com/.default").await;
    assert_eq!(status, 200);
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["roles"],
        json!(["Mail.Read"])
    );
    let assignments = g
        .get(&format!("/servicePrincipals/{sp_id}/appRoleAssignments"))
        .await;
    assert_eq!(assignments["value"].as_array().unwrap().len(), 1);

    // Delegated consent: an OAuth2 permission grant, reflected in `scp` of the app's own
    // device code sign-in (it allows public client flows).
    let (status, grant) = g
        .post(
            "/oauth2PermissionGrants",
            json!({"clientId": sp_id, "consentType": "AllPrincipals",
                   "resourceId": graph_sp_id, "scope": "Mail.Read User.Read"}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let (status, dup) = g
        .post(
            "/oauth2PermissionGrants",
            json!({"clientId": sp_id, "consentType": "AllPrincipals",
                   "resourceId": graph_sp_id, "scope": "Mail.Read"}),
        )
        .await;
    assert_eq!(status, 409, "{dup}");
    let adele = device_token(&m, &app_id, "https://graph.microsoft.com/.default", ADELE).await;
    let scp = claims(adele["access_token"].as_str().unwrap())["scp"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(scp, "Mail.Read User.Read");
    let grants = g
        .get(&format!(
            "/oauth2PermissionGrants?$filter=clientId eq '{sp_id}'"
        ))
        .await;
    let grant_id = grants["value"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = g
        .call(
            reqwest::Method::PATCH,
            &format!("/oauth2PermissionGrants/{grant_id}"),
            Some(json!({"scope": "Mail.Read User.Read Mail.Send"})),
        )
        .await;
    assert_eq!(status, 204);
    let adele = device_token(&m, &app_id, "https://graph.microsoft.com/.default", ADELE).await;
    assert!(
        claims(adele["access_token"].as_str().unwrap())["scp"]
            .as_str()
            .unwrap()
            .contains("Mail.Send")
    );
    let org = g.get("/organization").await;
    assert_eq!(org["value"][0]["id"], TENANT_ID);
}

#[tokio::test]
async fn a_user_without_an_admin_role_is_refused_consent_and_others_apps() {
    let m = mock().await;
    // The Graph CLI's tenant-wide consent puts the scopes into Adele's token too; Graph
    // checks her directory roles.
    let adele = Graph {
        m: &m,
        token: graph_cli_token(&m, ADELE).await,
    };
    let (status, app) = adele
        .post("/applications", json!({"displayName": "adele's app"}))
        .await;
    assert_eq!(status, 201, "members may register apps: {app}");
    let app_id = app["appId"].as_str().unwrap();
    let (status, sp) = adele
        .post("/servicePrincipals", json!({"appId": app_id}))
        .await;
    assert_eq!(
        status, 201,
        "an owner may create its service principal: {sp}"
    );
    let graph_sp = resource_sp(&adele, GRAPH_APP_ID).await;
    let role = permission_id(&graph_sp, "appRoles", "Mail.ReadWrite");
    let (status, denied) = adele
        .post(
            &format!(
                "/servicePrincipals/{}/appRoleAssignedTo",
                graph_sp["id"].as_str().unwrap()
            ),
            json!({"principalId": sp["id"], "resourceId": graph_sp["id"], "appRoleId": role}),
        )
        .await;
    assert_eq!(status, 403, "{denied}");
    assert_eq!(denied["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(
        denied["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    let (status, denied) = adele
        .post(
            "/oauth2PermissionGrants",
            json!({"clientId": sp["id"], "consentType": "AllPrincipals",
                   "resourceId": graph_sp["id"], "scope": "Mail.Read"}),
        )
        .await;
    assert_eq!(status, 403, "{denied}");

    // Megan neither owns Adele's app nor is an admin.
    let megan = Graph {
        m: &m,
        token: graph_cli_token(&m, MEGAN).await,
    };
    let (status, denied) = megan
        .post(
            &format!("/applications/{}/addPassword", app["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "{denied}");

    // A token without the scope is refused whoever holds it: the seeded CLI app has no
    // directory scopes.
    let plain = device_token(&m, PUBLIC_APP, "User.Read", ADMIN).await;
    let admin_without_scope = Graph {
        m: &m,
        token: plain["access_token"].as_str().unwrap().to_string(),
    };
    let (status, denied) = admin_without_scope
        .post("/applications", json!({"displayName": "x"}))
        .await;
    assert_eq!(status, 403, "{denied}");
    assert_eq!(denied["error"]["code"], "Authorization_RequestDenied");
}

#[tokio::test]
async fn removed_and_expired_secrets_fail_as_entra_fails_them_and_certificates_sign_assertions() {
    let m = mock().await;
    let g = Graph {
        m: &m,
        token: graph_cli_token(&m, ADMIN).await,
    };
    let (_, app) = g
        .post("/applications", json!({"displayName": "rotating"}))
        .await;
    let (id, app_id) = (app["id"].as_str().unwrap(), app["appId"].as_str().unwrap());
    g.post("/servicePrincipals", json!({"appId": app_id})).await;
    let add = |end: &'static str| {
        let g = &g;
        let path = format!("/applications/{id}/addPassword");
        async move {
            let (status, s) = g
                .post(&path, json!({"passwordCredential": {"endDateTime": end}}))
                .await;
            assert_eq!(status, 200, "{s}");
            s
        }
    };
    let old = add("2099-01-01T00:00:00Z").await;
    let new = add("2099-06-01T00:00:00Z").await;
    let scope = "https://graph.microsoft.com/.default";
    let old_value = old["secretText"].as_str().unwrap();
    assert_eq!(secret_token(&m, app_id, old_value, scope).await.0, 200);
    let (status, _) = g
        .post(
            &format!("/applications/{id}/removePassword"),
            json!({"keyId": old["keyId"]}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = secret_token(&m, app_id, old_value, scope).await;
    assert_eq!(
        (status, body["error_codes"][0].clone()),
        (401, json!(7000215)),
        "{body}"
    );
    assert_eq!(
        secret_token(&m, app_id, new["secretText"].as_str().unwrap(), scope)
            .await
            .0,
        200
    );

    // A short-lived secret expires with the mock's clock: AADSTS7000222.
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::days(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, short) = g
        .post(
            &format!("/applications/{id}/addPassword"),
            json!({"passwordCredential": {"endDateTime": soon}}),
        )
        .await;
    let short_value = short["secretText"].as_str().unwrap();
    assert_eq!(secret_token(&m, app_id, short_value, scope).await.0, 200);
    m.advance_clock(Duration::from_secs(3 * 24 * 3600));
    let (status, body) = secret_token(&m, app_id, short_value, scope).await;
    assert_eq!(
        (status, body["error_codes"][0].clone()),
        (401, json!(7000222)),
        "{body}"
    );

    // A certificate uploaded as a key credential signs client assertions (the admin signs in
    // again: the clock moved past the first token's lifetime).
    let g = Graph {
        m: &m,
        token: graph_cli_token(&m, ADMIN).await,
    };
    let der = x509_parser::pem::parse_x509_pem(APP_CERT_PEM.as_bytes())
        .unwrap()
        .1
        .contents;
    let (status, body) = g
        .call(
            reqwest::Method::PATCH,
            &format!("/applications/{id}"),
            Some(json!({"keyCredentials": [{"type": "AsymmetricX509Cert", "usage": "Verify",
                                            "key": STANDARD.encode(&der), "displayName": "CN=exgate"}]})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let listed = g.get(&format!("/applications/{id}")).await;
    assert_eq!(
        listed["keyCredentials"][0]["customKeyIdentifier"],
        "D6B2C2831EDA191BDF734AD39A96C30C8E39A3D7"
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp() + 3 * 24 * 3600;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(Sha256::digest(&der)));
    let assertion = jsonwebtoken::encode(
        &header,
        &json!({"aud": m.token_endpoint(TENANT_ID), "iss": app_id, "sub": app_id,
                "jti": uuid::Uuid::new_v4().to_string(), "nbf": now, "iat": now, "exp": now + 300}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(APP_KEY_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    let (status, body) = token_answer(
        &m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", app_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["azpacr"],
        "2"
    );
}
