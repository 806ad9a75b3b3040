//! Graph change-notification subscriptions: [`Push`] for [`GraphMailbox`].
//!
//! `POST /subscriptions` names the watched resource (`users/{id}/mailFolders('inbox')/messages`,
//! `me/events`, …), the gateway's `notificationUrl` and `lifecycleNotificationUrl` (Graph
//! validates both before it answers: see [`super::notifications::validation_answer`]), the
//! `clientState` secret every notification carries back, and the expiry (at most
//! [`MAX_LIFETIME_MINUTES`] for Outlook resources). Renewal is a `PATCH` of
//! `expirationDateTime`; a subscription Graph no longer has is
//! [`MailboxError::NotFound`], and the engine subscribes again.
//!
//! Every call goes through the [`crate::pipeline::Pipeline`] like the mailbox's other calls;
//! the calls on an existing subscription (renew, reauthorize, delete) know no mailbox and are
//! counted under the connection's own mailbox key.

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Call, GraphMailbox, time_param, wire};
use crate::Error;
use crate::mailbox::{FolderRef, MailboxError, MailboxRef, Operation};
use crate::notify::{Push, PushSubscription, PushTarget, Watched};
use crate::pipeline::{Retry, segment};

/// The longest Graph keeps a subscription to messages or events: 4230 minutes (under three
/// days); renew before.
pub const MAX_LIFETIME_MINUTES: i64 = 4230;

/// Graph refuses a `clientState` longer than this.
pub const MAX_CLIENT_STATE: usize = 128;

/// The change types a watch asks for: everything (a move is `deleted` + `created`).
const CHANGE_TYPES: &str = "created,updated,deleted";

/// The part of Graph's subscription resource the gateway reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSubscription {
    id: String,
    expiration_date_time: String,
}

impl WireSubscription {
    fn expires(&self) -> Result<OffsetDateTime, Error> {
        OffsetDateTime::parse(&self.expiration_date_time, &Rfc3339).map_err(|_| {
            MailboxError::Protocol(format!(
                "Graph answered a subscription expiry that is not a time (`{}`)",
                self.expiration_date_time
            ))
            .into()
        })
    }
}

/// The Graph resource a watch subscribes to, below `root` (`me` or `users/{id}`, already one
/// encoded segment each).
pub(crate) fn resource(root: &str, watched: &Watched) -> Result<String, MailboxError> {
    Ok(match watched {
        Watched::Mail {
            folder: FolderRef::WellKnown(w),
        } => format!("{root}/mailFolders('{}')/messages", wire::folder_name(*w)),
        Watched::Mail {
            folder: FolderRef::Id(id),
        } => format!("{root}/mailFolders/{}/messages", segment("folder", id)?),
        Watched::Calendar => format!("{root}/events"),
    })
}

fn operation(watched: &Watched) -> Operation {
    match watched {
        Watched::Mail { .. } => Operation::READ_MAIL,
        Watched::Calendar => Operation::READ_CALENDAR,
    }
}

/// A "not found" about a subscription says so.
fn about_subscription(e: Error) -> Error {
    match e {
        Error::Mailbox(MailboxError::NotFound { id, request_id, .. }) => MailboxError::NotFound {
            what: "subscription",
            id,
            request_id,
        }
        .into(),
        other => other,
    }
}

impl GraphMailbox {
    /// The call on an existing subscription: `subscriptions/{id}…`.
    fn subscription_call<'a>(
        &self,
        method: Method,
        id: &str,
        suffix: &str,
        mailbox: &'a MailboxRef,
    ) -> Result<Call<'a>, Error> {
        let path = format!("subscriptions/{}{suffix}", segment("subscription", id)?);
        Ok(Call::new(method, path, Operation::READ_MAIL, mailbox).item(id))
    }
}

/// The connection's own mailbox: what calls on a subscription are counted under.
const OWN: MailboxRef = MailboxRef::Me;

#[async_trait]
impl Push for GraphMailbox {
    async fn subscribe(
        &self,
        mailbox: &MailboxRef,
        watched: &Watched,
        target: &PushTarget,
    ) -> Result<PushSubscription, Error> {
        let state = target.client_state.expose();
        if state.is_empty() || state.chars().count() > MAX_CLIENT_STATE {
            return Err(MailboxError::Invalid(format!(
                "a Graph clientState has 1 to {MAX_CLIENT_STATE} characters"
            ))
            .into());
        }
        let resource = resource(&self.root(mailbox)?, watched)?;
        let body = json!({
            "changeType": CHANGE_TYPES,
            "notificationUrl": target.notification_url.as_str(),
            "lifecycleNotificationUrl": target.lifecycle_url.as_str(),
            "resource": resource,
            "expirationDateTime": time_param(target.expires),
            "clientState": state,
            "latestSupportedTlsVersion": "v1_2",
        });
        let call = Call::new(
            Method::POST,
            "subscriptions".to_owned(),
            operation(watched),
            mailbox,
        )
        .json(body);
        let answer: WireSubscription = self.get_json(call).await?;
        Ok(PushSubscription {
            expires: answer.expires()?,
            id: answer.id,
            watched: watched.clone(),
        })
    }

    async fn renew(&self, id: &str, expires: OffsetDateTime) -> Result<OffsetDateTime, Error> {
        let call = self
            .subscription_call(Method::PATCH, id, "", &OWN)?
            .json(json!({ "expirationDateTime": time_param(expires) }));
        let answer: WireSubscription = self.get_json(call).await.map_err(about_subscription)?;
        answer.expires()
    }

    async fn reauthorize(&self, id: &str) -> Result<(), Error> {
        let call = self
            .subscription_call(Method::POST, id, "/reauthorize", &OWN)?
            .retry(Retry::Always);
        self.no_content(call).await.map_err(about_subscription)
    }

    async fn unsubscribe(&self, id: &str) -> Result<(), Error> {
        let call = self.subscription_call(Method::DELETE, id, "", &OWN)?;
        match self.no_content(call).await.map_err(about_subscription) {
            Err(Error::Mailbox(MailboxError::NotFound { .. })) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::WellKnownFolder;

    #[test]
    fn resources_name_graph_folders_and_encode_ids_as_one_segment() {
        let inbox = Watched::Mail {
            folder: FolderRef::WellKnown(WellKnownFolder::Inbox),
        };
        assert_eq!(
            resource("users/sales%40contoso.com", &inbox).unwrap(),
            "users/sales%40contoso.com/mailFolders('inbox')/messages"
        );
        let sent = Watched::Mail {
            folder: FolderRef::WellKnown(WellKnownFolder::SentItems),
        };
        assert_eq!(
            resource("me", &sent).unwrap(),
            "me/mailFolders('sentitems')/messages"
        );
        let by_id = Watched::Mail {
            folder: FolderRef::Id("AAMk/x=?".into()),
        };
        assert_eq!(
            resource("me", &by_id).unwrap(),
            "me/mailFolders/AAMk%2Fx%3D%3F/messages"
        );
        assert!(
            resource(
                "me",
                &Watched::Mail {
                    folder: FolderRef::Id("..".into())
                }
            )
            .is_err()
        );
        assert_eq!(resource("me", &Watched::Calendar).unwrap(), "me/events");
    }

    #[test]
    fn graph_expiry_times_parse_with_any_fraction() {
        let w = WireSubscription {
            id: "x".into(),
            expiration_date_time: "2026-12-03T10:00:00.9356913Z".into(),
        };
        assert_eq!(
            w.expires().unwrap().unix_timestamp(),
            time::macros::datetime!(2026-12-03 10:00 UTC).unix_timestamp()
        );
        let bad = WireSubscription {
            id: "x".into(),
            expiration_date_time: "soon".into(),
        };
        assert!(bad.expires().is_err());
    }
}
