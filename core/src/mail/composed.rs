//! A backend that reads over one protocol and sends over SMTP: every reading call goes to the
//! reader (IMAP, POP, Graph or EWS), and `send`, `reply` and `forward` are composed as MIME and
//! submitted over SMTP from the mailbox they act on (replies and forwards quote the original,
//! read as MIME from the reader).

use std::sync::Arc;

use async_trait::async_trait;

use super::compose;
use super::smtp::SmtpSender;
use crate::Error;
use crate::mailbox::{
    Attachment, BodyKind, Folder, FolderChanges, FolderRef, Mail, MailboxRef, Message,
    MessageQuery, MessageSummary, NewMessage, Page, Recipient,
};
use crate::model::InvalidInput;
use crate::pipeline::ByteStream;

/// Reads through `reader`, sends through `smtp`.
#[derive(Debug)]
pub struct SmtpSending {
    reader: Arc<dyn Mail>,
    smtp: SmtpSender,
    /// The address of `MailboxRef::Me` (a delegated user's); `None` app-only.
    me: Option<String>,
    /// `limits.max_item_mb` in bytes.
    limit: u64,
}

impl SmtpSending {
    pub fn new(reader: Arc<dyn Mail>, smtp: SmtpSender, me: Option<String>, limit: u64) -> Self {
        Self {
            reader,
            smtp,
            me,
            limit,
        }
    }

    /// The envelope sender (and XOAUTH2 user): the mailbox acted on.
    fn sender(&self, mailbox: &MailboxRef) -> Result<String, Error> {
        match mailbox {
            MailboxRef::User(a) => Ok(a.trim().to_owned()),
            MailboxRef::Me => self.me.clone().ok_or_else(|| {
                InvalidInput::new(
                    "mailbox",
                    "an app-only connection sends from a named mailbox: pass --mailbox ADDRESS (the XOAUTH2 user= and envelope sender)"
                        .into(),
                )
                .into()
            }),
        }
    }

    async fn original(&self, mailbox: &MailboxRef, id: &str) -> Result<Vec<u8>, Error> {
        Ok(self.reader.mime(mailbox, id).await?.into_bytes().await?)
    }
}

#[async_trait]
impl Mail for SmtpSending {
    async fn folders(&self, mailbox: &MailboxRef) -> Result<Vec<Folder>, Error> {
        self.reader.folders(mailbox).await
    }

    async fn messages(
        &self,
        mailbox: &MailboxRef,
        query: &MessageQuery,
        page: Option<&str>,
    ) -> Result<Page<MessageSummary>, Error> {
        self.reader.messages(mailbox, query, page).await
    }

    async fn message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        body: Option<BodyKind>,
    ) -> Result<Message, Error> {
        self.reader.message(mailbox, id, body).await
    }

    async fn attachment(
        &self,
        mailbox: &MailboxRef,
        message: &str,
        attachment: &str,
    ) -> Result<Attachment, Error> {
        self.reader.attachment(mailbox, message, attachment).await
    }

    async fn mime(&self, mailbox: &MailboxRef, id: &str) -> Result<ByteStream, Error> {
        self.reader.mime(mailbox, id).await
    }

    async fn mime_many(
        &self,
        mailbox: &MailboxRef,
        ids: &[String],
    ) -> Result<Vec<Result<Vec<u8>, Error>>, Error> {
        self.reader.mime_many(mailbox, ids).await
    }

    async fn send(&self, mailbox: &MailboxRef, message: &NewMessage) -> Result<(), Error> {
        message.check_size(self.limit)?;
        let sender = self.sender(mailbox)?;
        let out = compose::outgoing(&sender, message, None)?;
        self.smtp.submit(&sender, &out).await
    }

    async fn reply(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        comment: &str,
        all: bool,
    ) -> Result<(), Error> {
        let sender = self.sender(mailbox)?;
        let original = self.original(mailbox, id).await?;
        let (message, ids) = compose::reply(&original, &sender, comment, all)?;
        let out = compose::outgoing(&sender, &message, ids.as_ref())?;
        self.smtp.submit(&sender, &out).await
    }

    async fn forward(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &[Recipient],
        comment: &str,
    ) -> Result<(), Error> {
        let sender = self.sender(mailbox)?;
        let original = self.original(mailbox, id).await?;
        let message = compose::forward(&original, to, comment)?;
        message.check_size(self.limit)?;
        let out = compose::outgoing(&sender, &message, None)?;
        self.smtp.submit(&sender, &out).await
    }

    async fn move_message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &FolderRef,
    ) -> Result<String, Error> {
        self.reader.move_message(mailbox, id, to).await
    }

    async fn delete_message(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        self.reader.delete_message(mailbox, id).await
    }

    async fn set_read(&self, mailbox: &MailboxRef, id: &str, read: bool) -> Result<(), Error> {
        self.reader.set_read(mailbox, id, read).await
    }

    async fn changes(
        &self,
        mailbox: &MailboxRef,
        folder: &FolderRef,
        state: Option<&str>,
    ) -> Result<FolderChanges, Error> {
        self.reader.changes(mailbox, folder, state).await
    }
}
