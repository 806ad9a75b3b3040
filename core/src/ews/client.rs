//! The EWS backend over the pipeline: each capability method builds a [`wire`] request for its
//! mailbox (the account's own, a delegate's by `DistinguishedFolderId/Mailbox`, or another by
//! `ExchangeImpersonation` with `X-AnchorMailbox`), posts it to the EWS URL through the
//! [`Pipeline`] (governor slot, credential — bearer, Basic or NTLM —, `ErrorServerBusy`
//! waited out within the cap) and decodes the answer into the neutral types. Page and sync
//! states are sealed to their mailbox, folder and query like Graph's.

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderName};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::Url;

use super::EwsAnswers;
use super::wire::{
    self, CreateAttachments, CreateContact, CreateEvent, CreateMessage, Decoded, DeleteItems,
    DistinguishedFolder, EwsError, EwsRequest, FindContacts, FindEvents, FindFolders, FindMessages,
    FolderSpec, GetAttachments, GetContacts, GetEvents, GetMessages, GetUserAvailability, ItemId,
    MoveItems, ReplyKind, ReplyMessage, RequestContext, RequestVersion, SendItems, SetReadFlag,
    SyncFolderItems, UpdateContact, UpdateEvent, WireError,
};
use crate::Error;
use crate::mailbox::{
    Attachment, Availability, Body, BodyKind, Calendar, Contact, ContactDraft, Contacts, Event,
    EventDraft, Folder, FolderChanges, FolderRef, FreeBusy, Mail, MailboxError, MailboxRef,
    Message, MessageQuery, MessageSummary, NewMessage, Page, Recipient, TimeZone,
};
use crate::pipeline::{ByteStream, Failure, PageTokens, Pipeline, Request, Retry, TokenScope};

/// Changes one `SyncFolderItems` call asks for.
const SYNC_BATCH: u32 = 512;

/// Messages one `GetItem` fetches as MIME for [`Mail::mime_many`].
const MIME_BATCH: usize = 20;

/// The most a batched MIME answer may hold; larger batches fail whole and their messages are
/// fetched alone (streamed) by the caller.
const MIME_BATCH_ANSWER_LIMIT: u64 = 48 * 1024 * 1024;

/// Whether a write failed in a way that leaves open whether the server acted on it (the
/// connection dropped, the server failed) or that certainly left it undone (throttled).
fn in_doubt(e: &Error) -> bool {
    matches!(e, Error::Mailbox(m) if m.is_retryable())
}

/// One mailbox server's EWS, as one account (or the app) sees it.
#[derive(Debug)]
pub struct EwsMailbox {
    pipe: Pipeline,
    url: Url,
    version: RequestVersion,
    pages: PageTokens,
    /// The account's own address (the governor's key for `MailboxRef::Me`).
    me: String,
    /// Reach other mailboxes by impersonation (app-only, a service account with
    /// ApplicationImpersonation) rather than as a delegate.
    impersonate: bool,
}

/// What a call names, for "not found" errors.
struct Names<'a> {
    what: &'static str,
    id: &'a str,
}

impl EwsMailbox {
    pub fn new(
        pipe: Pipeline,
        url: Url,
        version: RequestVersion,
        pages: PageTokens,
        me: String,
        impersonate: bool,
    ) -> Self {
        Self {
            pipe,
            url,
            version,
            pages,
            me,
            impersonate,
        }
    }

    fn context(&self, mailbox: &MailboxRef) -> RequestContext {
        RequestContext::for_mailbox(self.version, mailbox, self.impersonate)
    }

    fn address<'a>(&'a self, mailbox: &'a MailboxRef) -> &'a str {
        match mailbox {
            MailboxRef::Me => &self.me,
            MailboxRef::User(u) => u,
        }
    }

    /// Posts `request` for `mailbox` and answers the body of a 2xx answer; a refusal becomes
    /// the neutral error, named by `names`.
    async fn call(
        &self,
        mailbox: &MailboxRef,
        request: &(impl EwsRequest + Sync),
        ctx: RequestContext,
        retry: Retry,
        names: Names<'_>,
    ) -> Result<Bytes, Error> {
        let xml = request.to_xml(&ctx);
        let mut req = Request::new(Method::POST, self.url.clone(), mailbox.key(&self.me))
            .header(CONTENT_TYPE, "text/xml; charset=utf-8");
        if let Some(anchor) = ctx.anchor_mailbox() {
            req = req.header(HeaderName::from_static("x-anchormailbox"), anchor);
        }
        req.body = Some(Bytes::from(xml));
        req.retry = retry;
        match self.pipe.send(&req).await {
            Ok(answer) => Ok(answer.body),
            Err(Failure::Error(e)) => Err(e),
            Err(Failure::Refused(answer)) => {
                let error = EwsAnswers::refusal(answer.status, &answer.headers, &answer.body)
                    .unwrap_or_else(|| {
                        EwsError::new(
                            wire::ResponseCode::Other(format!("HTTP{}", answer.status.as_u16())),
                            format!("HTTP {}", answer.status),
                        )
                    });
                Err(self.refused(&error, mailbox, &names))
            }
        }
    }

    /// The HTTP request for `request` to `mailbox` (its SOAP headers and `X-AnchorMailbox`).
    fn request(&self, mailbox: &MailboxRef, request: &(impl EwsRequest + Sync)) -> Request {
        let ctx = self.context(mailbox);
        let xml = request.to_xml(&ctx);
        let mut req = Request::new(Method::POST, self.url.clone(), mailbox.key(&self.me))
            .header(CONTENT_TYPE, "text/xml; charset=utf-8");
        if let Some(anchor) = ctx.anchor_mailbox() {
            req = req.header(HeaderName::from_static("x-anchormailbox"), anchor);
        }
        req.body = Some(Bytes::from(xml));
        req
    }

    /// The EWS error of a refused answer.
    fn refusal(answer: &crate::pipeline::Answer) -> EwsError {
        EwsAnswers::refusal(answer.status, &answer.headers, &answer.body).unwrap_or_else(|| {
            EwsError::new(
                wire::ResponseCode::Other(format!("HTTP{}", answer.status.as_u16())),
                format!("HTTP {}", answer.status),
            )
        })
    }

    /// Posts a notification request (`Subscribe`, `GetEvents`, `Unsubscribe`): the body of a
    /// 2xx answer, or the EWS error of a refusal (the listener acts on its code).
    pub(super) async fn post_raw(
        &self,
        mailbox: &MailboxRef,
        request: &(impl EwsRequest + Sync),
        retry: Retry,
    ) -> Result<Result<Bytes, EwsError>, Error> {
        let mut req = self.request(mailbox, request);
        req.retry = retry;
        match self.pipe.send(&req).await {
            Ok(answer) => Ok(Ok(answer.body)),
            Err(Failure::Error(e)) => Err(e),
            Err(Failure::Refused(answer)) => Ok(Err(Self::refusal(&answer))),
        }
    }

    /// Posts `GetStreamingEvents` and hands back the answer as it arrives, or the EWS error of
    /// a refusal.
    pub(super) async fn open_stream(
        &self,
        mailbox: &MailboxRef,
        request: &(impl EwsRequest + Sync),
    ) -> Result<Result<ByteStream, EwsError>, Error> {
        let req = self.request(mailbox, request);
        match self.pipe.stream(&req).await {
            Ok(streamed) => Ok(Ok(streamed.body)),
            Err(Failure::Error(e)) => Err(e),
            Err(Failure::Refused(answer)) => Ok(Err(Self::refusal(&answer))),
        }
    }

    /// The EWS folder for a neutral one (see [`Self::folder`]).
    pub(super) async fn folder_spec(
        &self,
        mailbox: &MailboxRef,
        folder: &FolderRef,
    ) -> Result<FolderSpec, Error> {
        self.folder(mailbox, folder).await
    }

    /// The mailbox's address, for errors.
    pub(super) fn address_of<'a>(&'a self, mailbox: &'a MailboxRef) -> &'a str {
        self.address(mailbox)
    }

    fn refused(&self, error: &EwsError, mailbox: &MailboxRef, names: &Names<'_>) -> Error {
        error
            .to_mailbox_error(names.what, names.id, self.address(mailbox))
            .into()
    }

    fn decoded(&self, e: WireError, mailbox: &MailboxRef, names: &Names<'_>) -> Error {
        match e.ews() {
            Some(error) => self.refused(error, mailbox, names),
            None => MailboxError::Protocol(e.to_string()).into(),
        }
    }

    /// A read: safe to send again after any failure.
    async fn read(
        &self,
        mailbox: &MailboxRef,
        request: &(impl EwsRequest + Sync),
        names: Names<'_>,
    ) -> Result<Bytes, Error> {
        self.call(
            mailbox,
            request,
            self.context(mailbox),
            Retry::Always,
            names,
        )
        .await
    }

    /// A change: sent again only when the server certainly did not act on it.
    async fn write(
        &self,
        mailbox: &MailboxRef,
        request: &(impl EwsRequest + Sync),
        names: Names<'_>,
    ) -> Result<Bytes, Error> {
        self.call(
            mailbox,
            request,
            self.context(mailbox),
            Retry::IfNotProcessed,
            names,
        )
        .await
    }

    fn single<T>(
        &self,
        decoded: Result<Decoded<T>, WireError>,
        mailbox: &MailboxRef,
        names: Names<'_>,
    ) -> Result<T, Error> {
        decoded
            .and_then(Decoded::into_single)
            .map_err(|e| self.decoded(e, mailbox, &names))
    }

    /// The EWS folder for a neutral one. The mailbox's Archive folder has no distinguished ID
    /// in EWS: it is found by name under the message folder root.
    async fn folder(&self, mailbox: &MailboxRef, folder: &FolderRef) -> Result<FolderSpec, Error> {
        if let Some(spec) = FolderSpec::from_ref(folder) {
            return Ok(spec);
        }
        let request = FindFolders::named(DistinguishedFolder::MsgFolderRoot.into(), "Archive");
        let names = || Names {
            what: "folder",
            id: "archive",
        };
        let body = self.read(mailbox, &request, names()).await?;
        let found = self.single(wire::decode_find_folders(&body), mailbox, names())?;
        found
            .items
            .into_iter()
            .next()
            .map(|f| FolderSpec::Id(f.id))
            .ok_or_else(|| {
                MailboxError::NotFound {
                    what: "folder",
                    id: "archive".into(),
                    request_id: String::new(),
                }
                .into()
            })
    }

    fn scope<'a>(&self, kind: &'static str, mailbox: &'a str, detail: String) -> TokenScope<'a> {
        TokenScope {
            kind,
            mailbox,
            detail,
        }
    }

    fn id(id: &str) -> Result<ItemId, Error> {
        if id.is_empty() || id.len() > 4096 {
            return Err(MailboxError::Invalid("an empty or oversized item ID".into()).into());
        }
        Ok(ItemId::new(id))
    }

    async fn get_message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        request: GetMessages,
    ) -> Result<wire::FullMessage, Error> {
        let names = Names {
            what: "message",
            id,
        };
        let body = self.read(mailbox, &request, names).await?;
        self.single(
            wire::decode_get_messages(&body),
            mailbox,
            Names {
                what: "message",
                id,
            },
        )
    }

    /// The MIME of `ids` (one `GetItem`), each message's own result in `ids` order.
    async fn mime_batch(
        &self,
        mailbox: &MailboxRef,
        ids: Vec<ItemId>,
    ) -> Vec<Result<Vec<u8>, Error>> {
        let count = ids.len();
        let names: Vec<String> = ids.iter().map(|i| i.id.clone()).collect();
        let request = GetMessages::mime(ids);
        let ctx = self.context(mailbox);
        let mut req = Request::new(Method::POST, self.url.clone(), mailbox.key(&self.me))
            .header(CONTENT_TYPE, "text/xml; charset=utf-8");
        if let Some(anchor) = ctx.anchor_mailbox() {
            req = req.header(HeaderName::from_static("x-anchormailbox"), anchor);
        }
        req.body = Some(Bytes::from(request.to_xml(&ctx)));
        req.retry = Retry::Always;
        req.answer_limit = Some(MIME_BATCH_ANSWER_LIMIT);
        let whole = |why: String| -> Vec<Result<Vec<u8>, Error>> {
            (0..count)
                .map(|_| Err(MailboxError::Protocol(format!("its batch failed: {why}")).into()))
                .collect()
        };
        let body = match self.pipe.send(&req).await {
            Ok(answer) => answer.body,
            Err(Failure::Error(e)) => return whole(e.to_string()),
            Err(Failure::Refused(answer)) => {
                let why = EwsAnswers::refusal(answer.status, &answer.headers, &answer.body)
                    .map_or_else(|| format!("HTTP {}", answer.status), |e| e.to_string());
                return whole(why);
            }
        };
        let decoded = match wire::decode_get_messages(&body) {
            Ok(d) => d,
            Err(e) => return whole(e.to_string()),
        };
        let results = decoded.into_results();
        if results.len() != count {
            return whole(format!(
                "GetItem answered {} messages for {count}",
                results.len()
            ));
        }
        results
            .into_iter()
            .zip(&names)
            .map(|(r, id)| match r {
                Ok(full) => full.mime.ok_or_else(|| {
                    MailboxError::Protocol("GetItem answered no MimeContent".into()).into()
                }),
                Err(e) => Err(self.refused(
                    &e,
                    mailbox,
                    &Names {
                        what: "message",
                        id,
                    },
                )),
            })
            .collect()
    }

    /// Saves `message` as a draft, starting afresh when an answer is lost on the way (the
    /// draft may then exist twice; an orphan draft is harmless, a second delivery is not —
    /// only [`Self::send_draft`] delivers).
    async fn create_draft(
        &self,
        mailbox: &MailboxRef,
        message: &NewMessage,
    ) -> Result<ItemId, Error> {
        let attempts = self.pipe.limits().attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.save_draft(mailbox, message).await {
                Ok(id) => return Ok(id),
                Err(e) if in_doubt(&e) && attempt < attempts => {
                    tracing::warn!(attempt, error = %e, "saving the draft failed in transit; saving it again");
                    tokio::time::sleep(crate::pipeline::backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Saves `message` as a draft and answers its ID (with the change key SendItem wants).
    async fn save_draft(
        &self,
        mailbox: &MailboxRef,
        message: &NewMessage,
    ) -> Result<ItemId, Error> {
        let mut draft = message.clone();
        let attachments = std::mem::take(&mut draft.attachments);
        let request = CreateMessage {
            message: draft,
            folder: None,
        };
        let names = || Names {
            what: "draft",
            id: "",
        };
        let body = self.write(mailbox, &request, names()).await?;
        let mut ids = self.single(wire::decode_item_ids(&body, "CreateItem"), mailbox, names())?;
        let mut id = ids
            .pop()
            .ok_or_else(|| MailboxError::Protocol("CreateItem answered no item ID".into()))?;
        if !attachments.is_empty() {
            let request = CreateAttachments {
                parent: id.clone(),
                attachments,
            };
            let count = request.attachments.len();
            let body = self.write(mailbox, &request, names()).await?;
            // Exchange answers one response message per attachment.
            let decoded = wire::decode_create_attachments(&body)
                .map_err(|e| self.decoded(e, mailbox, &names()))?;
            if decoded.messages.len() != count {
                return Err(MailboxError::Protocol(format!(
                    "CreateAttachment answered {} response messages for {count} attachments",
                    decoded.messages.len()
                ))
                .into());
            }
            let mut created = Vec::new();
            for result in decoded.into_results() {
                created.extend(result.map_err(|e| self.refused(&e, mailbox, &names()))?);
            }
            // Each attachment changes the draft: the last answer carries its newest change key.
            if let Some((_, root)) = created.into_iter().last() {
                id = root;
            }
        }
        Ok(id)
    }

    async fn send_draft(
        &self,
        mailbox: &MailboxRef,
        id: ItemId,
        save_copy: bool,
    ) -> Result<(), Error> {
        let request = SendItems {
            ids: vec![id.clone()],
            save_copy,
        };
        let names = || Names {
            what: "draft",
            id: &id.id,
        };
        // A lost answer leaves open whether it was sent: send it again by ID. A draft that was
        // sent is gone from Drafts, so the repetition finds nothing and delivers nothing.
        let attempts = self.pipe.limits().attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = match self.write(mailbox, &request, names()).await {
                Ok(body) => self.single(wire::decode_send_items(&body), mailbox, names()),
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => return Ok(()),
                Err(Error::Mailbox(MailboxError::NotFound { .. })) if attempt > 1 => {
                    return Ok(());
                }
                Err(e) if in_doubt(&e) && attempt < attempts => {
                    tracing::warn!(attempt, error = %e, "sending the draft failed in transit; sending it again by ID");
                    tokio::time::sleep(crate::pipeline::backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn get_event(
        &self,
        mailbox: &MailboxRef,
        id: ItemId,
        zone: Option<&TimeZone>,
    ) -> Result<Event, Error> {
        let request = GetEvents {
            ids: vec![id.clone()],
        };
        let names = || Names {
            what: "event",
            id: &id.id,
        };
        let body = self.read(mailbox, &request, names()).await?;
        self.single(wire::decode_get_events(&body, zone), mailbox, names())?
            .pop()
            .ok_or_else(|| MailboxError::Protocol("GetItem answered no event".into()).into())
    }

    async fn get_contact(&self, mailbox: &MailboxRef, id: ItemId) -> Result<Contact, Error> {
        let request = GetContacts {
            ids: vec![id.clone()],
        };
        let names = || Names {
            what: "contact",
            id: &id.id,
        };
        let body = self.read(mailbox, &request, names()).await?;
        self.single(wire::decode_get_contacts(&body), mailbox, names())?
            .pop()
            .ok_or_else(|| MailboxError::Protocol("GetItem answered no contact".into()).into())
    }

    async fn delete(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        what: &'static str,
        cancellations: Option<bool>,
    ) -> Result<(), Error> {
        let request = DeleteItems {
            send_meeting_cancellations: cancellations,
            ..DeleteItems::new(vec![Self::id(id)?])
        };
        let names = || Names { what, id };
        let body = self.write(mailbox, &request, names()).await?;
        self.single(wire::decode_delete_items(&body), mailbox, names())
    }
}

impl EwsMailbox {
    async fn find_messages(
        &self,
        mailbox: &MailboxRef,
        folder: FolderSpec,
        query: &MessageQuery,
        offset: u32,
    ) -> Result<wire::FoundItems<MessageSummary>, Error> {
        let request = FindMessages::new(folder, query, offset);
        let names = || Names {
            what: "folder",
            id: "",
        };
        let body = self.read(mailbox, &request, names()).await?;
        self.single(wire::decode_find_messages(&body), mailbox, names())
    }

    /// Messages of every mail folder, as Graph's `/messages` lists them: EWS's `FindItem` searches
    /// one folder, so the listing walks the folders in turn. The page state names the folder and
    /// the offset in it; empty folders are passed over within one call.
    async fn messages_everywhere(
        &self,
        mailbox: &MailboxRef,
        query: &MessageQuery,
        scope: &TokenScope<'_>,
        state: Option<String>,
    ) -> Result<Page<MessageSummary>, Error> {
        let folders = self.folders(mailbox).await?;
        let (mut index, mut offset) = match state {
            None => (0, 0),
            Some(s) => {
                let (id, offset) = s
                    .rsplit_once('\n')
                    .and_then(|(id, o)| Some((id, o.parse::<u32>().ok()?)))
                    .ok_or_else(|| MailboxError::Invalid("a damaged page token".into()))?;
                let index = folders.iter().position(|f| f.id == id).ok_or_else(|| {
                    MailboxError::Invalid(
                        "the folder this page token continues in is gone; list again without it"
                            .into(),
                    )
                })?;
                (index, offset)
            }
        };
        while let Some(folder) = folders.get(index) {
            let found = self
                .find_messages(mailbox, FolderSpec::Id(folder.id.clone()), query, offset)
                .await?;
            let next = match found
                .next_offset
                .filter(|&n| n > offset && !found.items.is_empty())
            {
                Some(n) => Some((index, n)),
                None => (index + 1 < folders.len()).then_some((index + 1, 0)),
            };
            if found.items.is_empty() {
                match next {
                    Some((i, o)) => (index, offset) = (i, o),
                    None => break,
                }
                continue;
            }
            return Ok(Page {
                items: found.items,
                next: next.map(|(i, o)| self.pages.seal(scope, &format!("{}\n{o}", folders[i].id))),
            });
        }
        Ok(Page {
            items: Vec::new(),
            next: None,
        })
    }
}

/// The offset an opened page state holds (0 for the first page).
fn offset_of(state: Option<String>) -> Result<u32, Error> {
    state.map_or(Ok(0), |s| {
        s.parse::<u32>()
            .map_err(|_| MailboxError::Invalid("a damaged page token".into()).into())
    })
}

impl EwsMailbox {
    /// A page of an offset-paged `Find*` answer, with the next offset sealed to `scope`; a
    /// server that does not move forward ends the listing.
    fn offset_page<T>(
        &self,
        scope: &TokenScope<'_>,
        offset: u32,
        found: wire::FoundItems<T>,
    ) -> Page<T> {
        let next = found
            .next_offset
            .filter(|&n| n > offset && !found.items.is_empty())
            .map(|n| self.pages.seal(scope, &n.to_string()));
        Page {
            items: found.items,
            next,
        }
    }
}

/// A stable digest of what a page token is for.
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())
}

#[async_trait]
impl Mail for EwsMailbox {
    async fn folders(&self, mailbox: &MailboxRef) -> Result<Vec<Folder>, Error> {
        let mut all = Vec::new();
        let mut request = FindFolders::all(DistinguishedFolder::MsgFolderRoot.into());
        loop {
            let names = || Names {
                what: "folder",
                id: "msgfolderroot",
            };
            let body = self.read(mailbox, &request, names()).await?;
            let page = self.single(wire::decode_find_folders(&body), mailbox, names())?;
            all.extend(page.items);
            match page.next_offset {
                Some(next) if next > request.offset => request.offset = next,
                _ => return Ok(all),
            }
        }
    }

    async fn messages(
        &self,
        mailbox: &MailboxRef,
        query: &MessageQuery,
        page: Option<&str>,
    ) -> Result<Page<MessageSummary>, Error> {
        let folder = match &query.folder {
            Some(f) => Some(self.folder(mailbox, f).await?),
            None => None,
        };
        let key = mailbox.key(&self.me);
        let detail = digest(&[
            &folder
                .as_ref()
                .map_or_else(|| "all".to_owned(), |f| format!("{f:?}")),
            &query.unread_only.to_string(),
            query.from.as_deref().unwrap_or_default(),
            &query
                .since
                .map(|t| t.unix_timestamp().to_string())
                .unwrap_or_default(),
            &query.with_attachments.to_string(),
            &query.page_size.to_string(),
        ]);
        let scope = self.scope("messages", &key, detail);
        let state = match page {
            Some(token) => Some(self.pages.open(&scope, token)?),
            None => None,
        };
        let Some(folder) = folder else {
            return self
                .messages_everywhere(mailbox, query, &scope, state)
                .await;
        };
        let offset = offset_of(state)?;
        let found = self.find_messages(mailbox, folder, query, offset).await?;
        Ok(self.offset_page(&scope, offset, found))
    }

    async fn message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        body: Option<BodyKind>,
    ) -> Result<Message, Error> {
        let request = GetMessages::full(vec![Self::id(id)?], body);
        Ok(self.get_message(mailbox, id, request).await?.message)
    }

    async fn attachment(
        &self,
        mailbox: &MailboxRef,
        message: &str,
        attachment: &str,
    ) -> Result<Attachment, Error> {
        // The attachment must belong to the message named: EWS would fetch any ID.
        let whole = self.message(mailbox, message, None).await?;
        if !whole.attachments.iter().any(|a| a.id == attachment) {
            return Err(MailboxError::NotFound {
                what: "attachment",
                id: attachment.to_owned(),
                request_id: String::new(),
            }
            .into());
        }
        let request = GetAttachments {
            ids: vec![attachment.to_owned()],
        };
        let names = || Names {
            what: "attachment",
            id: attachment,
        };
        let body = self.read(mailbox, &request, names()).await?;
        let mut found = self.single(wire::decode_get_attachments(&body), mailbox, names())?;
        let content = found
            .pop()
            .ok_or_else(|| MailboxError::Protocol("GetAttachment answered nothing".into()))?;
        Ok(Attachment {
            info: content.info,
            content: ByteStream::from_bytes(Bytes::from(content.content)),
        })
    }

    async fn mime(&self, mailbox: &MailboxRef, id: &str) -> Result<ByteStream, Error> {
        let request = GetMessages::mime(vec![Self::id(id)?]);
        let full = self.get_message(mailbox, id, request).await?;
        let mime = full
            .mime
            .ok_or_else(|| MailboxError::Protocol("GetItem answered no MimeContent".into()))?;
        Ok(ByteStream::from_bytes(Bytes::from(mime)))
    }

    async fn send(&self, mailbox: &MailboxRef, message: &NewMessage) -> Result<(), Error> {
        message.check_size(self.pipe.limits().max_item_bytes)?;
        // Saved, then sent by ID: a retry of the send never delivers twice.
        let id = self.create_draft(mailbox, message).await?;
        self.send_draft(mailbox, id, message.save_to_sent).await
    }

    /// One `GetItem` with `IncludeMimeContent` per [`MIME_BATCH`] messages; a batch that fails
    /// whole fails only its own messages, each with the reason, for the caller to fetch alone.
    async fn mime_many(
        &self,
        mailbox: &MailboxRef,
        ids: &[String],
    ) -> Result<Vec<Result<Vec<u8>, Error>>, Error> {
        let mut out: Vec<Result<Vec<u8>, Error>> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MIME_BATCH) {
            let mut valid = Vec::new();
            let mut slots: Vec<Option<Result<Vec<u8>, Error>>> = Vec::with_capacity(chunk.len());
            for id in chunk {
                match Self::id(id) {
                    Ok(item) => {
                        valid.push(item);
                        slots.push(None);
                    }
                    Err(e) => slots.push(Some(Err(e))),
                }
            }
            if !valid.is_empty() {
                let results = self.mime_batch(mailbox, valid).await;
                let mut results = results.into_iter();
                for slot in slots.iter_mut().filter(|s| s.is_none()) {
                    *slot = Some(results.next().unwrap_or_else(|| {
                        Err(MailboxError::Protocol(
                            "GetItem answered fewer messages than were asked for".into(),
                        )
                        .into())
                    }));
                }
            }
            out.extend(slots.into_iter().flatten());
        }
        Ok(out)
    }

    async fn reply(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        comment: &str,
        all: bool,
    ) -> Result<(), Error> {
        let kind = if all {
            ReplyKind::ReplyAll
        } else {
            ReplyKind::Reply
        };
        self.respond(mailbox, id, comment, kind).await
    }

    async fn forward(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &[Recipient],
        comment: &str,
    ) -> Result<(), Error> {
        if to.is_empty() {
            return Err(
                MailboxError::Invalid("a forward needs at least one recipient".into()).into(),
            );
        }
        self.respond(mailbox, id, comment, ReplyKind::Forward { to: to.to_vec() })
            .await
    }

    async fn move_message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &FolderRef,
    ) -> Result<String, Error> {
        let request = MoveItems {
            ids: vec![Self::id(id)?],
            to: self.folder(mailbox, to).await?,
        };
        let names = || Names {
            what: "message",
            id,
        };
        let body = self.write(mailbox, &request, names()).await?;
        let mut moved = self.single(wire::decode_move_items(&body), mailbox, names())?;
        moved
            .pop()
            .map(|i| i.id)
            .ok_or_else(|| MailboxError::Protocol("MoveItem answered no new ID".into()).into())
    }

    async fn delete_message(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        self.delete(mailbox, id, "message", None).await
    }

    async fn set_read(&self, mailbox: &MailboxRef, id: &str, read: bool) -> Result<(), Error> {
        let request = SetReadFlag {
            ids: vec![Self::id(id)?],
            read,
        };
        let names = || Names {
            what: "message",
            id,
        };
        let body = self.write(mailbox, &request, names()).await?;
        self.single(wire::decode_item_ids(&body, "UpdateItem"), mailbox, names())
            .map(drop)
    }

    async fn changes(
        &self,
        mailbox: &MailboxRef,
        folder: &FolderRef,
        state: Option<&str>,
    ) -> Result<FolderChanges, Error> {
        let spec = self.folder(mailbox, folder).await?;
        let key = mailbox.key(&self.me);
        let scope = self.scope("changes", &key, digest(&[&format!("{spec:?}")]));
        let mut server_state = match state {
            Some(token) => Some(self.pages.open(&scope, token)?),
            None => None,
        };
        let mut all = FolderChanges {
            changed: Vec::new(),
            removed: Vec::new(),
            state: String::new(),
            reset: false,
        };
        loop {
            let request = SyncFolderItems {
                folder: spec.clone(),
                state: server_state.clone(),
                max_changes: SYNC_BATCH,
            };
            let names = || Names {
                what: "folder",
                id: "",
            };
            let body = self.read(mailbox, &request, names()).await?;
            let batch = self.single(wire::decode_sync_folder_items(&body), mailbox, names())?;
            all.changed.extend(batch.changes.changed);
            all.removed.extend(batch.changes.removed);
            let repeated = server_state.as_deref() == Some(batch.changes.state.as_str());
            server_state = Some(batch.changes.state);
            if batch.includes_last || repeated {
                break;
            }
        }
        all.state = self
            .pages
            .seal(&scope, server_state.as_deref().unwrap_or_default());
        Ok(all)
    }
}

impl EwsMailbox {
    /// A reply or forward: saved as a draft, then sent by ID (never twice).
    async fn respond(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        comment: &str,
        kind: ReplyKind,
    ) -> Result<(), Error> {
        let request = ReplyMessage {
            kind,
            reference: Self::id(id)?,
            comment: Body {
                kind: BodyKind::Text,
                content: comment.to_owned(),
            },
            send_now: false,
        };
        let names = || Names {
            what: "message",
            id,
        };
        let body = self.write(mailbox, &request, names()).await?;
        let draft = self
            .single(wire::decode_item_ids(&body, "CreateItem"), mailbox, names())?
            .pop()
            .ok_or_else(|| MailboxError::Protocol("CreateItem answered no draft".into()))?;
        self.send_draft(mailbox, draft, true).await
    }
}

#[async_trait]
impl Calendar for EwsMailbox {
    async fn events(
        &self,
        mailbox: &MailboxRef,
        start: OffsetDateTime,
        end: OffsetDateTime,
        time_zone: Option<&TimeZone>,
    ) -> Result<Vec<Event>, Error> {
        if end <= start {
            return Err(MailboxError::Invalid("the range ends before it starts".into()).into());
        }
        let request = FindEvents::new(start, end);
        let mut ctx = self.context(mailbox);
        if let Some(zone) = time_zone {
            ctx = ctx.with_time_zone(*zone);
        }
        let names = || Names {
            what: "calendar",
            id: "",
        };
        let body = self
            .call(mailbox, &request, ctx, Retry::Always, names())
            .await?;
        Ok(self
            .single(wire::decode_find_events(&body, time_zone), mailbox, names())?
            .items)
    }

    async fn create_event(&self, mailbox: &MailboxRef, event: &EventDraft) -> Result<Event, Error> {
        let request = CreateEvent::new(event.clone(), true)?;
        let names = || Names {
            what: "event",
            id: "",
        };
        let body = self.write(mailbox, &request, names()).await?;
        let id = self
            .single(wire::decode_item_ids(&body, "CreateItem"), mailbox, names())?
            .pop()
            .ok_or_else(|| MailboxError::Protocol("CreateItem answered no event".into()))?;
        // Answered in the zone it was created in, as Graph answers it.
        let zone = event.start.as_ref().map(|t| &t.time_zone);
        self.get_event(mailbox, id, zone).await
    }

    async fn update_event(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        change: &EventDraft,
    ) -> Result<Event, Error> {
        let request = UpdateEvent::new(Self::id(id)?, change.clone(), true)?;
        let names = || Names { what: "event", id };
        let body = self.write(mailbox, &request, names()).await?;
        let updated = self
            .single(wire::decode_item_ids(&body, "UpdateItem"), mailbox, names())?
            .pop()
            .unwrap_or_else(|| ItemId::new(id));
        let zone = change.start.as_ref().map(|t| &t.time_zone);
        self.get_event(mailbox, updated, zone).await
    }

    async fn delete_event(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        self.delete(mailbox, id, "event", Some(true)).await
    }
}

#[async_trait]
impl Availability for EwsMailbox {
    async fn free_busy(
        &self,
        mailbox: &MailboxRef,
        who: &[String],
        start: OffsetDateTime,
        end: OffsetDateTime,
        interval_minutes: u32,
    ) -> Result<Vec<FreeBusy>, Error> {
        if who.is_empty() {
            return Ok(Vec::new());
        }
        let request = GetUserAvailability {
            mailboxes: who.to_vec(),
            start,
            end,
            interval_minutes,
        };
        let names = || Names {
            what: "mailbox",
            id: "",
        };
        let body = self.read(mailbox, &request, names()).await?;
        wire::decode_get_user_availability(&body, &request)
            .map_err(|e| self.decoded(e, mailbox, &names()))
    }
}

#[async_trait]
impl Contacts for EwsMailbox {
    async fn contacts(
        &self,
        mailbox: &MailboxRef,
        page: Option<&str>,
    ) -> Result<Page<Contact>, Error> {
        let key = mailbox.key(&self.me);
        let scope = self.scope("contacts", &key, String::new());
        let state = match page {
            Some(token) => Some(self.pages.open(&scope, token)?),
            None => None,
        };
        let offset = offset_of(state)?;
        let request = FindContacts::new(offset, 100);
        let names = || Names {
            what: "contacts",
            id: "",
        };
        let body = self.read(mailbox, &request, names()).await?;
        let found = self.single(wire::decode_find_contacts(&body), mailbox, names())?;
        Ok(self.offset_page(&scope, offset, found))
    }

    async fn contact(&self, mailbox: &MailboxRef, id: &str) -> Result<Contact, Error> {
        self.get_contact(mailbox, Self::id(id)?).await
    }

    async fn create_contact(
        &self,
        mailbox: &MailboxRef,
        contact: &ContactDraft,
    ) -> Result<Contact, Error> {
        let request = CreateContact::new(contact.clone())?;
        let names = || Names {
            what: "contact",
            id: "",
        };
        let body = self.write(mailbox, &request, names()).await?;
        let id = self
            .single(wire::decode_item_ids(&body, "CreateItem"), mailbox, names())?
            .pop()
            .ok_or_else(|| MailboxError::Protocol("CreateItem answered no contact".into()))?;
        self.get_contact(mailbox, id).await
    }

    async fn update_contact(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        change: &ContactDraft,
    ) -> Result<Contact, Error> {
        let request = UpdateContact::new(Self::id(id)?, change.clone())?;
        let names = || Names {
            what: "contact",
            id,
        };
        let body = self.write(mailbox, &request, names()).await?;
        let updated = self
            .single(wire::decode_item_ids(&body, "UpdateItem"), mailbox, names())?
            .pop()
            .unwrap_or_else(|| ItemId::new(id));
        self.get_contact(mailbox, updated).await
    }

    async fn delete_contact(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        self.delete(mailbox, id, "contact", None).await
    }
}
