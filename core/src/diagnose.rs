//! The connection test: ordered checks, each with a status, what was seen, and the fix.

use serde::Serialize;

use crate::Error;
use crate::auth::{Endpoints, SignIn};
use crate::connections::Connections;
use crate::mailbox::MailboxRef;
use crate::mailboxes::Mailboxes;
use crate::model::{Auth, Principal, Resource};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// What to do, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub connection: String,
    pub ok: bool,
    pub checks: Vec<Check>,
}

fn fix_of(e: &Error) -> Option<String> {
    match e {
        Error::Auth(a) => a.fix().map(str::to_owned),
        Error::Mailbox(m) => m.hint().map(str::to_owned),
        Error::NeedsSignIn { .. } => Some("sign a user in on this connection first".into()),
        _ => None,
    }
}

/// Tests a connection: its identity provider's endpoints, a token, and a mailbox call.
/// `mailbox` names the mailbox to probe on an app-only connection.
pub async fn test_connection(
    connections: &Connections,
    signin: &SignIn,
    mailboxes: &Mailboxes,
    name: &str,
    mailbox: Option<&str>,
) -> Result<Report, Error> {
    let connection = connections.get(name).await?.connection;
    let mut checks = Vec::new();
    let mut ok = true;
    let mut push = |checks: &mut Vec<Check>, name, result: Result<String, Error>| {
        let check = match result {
            Ok(detail) => Check {
                name,
                status: Status::Ok,
                detail,
                fix: None,
            },
            Err(e) => {
                ok = false;
                Check {
                    name,
                    status: Status::Failed,
                    fix: fix_of(&e),
                    detail: e.to_string(),
                }
            }
        };
        checks.push(check);
    };

    if matches!(connection.settings.auth, Auth::Basic(_) | Auth::Ntlm(_)) {
        checks.push(Check {
            name: "identity provider",
            status: Status::Skipped,
            detail: format!(
                "{} authentication has no identity provider",
                connection.settings.auth.kind()
            ),
            fix: None,
        });
    } else {
        let http = crate::net::http_client(&signin.network())
            .map_err(|e| Error::Auth(crate::auth::AuthError::Unsupported(e.to_string())))?;
        let endpoints =
            Endpoints::for_connection(&connection.settings, &signin.network(), &http).await;
        let reachable = endpoints.is_ok();
        push(
            &mut checks,
            "identity provider",
            endpoints
                .map(|e| format!("token endpoint {}", e.token))
                .map_err(Error::Auth),
        );
        if !reachable {
            return Ok(Report {
                connection: connection.name.to_string(),
                ok: false,
                checks,
            });
        }
    }

    let app_only = matches!(connection.settings.auth, Auth::OAuth2AppOnly(_));
    let resource = crate::auth::signin::primary_resource(&connection);
    let principal: Option<Principal> = None;
    if app_only || matches!(connection.settings.auth, Auth::OAuth2Delegated(_)) {
        let token = signin.token(name, principal.as_ref(), resource).await;
        let got_token = token.is_ok();
        push(
            &mut checks,
            "token",
            token.map(|t| {
                format!(
                    "a {resource} token valid until {}",
                    t.expires_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                )
            }),
        );
        if !got_token {
            return Ok(Report {
                connection: connection.name.to_string(),
                ok,
                checks,
            });
        }
    }

    if resource == Resource::Graph {
        let target = match (app_only, mailbox) {
            (true, None) => None,
            (true, Some(m)) => Some(MailboxRef::User(m.to_owned())),
            (false, Some(m)) => Some(MailboxRef::User(m.to_owned())),
            (false, None) => Some(MailboxRef::Me),
        };
        match target {
            Some(target) => {
                let probe = async {
                    let backend = mailboxes.open(Some(name), None).await?;
                    let folders = backend.mail()?.folders(&target).await?;
                    Ok::<_, Error>(format!("listed {} mail folder(s)", folders.len()))
                };
                push(&mut checks, "mailbox", probe.await);
            }
            None => checks.push(Check {
                name: "mailbox",
                status: Status::Skipped,
                detail: "an app-only connection has no mailbox of its own; pass ?mailbox=user@… to probe one".into(),
                fix: None,
            }),
        }
    } else {
        checks.push(Check {
            name: "mailbox",
            status: Status::Skipped,
            detail: "the EWS backend is not built yet".into(),
            fix: None,
        });
    }
    Ok(Report {
        connection: connection.name.to_string(),
        ok,
        checks,
    })
}
