use super::*;
use crate::model::Resource;
use crate::setup::{Actor, plan};

fn needs() -> Needs {
    let mut n = Needs::new("exgate");
    n.actors = [Actor::Cli, Actor::Service].into_iter().collect();
    n.protocols = [Resource::Graph, Resource::Imap].into_iter().collect();
    n.mailboxes = vec!["svc@contoso.com".parse().unwrap()];
    n
}

#[tokio::test]
async fn a_dry_run_lists_a_first_run_and_holds_no_secret() {
    let n = needs();
    let reqs = plan(&n).unwrap();
    let mut dry = DryRun::default();
    let now = time::macros::datetime!(2026-12-01 00:00 UTC);
    let out = converge(&mut dry, &n, &reqs, &Options::default(), now)
        .await
        .unwrap();
    let lines: Vec<String> = dry.calls.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "GET /organization?$select=id",
            "GET /servicePrincipals?$filter=appId eq '00000003-0000-0000-c000-000000000000'&$select=id,appId,appRoles,oauth2PermissionScopes",
            "GET /servicePrincipals?$filter=appId eq '00000002-0000-0ff1-ce00-000000000000'&$select=id,appId,appRoles,oauth2PermissionScopes",
            "GET /applications?$filter=displayName eq 'exgate'",
            "POST /applications",
            "POST /applications/{application object ID}/addPassword",
            "GET /servicePrincipals?$filter=appId eq '{client ID}'&$select=id,appId",
            "POST /servicePrincipals",
            "GET /servicePrincipals/{service principal ID}/appRoleAssignments",
            "POST /servicePrincipals/{Microsoft Graph service principal}/appRoleAssignedTo",
            "POST /servicePrincipals/{Microsoft Graph service principal}/appRoleAssignedTo",
            "POST /servicePrincipals/{Microsoft Graph service principal}/appRoleAssignedTo",
            "POST /servicePrincipals/{Microsoft Graph service principal}/appRoleAssignedTo",
            "POST /servicePrincipals/{Office 365 Exchange Online service principal}/appRoleAssignedTo",
            "POST /servicePrincipals/{Office 365 Exchange Online service principal}/appRoleAssignedTo",
            "GET /oauth2PermissionGrants?$filter=clientId eq '{service principal ID}'",
            "POST /oauth2PermissionGrants",
            "POST /oauth2PermissionGrants",
        ]
    );
    let create = &dry.calls[4].body.as_ref().unwrap();
    assert_eq!(create["isFallbackPublicClient"], true);
    assert_eq!(create["signInAudience"], "AzureADMyOrg");
    assert_eq!(
        create["publicClient"]["redirectUris"][0],
        "http://localhost"
    );
    let access = create["requiredResourceAccess"].as_array().unwrap();
    assert_eq!(access[0]["resourceAppId"], crate::setup::GRAPH_APP_ID);
    assert!(
        access[0]["resourceAccess"]
            .as_array()
            .unwrap()
            .contains(&json!({"id": "{id of Mail.ReadWrite}", "type": "Role"}))
    );
    assert_eq!(
        access[1]["resourceAccess"],
        json!([
            {"id": "{id of IMAP.AccessAsUser.All}", "type": "Scope"},
            {"id": "{id of SMTP.Send}", "type": "Scope"},
            {"id": "{id of IMAP.AccessAsApp}", "type": "Role"},
            {"id": "{id of SMTP.SendAsApp}", "type": "Role"}
        ])
    );
    let grant = dry.calls[16].body.as_ref().unwrap();
    assert_eq!(grant["consentType"], "AllPrincipals");
    assert!(grant["scope"].as_str().unwrap().contains("offline_access"));
    assert_eq!(
        dry.calls[5].body.as_ref().unwrap()["passwordCredential"]["endDateTime"],
        "2027-11-26T00:00:00Z"
    );
    assert_eq!(
        dry.calls[17].body.as_ref().unwrap()["scope"],
        "IMAP.AccessAsUser.All SMTP.Send"
    );
    assert!(matches!(out.credential, Some(NewCredential::Secret { .. })));
}

#[test]
fn a_denied_request_names_the_role_and_scope() {
    let fix = explain_denied("POST", "/servicePrincipals/x/appRoleAssignedTo");
    assert!(fix.contains("Privileged Role Administrator"), "{fix}");
    assert!(fix.contains("AppRoleAssignment.ReadWrite.All"), "{fix}");
    let fix = explain_denied("POST", "/applications");
    assert!(fix.contains("Application.ReadWrite.All"), "{fix}");
    assert!(fix.contains("Cloud Application Administrator"), "{fix}");
    let fix = explain_denied("POST", "/oauth2PermissionGrants");
    assert!(
        fix.contains("DelegatedPermissionGrant.ReadWrite.All"),
        "{fix}"
    );
}

#[test]
fn a_generated_certificate_is_a_connection_credential() {
    let now = time::macros::datetime!(2026-12-01 00:00 UTC);
    let cert = generate_certificate("exgate", now, now + time::Duration::days(365)).unwrap();
    let parsed =
        crate::model::ClientCertificate::from_pem(&cert.certificate_pem, &cert.private_key_pem)
            .unwrap();
    parsed.check_key_matches().unwrap();
    assert!(!cert.der_base64.is_empty());
}

#[test]
fn the_exchange_admin_body_is_a_cmdlet_input() {
    let reqs = plan(&needs()).unwrap();
    let cmdlet = reqs.powershell[0].cmdlet.as_ref().unwrap();
    let body = ExchangeAdmin::body(cmdlet);
    assert_eq!(body["CmdletInput"]["CmdletName"], "New-ServicePrincipal");
    assert_eq!(body["CmdletInput"]["Parameters"]["DisplayName"], "exgate");
}
