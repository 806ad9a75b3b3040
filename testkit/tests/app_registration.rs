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

    // App-only callers need the app role: the daemon's roles are mail roles only.
    let daemon = Graph {
        m: &m,
        token: support::graph_app_token(&m).await,
    };
    let (status, denied) = daemon
        .post("/applications", json!({"displayName": "x"}))
        .await;
    assert_eq!(status, 403, "{denied}");
    let (status, _) = daemon
        .call(reqwest::Method::GET, "/servicePrincipals", None)
        .await;
    assert_eq!(status, 403);
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

/// An IMAP session after `AUTHENTICATE XOAUTH2` as `mailbox` with `token`: the answer to
/// AUTHENTICATE and to `SELECT INBOX`.
async fn imap_try(m: &MockMicrosoft, mailbox: &str, token: &str) -> (String, String) {
    let mut c = support::Lines::new(support::tls_to(m, &m.imap_url()).await);
    c.line().await.unwrap();
    let auth = c
        .ask(
            &format!(
                "a AUTHENTICATE XOAUTH2 {}",
                support::xoauth2(mailbox, token)
            ),
            "a ",
        )
        .await;
    let auth = auth.last().unwrap().clone();
    if !auth.starts_with("a OK") {
        return (auth, String::new());
    }
    let select = c.ask("b SELECT INBOX", "b ").await;
    (auth, select.last().unwrap().clone())
}

struct Exchange<'a> {
    m: &'a MockMicrosoft,
    token: String,
}

impl Exchange<'_> {
    async fn invoke(&self, cmdlet: &str, parameters: Value) -> (u16, Value) {
        let r = http()
            .post(format!(
                "{}/{TENANT_ID}/InvokeCommand",
                self.m.exchange_admin_url()
            ))
            .bearer_auth(&self.token)
            .json(&json!({"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

async fn exchange_admin<'a>(m: &'a MockMicrosoft, upn: &str) -> Exchange<'a> {
    let body = device_token(
        m,
        EXO_POWERSHELL_APP,
        "https://outlook.office365.com/.default",
        upn,
    )
    .await;
    Exchange {
        m,
        token: body["access_token"].as_str().unwrap().to_string(),
    }
}

#[tokio::test]
async fn exchange_powershell_registers_the_service_principal_and_app_only_imap_then_works() {
    let m = mock().await;
    let g = Graph {
        m: &m,
        token: graph_cli_token(&m, ADMIN).await,
    };
    let (_, app) = g
        .post("/applications", json!({"displayName": "imap daemon"}))
        .await;
    let (id, app_id) = (app["id"].as_str().unwrap(), app["appId"].as_str().unwrap());
    let (_, sp) = g.post("/servicePrincipals", json!({"appId": app_id})).await;
    let sp_id = sp["id"].as_str().unwrap();
    let exchange_sp = resource_sp(&g, EXCHANGE_APP_ID).await;
    let graph_sp = resource_sp(&g, GRAPH_APP_ID).await;
    for (resource, role) in [(&exchange_sp, "IMAP.AccessAsApp"), (&graph_sp, "Mail.Read")] {
        let rid = resource["id"].as_str().unwrap();
        let (status, body) = g
            .post(
                &format!("/servicePrincipals/{rid}/appRoleAssignedTo"),
                json!({"principalId": sp_id, "resourceId": rid,
                       "appRoleId": permission_id(resource, "appRoles", role)}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, secret) = g
        .post(&format!("/applications/{id}/addPassword"), json!({}))
        .await;
    let secret = secret["secretText"].as_str().unwrap();
    let (_, body) =
        secret_token(&m, app_id, secret, "https://outlook.office365.com/.default").await;
    let app_token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(claims(&app_token)["roles"], json!(["IMAP.AccessAsApp"]));

    // Consent alone is not enough: Exchange does not know the service principal.
    let (auth, _) = imap_try(&m, ADELE, &app_token).await;
    assert_eq!(auth, "a NO AUTHENTICATE failed.");

    // Only an Exchange (or Global) Administrator may run cmdlets.
    let adele = exchange_admin(&m, ADELE).await;
    let (status, denied) = adele.invoke("Get-ServicePrincipal", json!({})).await;
    assert_eq!(status, 403, "{denied}");
    let admin = exchange_admin(&m, ADMIN).await;
    let (status, created) = admin
        .invoke(
            "New-ServicePrincipal",
            json!({"AppId": app_id, "ObjectId": sp_id, "DisplayName": "imap daemon"}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["value"][0]["ObjectId"], sp_id);
    let (status, again) = admin
        .invoke(
            "New-ServicePrincipal",
            json!({"AppId": app_id, "ObjectId": sp_id}),
        )
        .await;
    assert_eq!(status, 400, "{again}");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{again}"
    );

    // Registered but without a mailbox right: authenticated, not connected.
    let (auth, select) = imap_try(&m, ADELE, &app_token).await;
    assert_eq!(auth, "a OK AUTHENTICATE completed.");
    assert!(!select.starts_with("b OK"), "{select}");

    let (status, granted) = admin
        .invoke(
            "Add-MailboxPermission",
            json!({"Identity": ADELE, "User": sp_id, "AccessRights": ["FullAccess"],
                   "InheritanceType": "All"}),
        )
        .await;
    assert_eq!(status, 200, "{granted}");
    let (_, select) = imap_try(&m, ADELE, &app_token).await;
    assert_eq!(select, "b OK [READ-WRITE] SELECT completed.");
    let (auth, select) = imap_try(&m, MEGAN, &app_token).await;
    assert_eq!(auth, "a OK AUTHENTICATE completed.");
    assert!(
        !select.starts_with("b OK"),
        "no right on Megan's mailbox: {select}"
    );
    let (status, missing) = admin
        .invoke(
            "Add-MailboxPermission",
            json!({"Identity": "nobody@contoso.onmicrosoft.com", "User": sp_id, "AccessRights": "FullAccess"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ManagementObjectNotFoundException"),
        "{missing}"
    );

    // RBAC for Applications: a scope and a scoped role assignment limit app-only Graph.
    let (_, body) = secret_token(&m, app_id, secret, "https://graph.microsoft.com/.default").await;
    let graph_app = Graph {
        m: &m,
        token: body["access_token"].as_str().unwrap().to_string(),
    };
    let megan_inbox = format!("/users/{MEGAN}/mailFolders/inbox/messages");
    assert_eq!(
        graph_app
            .call(reqwest::Method::GET, &megan_inbox, None)
            .await
            .0,
        200
    );
    let (status, body) = admin
        .invoke(
            "New-ManagementScope",
            json!({"Name": "Adele only", "RecipientRestrictionFilter": format!("PrimarySmtpAddress -eq '{ADELE}'")}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin
        .invoke(
            "New-ManagementRoleAssignment",
            json!({"App": sp_id, "Role": "Application Mail.Read", "CustomResourceScope": "Adele only"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"][0]["CustomResourceScope"], "Adele only");
    assert_eq!(
        graph_app
            .call(reqwest::Method::GET, &megan_inbox, None)
            .await
            .0,
        403
    );
    let adele_inbox = format!("/users/{ADELE}/mailFolders/inbox/messages");
    assert_eq!(
        graph_app
            .call(reqwest::Method::GET, &adele_inbox, None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn bad_registrations_are_refused_whole_and_redirect_uris_reach_the_authorize_endpoint() {
    let m = mock().await;
    let g = Graph {
        m: &m,
        token: graph_cli_token(&m, ADMIN).await,
    };
    let before = g.get("/applications").await["value"]
        .as_array()
        .unwrap()
        .len();
    for (body, what) in [
        (
            json!({"displayName": "x", "redirectUri": "https://a.example"}),
            "Invalid property 'redirectUri'.",
        ),
        (
            json!({"displayName": "x", "web": {"redirectUris": ["http://gateway.example/cb"]}}),
            "web.redirectUris",
        ),
        (
            json!({"displayName": "x", "requiredResourceAccess": [{"resourceAppId": "graph"}]}),
            "requiredResourceAccess",
        ),
        (json!({"signInAudience": "AzureADMyOrg"}), "displayName"),
    ] {
        let (status, refused) = g.post("/applications", body).await;
        assert_eq!(status, 400, "{refused}");
        assert_eq!(refused["error"]["code"], "Request_BadRequest");
        assert!(
            refused["error"]["message"].as_str().unwrap().contains(what),
            "{refused}"
        );
    }
    let after = g.get("/applications").await["value"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "a refused request creates nothing");
    let (status, _) = g
        .call(
            reqwest::Method::GET,
            "/applications?$filter=startswith(displayName,'x')",
            None,
        )
        .await;
    assert_eq!(status, 400);

    let registered = "https://gateway.example/service/oauth2/authorize";
    let (_, app) = g
        .post(
            "/applications",
            json!({"displayName": "gateway", "web": {"redirectUris": [registered]}}),
        )
        .await;
    let app_id = app["appId"].as_str().unwrap();
    let authorize = |redirect: &str| {
        let url = reqwest::Url::parse_with_params(
            &m.authorize_endpoint(TENANT_ID),
            &[
                ("client_id", app_id),
                ("response_type", "code"),
                ("redirect_uri", redirect),
                ("scope", "openid"),
            ],
        )
        .unwrap();
        async move { http().get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(!authorize(registered).await.contains("AADSTS50011"));
    assert!(
        authorize("https://evil.example/cb")
            .await
            .contains("AADSTS50011")
    );
}

#[tokio::test]
async fn a_principal_grant_consents_for_one_user_only() {
    let m = mock().await;
    let g = Graph {
        m: &m,
        token: graph_cli_token(&m, ADMIN).await,
    };
    let (_, app) = g
        .post(
            "/applications",
            json!({"displayName": "per user", "isFallbackPublicClient": true}),
        )
        .await;
    let app_id = app["appId"].as_str().unwrap();
    let (_, sp) = g.post("/servicePrincipals", json!({"appId": app_id})).await;
    let graph_sp = resource_sp(&g, GRAPH_APP_ID).await;
    let (status, grant) = g
        .post(
            "/oauth2PermissionGrants",
            json!({"clientId": sp["id"], "consentType": "Principal", "principalId": MEGAN_OID,
                   "resourceId": graph_sp["id"], "scope": "Mail.Read"}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    assert_eq!(grant["consentType"], "Principal");
    let megan = device_token(&m, app_id, "https://graph.microsoft.com/.default", MEGAN).await;
    assert_eq!(
        claims(megan["access_token"].as_str().unwrap())["scp"],
        "Mail.Read"
    );

    // Adele has no consent for this app: the device code grant fails with AADSTS65001.
    let start: Value = http()
        .post(m.device_code_endpoint(TENANT_ID))
        .form(&[
            ("client_id", app_id),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    m.approve_device_code(start["user_code"].as_str().unwrap(), ADELE)
        .unwrap();
    let (status, body) = token_answer(
        &m,
        &[
            ("grant_type", DEVICE_GRANT),
            ("client_id", app_id),
            ("device_code", start["device_code"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_codes"][0], 65001);
}

/// Graph's "Get application" app-only: Application.ReadWrite.OwnedBy reads only the apps whose
/// owners include the caller's service principal (an app it created is one); others are 403.
#[tokio::test]
async fn owned_by_reads_only_the_apps_the_caller_owns() {
    let mut contoso = exgate_testkit::Seed::contoso();
    for app in contoso
        .tenants
        .iter_mut()
        .flat_map(|t| t.apps.iter_mut())
        .filter(|a| a.client_id == DAEMON_APP)
    {
        app.application_permissions
            .entry(GRAPH.to_string())
            .or_default()
            .push("Application.ReadWrite.OwnedBy".into());
    }
    let m = MockMicrosoft::start(contoso).await.unwrap();
    let (status, body) = secret_token(
        &m,
        DAEMON_APP,
        DAEMON_APP_SECRET,
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let g = Graph {
        m: &m,
        token: body["access_token"].as_str().unwrap().to_string(),
    };
    // Not an owner of its own registration: refused.
    let own = format!(
        "/applications(appId='{}')?$select=passwordCredentials,keyCredentials",
        DAEMON_APP
    );
    let (status, body) = g.call(reqwest::Method::GET, &own, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    // An app it creates, it owns and may read, with its credentials' metadata.
    let (status, created) = g
        .post(
            "/applications",
            json!({"displayName": "made by the daemon"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let app_id = created["appId"].as_str().unwrap();
    let (status, secret) = g
        .post(
            &format!(
                "/applications/{}/addPassword",
                created["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{secret}");
    let read = g
        .get(&format!(
            "/applications(appId='{app_id}')?$select=passwordCredentials,keyCredentials"
        ))
        .await;
    let listed = &read["passwordCredentials"][0];
    let value = secret["secretText"].as_str().unwrap();
    assert_eq!(listed["hint"], value[..3]);
    assert_eq!(listed["endDateTime"], secret["endDateTime"]);
    assert!(listed["secretText"].is_null());
    assert!(read.get("displayName").is_none(), "$select: {read}");
}
