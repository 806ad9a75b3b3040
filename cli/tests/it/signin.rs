//! Every sign-in flow and failure switch through the real `exgate` binary against the mock Entra ID.

use std::time::Duration;

use exgate_testkit::entra::{Fault, seed};
use tokio::io::AsyncWriteExt;

use crate::util::{Env, jwt_claims};

#[tokio::test]
async fn browser_login_then_token_from_the_cache() {
    let env = Env::new().await;
    env.add_public("contoso", "authorization-code").await;
    env.mock.set_auto_approve(Some(seed::ADELE));
    let run = env.browser_login(&[]).await.ok();
    assert_eq!(
        run.stdout(),
        format!(
            "signed in as {0} ({0}) on connection contoso\n",
            seed::ADELE
        ),
        "{}",
        run.dump()
    );

    let requests = env.mock.token_requests();
    let first = env.run(&["token"]).await.ok().stdout();
    let second = env.run(&["token"]).await.ok().stdout();
    assert_eq!(first, second);
    assert_eq!(first.lines().count(), 1, "only the token: {first}");
    assert_eq!(jwt_claims(&first)["upn"], seed::ADELE);
    assert_eq!(
        env.mock.token_requests(),
        requests,
        "`exgate token` must answer from the cache"
    );

    // Another resource: one refresh, then cached too.
    let smtp = env
        .run(&["token", "--resource", "smtp"])
        .await
        .ok()
        .stdout();
    assert_eq!(jwt_claims(&smtp)["aud"], "https://outlook.office365.com");
    assert_eq!(env.mock.token_requests(), requests + 1);
    env.run(&["token", "--resource", "smtp"]).await.ok();
    assert_eq!(env.mock.token_requests(), requests + 1);
}

#[tokio::test]
async fn manual_login_pastes_the_redirect() {
    let env = Env::new().await;
    env.add_public("contoso", "authorization-code").await;
    env.mock.set_auto_approve(Some(seed::MEGAN));
    let mut running = env.spawn(&["login", "--manual", "--account", "megan"]);
    let url = running
        .line_with("/oauth2/v2.0/authorize?")
        .await
        .trim()
        .to_owned();
    running.line_with("paste it here").await;
    let redirect = env.browser(&url).await;
    let mut stdin = running.child.stdin.take().unwrap();
    stdin
        .write_all(format!("{redirect}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let run = running.finish().await.ok();
    assert_eq!(
        run.stdout(),
        format!(
            "signed in as megan ({}) on connection contoso\n",
            seed::MEGAN
        )
    );
    let accounts = env.run(&["accounts", "list", "--json"]).await.ok().stdout();
    let accounts: serde_json::Value = serde_json::from_str(&accounts).unwrap();
    assert_eq!(accounts[0]["principal"], "megan");
    assert_eq!(accounts[0]["mailbox"], seed::MEGAN);
    assert_eq!(accounts[0]["status"], "active");
}

#[tokio::test]
async fn device_code_login() {
    let env = Env::new().await;
    env.add_public("contoso", "device-code").await;
    env.mock.set_device_code_interval(0);
    let mut running = env.spawn(&["login"]);
    let line = running.line_with("enter the code").await;
    let code = line
        .split("enter the code ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    env.mock.approve_device_code(&code, seed::ADELE).unwrap();
    let run = running.finish().await.ok();
    assert!(
        run.stdout()
            .starts_with(&format!("signed in as {}", seed::ADELE)),
        "{}",
        run.dump()
    );
}

#[tokio::test]
async fn password_login_warns() {
    let env = Env::new().await;
    env.add_public("contoso", "password").await;
    let run = env
        .run_with_stdin(
            &[
                "login",
                "--password",
                "--username",
                seed::ADELE,
                "--password-file",
                "-",
            ],
            seed::ADELE_PASSWORD,
        )
        .await
        .ok();
    assert!(
        run.stderr()
            .contains("warning: the password flow is legacy"),
        "{}",
        run.dump()
    );

    env.mock.require_mfa(seed::MEGAN);
    env.run_with_stdin(&["login", "--password", "--username", seed::MEGAN, "--password-file", "-"], seed::MEGAN_PASSWORD)
        .await
        .fails(
            1,
            &[
                "exgate: the password sign-in was refused: AADSTS50076: multi-factor authentication is required for this sign-in (correlation ID ",
                "hint: sign in again interactively (`exgate login -c contoso`, browser or device code) so the user can complete MFA",
            ],
        );
    env.run_with_stdin(
        &[
            "login",
            "--password",
            "--username",
            seed::ADELE,
            "--password-file",
            "-",
        ],
        "wrong",
    )
    .await
    .fails(
        1,
        &[
            "AADSTS50126: the user name or password is wrong",
            "hint: check the user name (UPN) and password",
        ],
    );
}

#[tokio::test]
async fn app_only_tokens_with_a_secret_and_its_mistakes() {
    let env = Env::new().await;
    env.add_app_only("daemon", seed::DAEMON_APP_SECRET).await;
    let token = env.run(&["token", "--resource", "ews"]).await.ok().stdout();
    let claims = jwt_claims(&token);
    assert_eq!(claims["aud"], "https://outlook.office365.com");
    assert!(
        claims["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "full_access_as_app"),
        "{claims}"
    );

    // The secret's ID is caught before it reaches Entra…
    let id_file = env.write("id.secret", seed::DAEMON_APP_SECRET_ID);
    env.run(&[
        "connection",
        "add",
        "by-id",
        "--tenant",
        seed::TENANT_DOMAIN,
        "--auth",
        "oauth2-app-only",
        "--client-id",
        seed::DAEMON_APP,
        "--client-secret-file",
        id_file.to_str().unwrap(),
    ])
    .await
    .fails(2, &["this is the secret's ID (a GUID), not its value"]);
    // …and a wrong value is explained from Entra's answer.
    env.add_app_only("wrong", seed::WEB_APP_SECRET).await;
    env.run(&["token", "-c", "wrong"]).await.fails(
        1,
        &[
            "exgate: the client credentials request was refused: AADSTS7000215: the client secret sent is not a valid secret of this app (a mistyped or cut-off value, a secret of another app, or a secret's ID instead of its value) (correlation ID ",
            // The secret sent was a wrong value, not the ID (an ID is refused at `connection
            // add`), and the command names the connection it was run for.
            "hint: copy the secret's Value (not its Secret ID) from Certificates & secrets of this app's registration (shown only when it is created; create a new secret if it is lost), then `exgate connection edit wrong --client-secret-file FILE`",
        ],
    );

    env.mock.expire_secret(seed::DAEMON_APP);
    env.run(&["token", "-c", "daemon", "--resource", "graph"])
        .await
        .fails(
            1,
            &[
                "AADSTS7000222: the client secret has expired",
                "hint: create a new client secret under Certificates & secrets",
            ],
        );
}

#[tokio::test]
async fn app_only_with_a_certificate() {
    let env = Env::new().await;
    let cert = env.write("app.crt", exgate_testkit::fixtures::APP_CERT_PEM);
    let key = env.write("app.key", exgate_testkit::fixtures::APP_KEY_PEM);
    env.add(
        "daemon",
        &[
            "--auth",
            "oauth2-app-only",
            "--client-id",
            seed::DAEMON_APP,
            "--certificate",
            cert.to_str().unwrap(),
            "--private-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    let token = env.run(&["token"]).await.ok().stdout();
    assert_eq!(
        jwt_claims(&token)["azpacr"],
        "2",
        "a certificate-authenticated token"
    );
}

#[tokio::test]
async fn missing_consent_and_public_client_flows_disabled() {
    let env = Env::new().await;
    env.add_public("contoso", "authorization-code").await;
    env.mock.revoke_consent(seed::PUBLIC_APP);
    env.mock.set_auto_approve(Some(seed::ADELE));
    env.browser_login(&[]).await.fails(
        1,
        &[
            "AADSTS65001: the user or an administrator has not consented to the permissions the app asks for",
            "hint: grant admin consent under API permissions in the app registration",
        ],
    );

    env.mock.grant_consent(seed::PUBLIC_APP);
    env.mock.set_public_client_flows(seed::PUBLIC_APP, false);
    env.mock.set_device_code_interval(0);
    let mut running = env.spawn(&["login", "--device-code"]);
    let line = running.line_with("enter the code").await;
    let code = line
        .split("enter the code ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    env.mock.approve_device_code(&code, seed::ADELE).unwrap();
    running.finish().await.fails(
        1,
        &[
            "AADSTS7000218: the app requires a client secret or certificate, or public client flows are disabled",
            "hint: for device-code or password sign-in turn on Allow public client flows",
        ],
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_needs_sign_in_with_exit_code_3() {
    let env = Env::new().await;
    env.add_public("contoso", "authorization-code").await;
    env.mock.set_auto_approve(Some(seed::ADELE));
    // Tokens this short-lived are never reusable: every `exgate token` refreshes. With strict
    // rotation, an old refresh token kept by mistake would be refused.
    env.mock.set_token_lifetime(5);
    env.mock.set_strict_rotation(true);
    env.browser_login(&[]).await.ok();
    let a = env.run(&["token"]).await.ok().stdout();
    let b = env.run(&["token"]).await.ok().stdout();
    assert_ne!(
        a, b,
        "each call refreshed (and the rotated refresh token was kept)"
    );

    env.mock.revoke_refresh_tokens(seed::ADELE);
    env.run(&["token"]).await.fails(
        3,
        &[
            "AADSTS70008: the refresh token or authorization code has expired or was revoked",
            "hint: sign in again",
        ],
    );
    let listed = env.run(&["accounts", "list"]).await.ok().stdout();
    assert!(listed.contains("needs-sign-in"), "{listed}");
    let requests = env.mock.token_requests();
    env.run(&["token"]).await.fails(
        3,
        &[
            "needs to sign in again",
            "hint: sign in with `exgate login -c contoso",
        ],
    );
    assert_eq!(
        env.mock.token_requests(),
        requests,
        "a marked account does not ask Entra again"
    );

    env.mock.set_token_lifetime(3600);
    env.browser_login(&[]).await.ok();
    env.run(&["token"]).await.ok();
}

#[tokio::test]
async fn throttling_outages_and_latency_are_ridden_out() {
    let env = Env::new().await;
    env.add_app_only("daemon", seed::DAEMON_APP_SECRET).await;
    env.mock.fail_token_requests(
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        1,
    );
    env.run(&["token"]).await.ok();
    assert_eq!(env.mock.token_requests(), 2);

    env.add_app_only("daemon2", seed::DAEMON_APP_SECRET).await;
    env.mock
        .fail_token_requests(Fault::ServerError { status: 503 }, 1);
    env.mock.set_latency(Duration::from_millis(300));
    env.run(&["token", "-c", "daemon2"]).await.ok();
    assert_eq!(env.mock.token_requests(), 4);
}

#[tokio::test]
async fn accounts_show_reset_reset_all_and_logout() {
    let env = Env::new().await;
    env.add_public("contoso", "authorization-code").await;
    env.run(&["token"]).await.fails(
        3,
        &[
            "no account has signed in on connection `contoso`",
            "hint: sign in with `exgate login -c contoso",
        ],
    );
    env.mock.set_auto_approve(Some(seed::ADELE));
    env.browser_login(&[]).await.ok();
    env.mock.set_auto_approve(Some(seed::MEGAN));
    env.browser_login(&[]).await.ok();

    env.run(&["token"]).await.fails(
        2,
        &[
            "connection `contoso` has 2 accounts; name the one to use",
            "hint: pass --account NAME",
        ],
    );
    let shown = env
        .run(&["accounts", "show", seed::MEGAN])
        .await
        .ok()
        .stdout();
    assert!(shown.contains("status:     active"), "{shown}");
    let filtered = env
        .run(&["accounts", "list", "--filter", "ADELE", "--json"])
        .await
        .ok()
        .stdout();
    let filtered: serde_json::Value = serde_json::from_str(&filtered).unwrap();
    assert_eq!(filtered.as_array().unwrap().len(), 1);

    env.run(&["accounts", "reset", seed::ADELE]).await.ok();
    env.run(&["token", "-a", seed::ADELE])
        .await
        .fails(3, &["reset by an administrator"]);
    env.run(&["token", "-a", seed::MEGAN]).await.ok();

    let out = env.run(&["accounts", "reset-all"]).await.ok().stdout();
    assert_eq!(out, "reset 2 account(s) of connection contoso\n");
    env.run(&["token", "-a", seed::MEGAN])
        .await
        .fails(3, &["reset by an administrator"]);

    env.run(&["logout", "-a", seed::MEGAN]).await.ok();
    env.run(&["accounts", "show", seed::MEGAN]).await.fails(
        1,
        &["account `megan@contoso.onmicrosoft.com` does not exist"],
    );
    env.run(&["logout", "-a", "nobody"])
        .await
        .fails(1, &["does not exist"]);
}

#[tokio::test]
async fn basic_connections_have_no_sign_in() {
    let env = Env::new().await;
    let pw = env.write("pw", "secret-password");
    env.run(&[
        "connection",
        "add",
        "onprem",
        "--ews-url",
        "https://mail.contoso.com/EWS/Exchange.asmx",
        "--auth",
        "basic",
        "--username",
        "svc",
        "--password-file",
        pw.to_str().unwrap(),
    ])
    .await
    .ok();
    env.run(&["login"])
        .await
        .fails(2, &["users sign in only on oauth2-delegated connections"]);
    env.run(&["token", "--resource", "bogus"])
        .await
        .fails(2, &["`bogus` is not a resource"]);
}

#[tokio::test]
async fn a_custom_authority_by_its_discovery_url() {
    let env = Env::new().await;
    let secret = env.write("s", seed::DAEMON_APP_SECRET);
    let discovery = env.mock.discovery_url(seed::TENANT_ID);
    env.run(&[
        "connection",
        "add",
        "oidc",
        "--tenant",
        seed::TENANT_ID,
        "--auth",
        "oauth2-app-only",
        "--client-id",
        seed::DAEMON_APP,
        "--client-secret-file",
        secret.to_str().unwrap(),
        "--authority",
        &discovery,
    ])
    .await
    .ok();
    let token = env.run(&["token"]).await.ok().stdout();
    assert_eq!(jwt_claims(&token)["tid"], seed::TENANT_ID);
    assert!(
        env.mock
            .requests()
            .iter()
            .any(|r| r.uri.ends_with("/.well-known/openid-configuration"))
    );
}

#[tokio::test]
async fn a_generic_oidc_provider_with_its_own_client_id_and_resource() {
    use exgate_testkit::oidc::{IdTokenFault, PORTAL_CLIENT, RESOURCE};
    let env = Env::new().await;
    let discovery = env.mock.enable_generic_oidc();
    let oidc = env.mock.oidc();
    oidc.set_auto_approve(Some(seed::ADELE));

    // Entra ID's client IDs are GUIDs; a custom authority's are what it issued.
    env.run(&[
        "connection",
        "add",
        "entra",
        "--tenant",
        seed::TENANT_DOMAIN,
        "--auth",
        "oauth2-delegated",
        "--client-id",
        PORTAL_CLIENT,
    ])
    .await
    .fails(2, &["client_id", "GUID"]);
    env.add(
        "portal",
        &[
            "--auth",
            "oauth2-delegated",
            "--client-id",
            PORTAL_CLIENT,
            "--authority",
            &discovery,
            "--resource",
            RESOURCE,
        ],
    )
    .await;
    let shown = env
        .run(&["connection", "show", "portal", "--json"])
        .await
        .ok();
    let view: serde_json::Value = serde_json::from_str(&shown.stdout()).unwrap();
    assert_eq!(view["resource"], RESOURCE, "{}", shown.dump());
    assert_eq!(view["auth"]["client_id"], PORTAL_CLIENT);

    // An ID token with another nonce signs nobody in.
    oidc.set_id_token_fault(Some(IdTokenFault::WrongNonce));
    env.browser_login_at("/oidc/authorize?", &[])
        .await
        .fails(1, &["ID token", "nonce"]);
    oidc.set_id_token_fault(None);

    let run = env.browser_login_at("/oidc/authorize?", &[]).await.ok();
    assert!(
        run.stdout()
            .starts_with(&format!("signed in as {}", seed::ADELE)),
        "{}",
        run.dump()
    );
    let authorize = oidc.requests_to("authorize").pop().unwrap();
    assert_eq!(authorize.get("prompt"), Some("consent"));
    assert_eq!(authorize.get("resource"), Some(RESOURCE));
    assert!(authorize.get("nonce").is_some());
    let token = env.run(&["token"]).await.ok().stdout();
    assert_eq!(jwt_claims(&token)["aud"], RESOURCE);
}
