use super::*;

const CLIENT: &str = "11111111-2222-3333-4444-555555555555";
const SP: &str = "99999999-8888-7777-6666-555555555555";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn needs(actors: &[Actor], protocols: &[Resource]) -> Needs {
    let mut n = Needs::new("exgate");
    n.actors = actors.iter().copied().collect();
    n.protocols = protocols.iter().copied().collect();
    if n.actors.contains(&Actor::Portal) {
        n.public_url = Some("https://exgate.contoso.com/".parse().unwrap());
    }
    n
}

fn with_ids(mut n: Needs) -> Needs {
    n.ids = KnownIds {
        tenant: Some(TENANT.parse().unwrap()),
        client_id: Some(CLIENT.parse().unwrap()),
        service_principal_id: Some(SP.into()),
    };
    n
}

fn names(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

/// One row: who and what, then the permissions, redirect URIs, public-client flag, credential
/// and connections the plan must name.
struct Row {
    actors: &'static [Actor],
    protocols: &'static [Resource],
    graph_delegated: &'static [&'static str],
    graph_application: &'static [&'static str],
    exchange_delegated: &'static [&'static str],
    exchange_application: &'static [&'static str],
    web: &'static [&'static str],
    public: &'static [&'static str],
    public_flows: bool,
    credential: bool,
    connections: &'static [(&'static str, AuthKind, Backend, SendVia)],
    powershell: &'static [&'static str],
}

const SIGN_IN: [&str; 4] = ["User.Read", "offline_access", "openid", "profile"];
const GRAPH_DELEGATED: [&str; 8] = [
    "Mail.ReadWrite",
    "Mail.Send",
    "Calendars.ReadWrite",
    "Contacts.ReadWrite",
    "User.Read",
    "offline_access",
    "openid",
    "profile",
];
const GRAPH_APP: [&str; 4] = [
    "Mail.ReadWrite",
    "Mail.Send",
    "Calendars.ReadWrite",
    "Contacts.ReadWrite",
];
const LOOPBACK: [&str; 2] = [
    "http://localhost",
    "https://login.microsoftonline.com/common/oauth2/nativeclient",
];

#[test]
fn requirements_follow_who_signs_in_and_the_protocols() {
    let rows = [
        // Portal users on Graph: web redirect to the gateway, confidential, delegated Graph.
        Row {
            actors: &[Actor::Portal],
            protocols: &[Resource::Graph],
            graph_delegated: &GRAPH_DELEGATED,
            graph_application: &[],
            exchange_delegated: &[],
            exchange_application: &[],
            web: &["https://exgate.contoso.com/service/oauth2/authorize"],
            public: &[],
            public_flows: false,
            credential: true,
            connections: &[(
                "exgate-portal",
                AuthKind::OAuth2Delegated,
                Backend::Graph,
                SendVia::Auto,
            )],
            powershell: &[],
        },
        // A person at the CLI on Graph: loopback + native client, public client flows, no secret.
        Row {
            actors: &[Actor::Cli],
            protocols: &[Resource::Graph],
            graph_delegated: &GRAPH_DELEGATED,
            graph_application: &[],
            exchange_delegated: &[],
            exchange_application: &[],
            web: &[],
            public: &LOOPBACK,
            public_flows: true,
            credential: false,
            connections: &[(
                "exgate-user",
                AuthKind::OAuth2Delegated,
                Backend::Graph,
                SendVia::Auto,
            )],
            powershell: &[],
        },
        // A mail client through `exgate token`: IMAP + SMTP delegated on Exchange Online.
        Row {
            actors: &[Actor::MailClient],
            protocols: &[Resource::Imap, Resource::Smtp],
            graph_delegated: &SIGN_IN,
            graph_application: &[],
            exchange_delegated: &["IMAP.AccessAsUser.All", "SMTP.Send"],
            exchange_application: &[],
            web: &[],
            public: &LOOPBACK,
            public_flows: true,
            credential: false,
            connections: &[(
                "exgate-user",
                AuthKind::OAuth2Delegated,
                Backend::Imap,
                SendVia::Auto,
            )],
            powershell: &[],
        },
        // A service on Graph: application permissions, no redirect, no Exchange PowerShell.
        Row {
            actors: &[Actor::Service],
            protocols: &[Resource::Graph],
            graph_delegated: &[],
            graph_application: &GRAPH_APP,
            exchange_delegated: &[],
            exchange_application: &[],
            web: &[],
            public: &[],
            public_flows: false,
            credential: true,
            connections: &[(
                "exgate-app-graph",
                AuthKind::OAuth2AppOnly,
                Backend::Graph,
                SendVia::Auto,
            )],
            powershell: &[],
        },
        // A workflow on IMAP + SMTP and EWS: Exchange roles, service principal and mailbox right.
        Row {
            actors: &[Actor::Service],
            protocols: &[Resource::Ews, Resource::Imap, Resource::Smtp],
            graph_delegated: &[],
            graph_application: &[],
            exchange_delegated: &[],
            exchange_application: &["full_access_as_app", "IMAP.AccessAsApp", "SMTP.SendAsApp"],
            web: &[],
            public: &[],
            public_flows: false,
            credential: true,
            connections: &[
                (
                    "exgate-app-ews",
                    AuthKind::OAuth2AppOnly,
                    Backend::Ews,
                    SendVia::Smtp,
                ),
                (
                    "exgate-app-imap",
                    AuthKind::OAuth2AppOnly,
                    Backend::Imap,
                    SendVia::Auto,
                ),
            ],
            powershell: &["New-ServicePrincipal", "Add-MailboxPermission"],
        },
        // Everyone on Graph and POP: both platforms, both kinds of permission, three connections.
        Row {
            actors: &[Actor::Portal, Actor::Cli, Actor::Service],
            protocols: &[Resource::Graph, Resource::Pop],
            graph_delegated: &GRAPH_DELEGATED,
            graph_application: &GRAPH_APP,
            exchange_delegated: &["POP.AccessAsUser.All", "SMTP.Send"],
            exchange_application: &["POP.AccessAsApp", "SMTP.SendAsApp"],
            web: &["https://exgate.contoso.com/service/oauth2/authorize"],
            public: &LOOPBACK,
            public_flows: true,
            credential: true,
            connections: &[
                (
                    "exgate-portal",
                    AuthKind::OAuth2Delegated,
                    Backend::Graph,
                    SendVia::Auto,
                ),
                (
                    "exgate-user",
                    AuthKind::OAuth2Delegated,
                    Backend::Graph,
                    SendVia::Auto,
                ),
                (
                    "exgate-app-graph",
                    AuthKind::OAuth2AppOnly,
                    Backend::Graph,
                    SendVia::Auto,
                ),
                (
                    "exgate-app-pop",
                    AuthKind::OAuth2AppOnly,
                    Backend::Pop,
                    SendVia::Auto,
                ),
            ],
            powershell: &["New-ServicePrincipal", "Add-MailboxPermission"],
        },
    ];
    for (i, row) in rows.iter().enumerate() {
        let mut n = with_ids(needs(row.actors, row.protocols));
        n.mailboxes = vec!["svc@contoso.com".parse().unwrap()];
        let req = plan(&n).unwrap();
        let app = req.app.as_ref().expect("an app registration");
        let graph = req.permissions(Api::MicrosoftGraph);
        let exchange = req.permissions(Api::ExchangeOnline);
        let get = |p: Option<&ApiPermissions>, delegated: bool| {
            p.map(|p| {
                if delegated {
                    p.delegated.clone()
                } else {
                    p.application.clone()
                }
            })
            .unwrap_or_default()
        };
        assert_eq!(names(&get(graph, true)), row.graph_delegated, "row {i}");
        assert_eq!(names(&get(graph, false)), row.graph_application, "row {i}");
        assert_eq!(
            names(&get(exchange, true)),
            row.exchange_delegated,
            "row {i}"
        );
        assert_eq!(
            names(&get(exchange, false)),
            row.exchange_application,
            "row {i}"
        );
        if let Some(g) = graph {
            assert_eq!(g.app_id, GRAPH_APP_ID);
        }
        if let Some(e) = exchange {
            assert_eq!(e.app_id, EXCHANGE_APP_ID);
            assert_eq!(e.display_name, "Office 365 Exchange Online");
        }
        assert_eq!(names(&app.web_redirect_uris), row.web, "row {i}");
        assert_eq!(
            names(&app.public_client_redirect_uris),
            row.public,
            "row {i}"
        );
        assert_eq!(app.allow_public_client_flows, row.public_flows, "row {i}");
        assert_eq!(app.credential.is_some(), row.credential, "row {i}");
        assert_eq!(app.sign_in_audience, "AzureADMyOrg");
        let conns: Vec<_> = req
            .connections
            .iter()
            .map(|c| (c.name.as_str(), c.auth, c.backend, c.send))
            .collect();
        assert_eq!(conns, row.connections, "row {i}");
        let cmdlets: Vec<&str> = req
            .powershell
            .iter()
            .map(|s| s.cmdlet.as_ref().unwrap().name)
            .collect();
        assert_eq!(cmdlets, row.powershell, "row {i}");
    }
}

#[test]
fn exchange_powershell_carries_the_real_ids() {
    let mut n = with_ids(needs(&[Actor::Service], &[Resource::Imap]));
    n.mailboxes = vec![
        "shared@contoso.com".parse().unwrap(),
        "o'brien@contoso.com".parse().unwrap(),
    ];
    let req = plan(&n).unwrap();
    let commands: Vec<&str> = req.powershell.iter().map(|s| s.command.as_str()).collect();
    assert_eq!(
        commands,
        [
            format!("New-ServicePrincipal -AppId {CLIENT} -ObjectId {SP} -DisplayName 'exgate'")
                .as_str(),
            format!(
                "Add-MailboxPermission -Identity 'shared@contoso.com' -User {SP} -AccessRights FullAccess"
            )
            .as_str(),
            format!(
                "Add-MailboxPermission -Identity 'o''brien@contoso.com' -User {SP} -AccessRights FullAccess"
            )
            .as_str(),
        ]
    );
    let app = req.app.unwrap();
    assert_eq!(
        app.admin_consent_url,
        format!("https://login.microsoftonline.com/{TENANT}/adminconsent?client_id={CLIENT}")
    );
    // Without IDs the commands say what goes where.
    let req = plan(&needs(&[Actor::Service], &[Resource::Pop])).unwrap();
    assert!(
        req.powershell[0]
            .command
            .contains("-ObjectId <object ID of the enterprise application>"),
        "{}",
        req.powershell[0].command
    );
    assert_eq!(
        req.powershell[1].command,
        "Add-MailboxPermission -Identity '<mailbox>' -User <object ID of the enterprise application> -AccessRights FullAccess"
    );
    assert!(
        req.app
            .unwrap()
            .admin_consent_url
            .ends_with("/{tenant}/adminconsent?client_id={client-id}")
    );
}

#[test]
fn rbac_for_applications_replaces_the_unscoped_permissions() {
    let mut n = with_ids(needs(&[Actor::Service], &[Resource::Graph, Resource::Ews]));
    n.rbac = true;
    n.mailboxes = vec![
        "a@contoso.com".parse().unwrap(),
        "b@contoso.com".parse().unwrap(),
    ];
    let req = plan(&n).unwrap();
    assert!(req.permissions(Api::MicrosoftGraph).is_none());
    assert!(req.permissions(Api::ExchangeOnline).is_none());
    let commands: Vec<&str> = req.powershell.iter().map(|s| s.command.as_str()).collect();
    assert_eq!(commands[0].split(' ').next(), Some("New-ServicePrincipal"));
    assert_eq!(
        commands[1],
        "New-ManagementScope -Name 'exgate-mailboxes' -RecipientRestrictionFilter \
         'PrimarySmtpAddress -eq ''a@contoso.com'' -or PrimarySmtpAddress -eq ''b@contoso.com'''"
    );
    assert!(
        commands.contains(
            &format!(
                "New-ManagementRoleAssignment -Name 'exgate-Mail-ReadWrite' -App {CLIENT} \
             -Role 'Application Mail.ReadWrite' -CustomResourceScope 'exgate-mailboxes'"
            )
            .as_str()
        )
    );
    assert!(
        commands
            .iter()
            .any(|c| c.contains("-Role 'Application EWS.AccessAsApp'")),
        "{commands:#?}"
    );
    // RBAC without mailboxes has nothing to scope to.
    n.mailboxes.clear();
    assert_eq!(plan(&n).unwrap_err().field, "mailboxes");
}

#[test]
fn shared_mailboxes_add_the_shared_permissions() {
    let mut n = needs(&[Actor::Cli], &[Resource::Graph]);
    n.shared_mailboxes = true;
    let req = plan(&n).unwrap();
    let graph = req.permissions(Api::MicrosoftGraph).unwrap();
    for p in [
        "Mail.ReadWrite.Shared",
        "Mail.Send.Shared",
        "Calendars.ReadWrite.Shared",
        "Contacts.ReadWrite.Shared",
    ] {
        assert!(graph.delegated.iter().any(|d| d == p), "{p}");
    }
}

#[test]
fn exchange_server_plans_impersonation_for_a_service_account() {
    let mut n = needs(&[Actor::Service], &[Resource::Ews]);
    n.place = Place::Server;
    n.service_account = Some("CONTOSO\\svc-exgate".into());
    let req = plan(&n).unwrap();
    assert!(req.app.is_none());
    assert_eq!(
        req.powershell[0].command,
        "New-ManagementRoleAssignment -Name 'exgate-impersonation' -Role ApplicationImpersonation -User 'CONTOSO\\svc-exgate'"
    );
    assert_eq!(req.powershell[0].shell, Shell::ExchangeServer);
    assert_eq!(req.connections[0].auth, AuthKind::Ntlm);
    // Scoped to mailboxes: a management scope and a scoped assignment.
    n.mailboxes = vec!["a@contoso.com".parse().unwrap()];
    let req = plan(&n).unwrap();
    assert!(
        req.powershell[1]
            .command
            .ends_with("-CustomRecipientWriteScope 'exgate-mailboxes'")
    );
    // Users signing in, or IMAP, are not for Exchange Server.
    n.protocols.insert(Resource::Imap);
    assert_eq!(plan(&n).unwrap_err().field, "protocols");
    n.protocols.remove(&Resource::Imap);
    n.actors.insert(Actor::Portal);
    n.public_url = Some("https://exgate.contoso.com".parse().unwrap());
    assert_eq!(plan(&n).unwrap_err().field, "who");
}

#[test]
fn bad_needs_are_refused_with_the_field() {
    assert_eq!(
        plan(&needs(&[], &[Resource::Graph])).unwrap_err().field,
        "who"
    );
    assert_eq!(
        plan(&needs(&[Actor::Cli], &[])).unwrap_err().field,
        "protocols"
    );
    let mut n = needs(&[Actor::Portal], &[Resource::Graph]);
    n.public_url = None;
    let e = plan(&n).unwrap_err();
    assert_eq!((e.field, e.missing), ("public_url", true));
    let mut n = needs(&[Actor::Service], &[Resource::Graph]);
    n.credential_months = 36;
    assert_eq!(plan(&n).unwrap_err().field, "credential_months");
    n.credential_months = 12;
    n.name = "bad name".into();
    assert_eq!(plan(&n).unwrap_err().field, "name");
}

#[test]
fn credential_advice_warns_about_long_lifetimes() {
    let mut n = needs(&[Actor::Service], &[Resource::Graph]);
    n.credential_months = 24;
    let advice = plan(&n).unwrap().app.unwrap().credential.unwrap();
    assert!(
        advice.advice.contains("copy the Value, not the Secret ID"),
        "{}",
        advice.advice
    );
    assert!(
        advice.advice.contains("longer than Microsoft recommends"),
        "{}",
        advice.advice
    );
    n.credential = CredentialKind::Certificate;
    n.credential_months = 6;
    let advice = plan(&n).unwrap().app.unwrap().credential.unwrap();
    assert!(
        advice.advice.contains("private key never leaves"),
        "{}",
        advice.advice
    );
    assert!(!advice.advice.contains("longer than"), "{}", advice.advice);
}

#[test]
fn the_plan_reads_as_steps_and_round_trips_as_json() {
    let mut n = with_ids(needs(
        &[Actor::Portal, Actor::Service],
        &[Resource::Graph, Resource::Imap],
    ));
    n.mailboxes = vec!["svc@contoso.com".parse().unwrap()];
    let req = plan(&n).unwrap();
    let text = req.to_string();
    for needle in [
        "Web: https://exgate.contoso.com/service/oauth2/authorize",
        "Allow public client flows (Authentication > Advanced settings): No",
        "Microsoft Graph (00000003-0000-0000-c000-000000000000), delegated: Mail.ReadWrite",
        "Office 365 Exchange Online (00000002-0000-0ff1-ce00-000000000000), application: IMAP.AccessAsApp",
        "In Exchange Online PowerShell",
        "exgate-app-imap: oauth2-app-only, backend imap",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let json = serde_json::to_string(&req).unwrap();
    let back: Requirements = serde_json::from_str(&json).unwrap();
    assert_eq!(back.app, req.app);
    assert_eq!(back.connections, req.connections);
    let v2 = req.app.unwrap().admin_consent_url_v2.unwrap();
    assert!(
        v2.starts_with(&format!(
            "https://login.microsoftonline.com/{TENANT}/v2.0/adminconsent?client_id={CLIENT}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&redirect_uri=https%3A%2F%2Fexgate.contoso.com%2Fservice%2Foauth2%2Fauthorize"
        )),
        "{v2}"
    );
}
