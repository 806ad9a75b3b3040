//! IMAP's mail capability with the pre-flight and the explanations of this module around it:
//! before each call the token's claims are checked locally (a wrong audience, a missing role or
//! scope, another tenant are refused before connecting), and Exchange's bare refusals
//! (`NO AUTHENTICATE failed.`, `BAD User is authenticated but not connected.`) come back as
//! [`MailFailure`]s naming the fix with the app's real IDs from the token.

use std::sync::Arc;

use async_trait::async_trait;

use super::claims::{self, TokenClaims};
use super::explain::{self, Situation};
use super::imap::ImapRefusal;
use super::smtp::TokenExpectation;
use super::url::MailProtocol;
use crate::Error;
use crate::auth::credentials::{Credential, Credentials};
use crate::mailbox::{
    Attachment, BodyKind, Folder, FolderChanges, FolderRef, Mail, MailboxError, MailboxRef,
    Message, MessageQuery, MessageSummary, NewMessage, Page, Recipient,
};
use crate::pipeline::ByteStream;

/// `inner` (an IMAP mailbox) with claims checked first and refusals explained.
#[derive(Debug)]
pub struct ExplainedImap {
    inner: Arc<dyn Mail>,
    credentials: Arc<dyn Credentials>,
    expect: TokenExpectation,
    /// The address of `MailboxRef::Me`, if any.
    me: Option<String>,
}

impl ExplainedImap {
    pub fn new(
        inner: Arc<dyn Mail>,
        credentials: Arc<dyn Credentials>,
        expect: TokenExpectation,
        me: Option<String>,
    ) -> Self {
        Self {
            inner,
            credentials,
            expect,
            me,
        }
    }

    async fn claims(&self) -> Option<TokenClaims> {
        match self.credentials.credential().await {
            Ok(Credential::Bearer(t)) => TokenClaims::decode(&t.secret),
            _ => None,
        }
    }

    /// The claims check before any connection.
    async fn preflight(&self) -> Result<(), Error> {
        if let Some(c) = self.claims().await {
            claims::check(&c, &self.expect.expected(MailProtocol::Imap))?;
        }
        Ok(())
    }

    async fn explain(&self, mailbox: &MailboxRef, e: Error) -> Error {
        let Some(refusal) = ImapRefusal::of(&e) else {
            return e;
        };
        let answer = match &e {
            Error::Mailbox(MailboxError::MailRefused { answer, .. }) => answer.clone(),
            _ => String::new(),
        };
        let user = match mailbox {
            MailboxRef::User(a) => a.clone(),
            MailboxRef::Me => self.me.clone().unwrap_or_default(),
        };
        let claims = self.claims().await;
        let s = Situation {
            protocol: MailProtocol::Imap,
            mailbox: &user,
            claims: claims.as_ref(),
        };
        match refusal {
            ImapRefusal::AuthenticateFailed => explain::authentication_refused(&s, &answer),
            ImapRefusal::NotConnected => explain::not_connected(&s, &answer),
        }
        .into()
    }
}

/// Runs `$call` on the inner mailbox after the pre-flight, explaining a refusal.
macro_rules! explained {
    ($self:ident, $mailbox:expr, $call:expr) => {{
        $self.preflight().await?;
        match $call.await {
            Ok(v) => Ok(v),
            Err(e) => Err($self.explain($mailbox, e).await),
        }
    }};
}

#[async_trait]
impl Mail for ExplainedImap {
    async fn folders(&self, mailbox: &MailboxRef) -> Result<Vec<Folder>, Error> {
        explained!(self, mailbox, self.inner.folders(mailbox))
    }

    async fn messages(
        &self,
        mailbox: &MailboxRef,
        query: &MessageQuery,
        page: Option<&str>,
    ) -> Result<Page<MessageSummary>, Error> {
        explained!(self, mailbox, self.inner.messages(mailbox, query, page))
    }

    async fn message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        body: Option<BodyKind>,
    ) -> Result<Message, Error> {
        explained!(self, mailbox, self.inner.message(mailbox, id, body))
    }

    async fn attachment(
        &self,
        mailbox: &MailboxRef,
        message: &str,
        attachment: &str,
    ) -> Result<Attachment, Error> {
        explained!(
            self,
            mailbox,
            self.inner.attachment(mailbox, message, attachment)
        )
    }

    async fn mime(&self, mailbox: &MailboxRef, id: &str) -> Result<ByteStream, Error> {
        explained!(self, mailbox, self.inner.mime(mailbox, id))
    }

    async fn mime_many(
        &self,
        mailbox: &MailboxRef,
        ids: &[String],
    ) -> Result<Vec<Result<Vec<u8>, Error>>, Error> {
        explained!(self, mailbox, self.inner.mime_many(mailbox, ids))
    }

    async fn send(&self, mailbox: &MailboxRef, message: &NewMessage) -> Result<(), Error> {
        self.inner.send(mailbox, message).await
    }

    async fn reply(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        comment: &str,
        all: bool,
    ) -> Result<(), Error> {
        self.inner.reply(mailbox, id, comment, all).await
    }

    async fn forward(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &[Recipient],
        comment: &str,
    ) -> Result<(), Error> {
        self.inner.forward(mailbox, id, to, comment).await
    }

    async fn move_message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &FolderRef,
    ) -> Result<String, Error> {
        explained!(self, mailbox, self.inner.move_message(mailbox, id, to))
    }

    async fn delete_message(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        explained!(self, mailbox, self.inner.delete_message(mailbox, id))
    }

    async fn set_read(&self, mailbox: &MailboxRef, id: &str, read: bool) -> Result<(), Error> {
        explained!(self, mailbox, self.inner.set_read(mailbox, id, read))
    }

    async fn changes(
        &self,
        mailbox: &MailboxRef,
        folder: &FolderRef,
        state: Option<&str>,
    ) -> Result<FolderChanges, Error> {
        explained!(self, mailbox, self.inner.changes(mailbox, folder, state))
    }
}
