//! Mail over Graph: folders, sealed paging, MIME (one by one streamed, or `$batch`es of 20),
//! attachments streamed, and sends that survive faults without ever delivering twice.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

use super::wire::{self, Collection, WireAttachment, WireMessage};
use super::{Call, GraphMailbox, decode, time_param};
use crate::Error;
use crate::mailbox::{
    Attachment, BodyKind, Folder, FolderChanges, FolderRef, Mail, MailboxError, MailboxRef,
    Message, MessageQuery, MessageSummary, NewAttachment, NewMessage, Operation, Page, Recipient,
};
use crate::pipeline::{ByteStream, Request, Retry, backoff, segment};

/// The largest request `$batch` takes.
const BATCH_SIZE: usize = 20;
/// The largest `$batch` answer read whole; items of a larger one are fetched alone, streamed.
const BATCH_ANSWER_LIMIT: u64 = 48 * 1024 * 1024;
/// Attachments sent inline in the draft, in all (Graph takes at most 4 MB per request, and
/// base64 adds a third); larger ones go through upload sessions.
const INLINE_BUDGET: usize = 2_500_000;
/// One upload-session PUT: Graph takes up to 4 MB each; a multiple of 320 KiB suits every
/// upload endpoint Microsoft documents.
const UPLOAD_CHUNK: usize = 10 * 320 * 1024;
/// Graph takes upload sessions for files of 3 MB and more; smaller ones are posted whole.
const UPLOAD_MIN: usize = 3 * 1024 * 1024;

fn folder_segment(f: &FolderRef) -> Result<String, MailboxError> {
    match f {
        FolderRef::WellKnown(w) => Ok(wire::folder_name(*w).to_owned()),
        FolderRef::Id(id) => segment("folder", id),
    }
}

fn message_filter(q: &MessageQuery) -> Option<String> {
    let mut parts = Vec::new();
    if q.unread_only {
        parts.push("isRead eq false".to_owned());
    }
    if let Some(from) = &q.from {
        parts.push(format!(
            "from/emailAddress/address eq '{}'",
            from.replace('\'', "''")
        ));
    }
    if let Some(since) = q.since {
        parts.push(format!("receivedDateTime ge {}", time_param(since)));
    }
    if q.with_attachments {
        parts.push("hasAttachments eq true".to_owned());
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

/// What a message listing's page token is bound to, besides the mailbox: folder and filter
/// (not the page size, which a caller may change between pages).
fn query_detail(q: &MessageQuery) -> String {
    format!(
        "{:?}|{}|{:?}|{:?}|{}",
        q.folder, q.unread_only, q.from, q.since, q.with_attachments
    )
}

/// Whether a request may have reached the server although it failed: a lost answer.
fn in_doubt(e: &Error) -> bool {
    matches!(
        e,
        Error::Mailbox(MailboxError::Transport(_) | MailboxError::Server { .. })
    )
}

/// Whether `bytes` starts as an RFC 5322 message does: a header field `name: value`.
fn looks_like_mime(bytes: &[u8]) -> bool {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    match line.iter().position(|b| *b == b':') {
        Some(colon) if colon > 0 => line[..colon]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-'),
        _ => false,
    }
}

/// One `$batch` answer's MIME: Graph sends non-JSON bodies base64-encoded in a JSON string.
fn batch_body(r: wire::BatchResponse, id: &str) -> Result<Vec<u8>, Error> {
    if !(200..300).contains(&r.status) {
        let message = r.body["error"]["message"]
            .as_str()
            .unwrap_or("failed")
            .to_owned();
        let code = r.body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        return Err(match r.status {
            404 => MailboxError::NotFound {
                what: "message",
                id: id.to_owned(),
                request_id: String::new(),
            },
            s if s >= 500 => MailboxError::Server {
                status: s,
                code,
                message,
                request_id: String::new(),
            },
            s => MailboxError::Rejected {
                status: s,
                code,
                message,
                request_id: String::new(),
            },
        }
        .into());
    }
    let not_mime = || -> Error {
        MailboxError::Protocol(format!(
            "the batch answer for message `{id}` is not a MIME message"
        ))
        .into()
    };
    let Value::String(s) = r.body else {
        return Err(not_mime());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.as_bytes())
        .map_err(|_| not_mime())?;
    if looks_like_mime(&bytes) {
        Ok(bytes)
    } else {
        Err(not_mime())
    }
}

impl GraphMailbox {
    /// Creates the draft. A creation whose answer was lost may still have happened, so before
    /// trying again the draft is looked up by the internet message ID exgate gave it: a retry
    /// never leaves two drafts to send.
    async fn create_draft(
        &self,
        mailbox: &MailboxRef,
        root: &str,
        mut draft: Value,
        marker: &str,
    ) -> Result<String, Error> {
        draft["internetMessageId"] = Value::String(marker.to_owned());
        let attempts = self.pipe.limits().attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let call = Call::new(
                Method::POST,
                format!("{root}/messages"),
                Operation::WRITE_MAIL,
                mailbox,
            )
            .json(draft.clone());
            match self.get_json::<Value>(call).await {
                Ok(created) => {
                    return created["id"].as_str().map(str::to_owned).ok_or_else(|| {
                        MailboxError::Protocol("the draft came back without an id".into()).into()
                    });
                }
                Err(e) if in_doubt(&e) && attempt < attempts => {
                    tracing::warn!(attempt, error = %e, "creating the draft failed in transit; looking for it before trying again");
                    if let Some(id) = self.find_draft(mailbox, root, marker).await? {
                        return Ok(id);
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn find_draft(
        &self,
        mailbox: &MailboxRef,
        root: &str,
        marker: &str,
    ) -> Result<Option<String>, Error> {
        let call = Call::new(
            Method::GET,
            format!("{root}/mailFolders/drafts/messages"),
            Operation::READ_MAIL,
            mailbox,
        )
        .query("$filter", format!("internetMessageId eq '{marker}'"))
        .query("$select", "id")
        .query("$top", "1");
        let found: Collection<Value> = self.get_json(call).await?;
        Ok(found
            .value
            .first()
            .and_then(|m| m["id"].as_str())
            .map(str::to_owned))
    }

    /// Attaches a large file through an upload session: PUTs of [`UPLOAD_CHUNK`] to the
    /// pre-authenticated URL Graph gives, which carry no token.
    async fn upload_attachment(
        &self,
        mailbox: &MailboxRef,
        root: &str,
        draft: &str,
        a: &NewAttachment,
    ) -> Result<(), Error> {
        let total = a.content.len();
        let call = Call::new(
            Method::POST,
            format!(
                "{root}/messages/{}/attachments/createUploadSession",
                segment("message", draft)?
            ),
            Operation::WRITE_MAIL,
            mailbox,
        )
        .json(json!({ "AttachmentItem": {
            "attachmentType": "file",
            "name": a.name,
            "size": total,
            "contentType": a.content_type,
        }}))
        .retry(Retry::Always)
        .item(draft);
        let session: Value = self.get_json(call).await?;
        let upload = session["uploadUrl"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .filter(|u| {
                u.scheme() == "https"
                    || u.host_str()
                        .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]")
            })
            .ok_or_else(|| {
                MailboxError::Protocol("the upload session came without a usable uploadUrl".into())
            })?;
        let errors =
            Call::new(Method::PUT, String::new(), Operation::WRITE_MAIL, mailbox).item(draft);
        let mut offset = 0;
        while offset < total {
            let end = (offset + UPLOAD_CHUNK).min(total);
            let req = Request::new(Method::PUT, upload.clone(), self.key(mailbox))
                .without_credential()
                .header(
                    reqwest::header::CONTENT_RANGE,
                    &format!("bytes {offset}-{}/{total}", end - 1),
                )
                .body("application/octet-stream", a.content.slice(offset..end));
            let answer = self
                .pipe
                .send(&req)
                .await
                .map_err(|f| self.failure(f, &errors))?;
            if answer.status == reqwest::StatusCode::CREATED {
                return Ok(());
            }
            let progress: Value = decode(&answer.body)?;
            // Graph names where the next upload begins (`"{start}"` or `"{start}-"`).
            offset = progress["nextExpectedRanges"][0]
                .as_str()
                .and_then(|r| r.split('-').next())
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n > offset && *n <= total)
                .ok_or_else(|| {
                    MailboxError::Protocol(format!(
                        "the upload session answered without a next range after byte {end}"
                    ))
                })?;
        }
        Err(MailboxError::Protocol(format!(
            "the upload of `{}` ended without Graph creating the attachment",
            a.name
        ))
        .into())
    }

    /// Attaches a file under 3 MB that did not fit in the draft's own request. A post whose
    /// answer was lost is looked for on the draft before it is tried again, so a retry never
    /// attaches the file twice.
    async fn post_attachment(
        &self,
        mailbox: &MailboxRef,
        root: &str,
        draft: &str,
        a: &NewAttachment,
    ) -> Result<(), Error> {
        let target = format!("{root}/messages/{}/attachments", segment("message", draft)?);
        let attempts = self.pipe.limits().attempts.max(1);
        for attempt in 1..=attempts {
            let call = Call::new(Method::POST, target.clone(), Operation::WRITE_MAIL, mailbox)
                .json(wire::file_attachment_json(a))
                .item(draft);
            match self.no_content(call).await {
                Ok(()) => return Ok(()),
                Err(e) if in_doubt(&e) && attempt < attempts => {
                    let listed =
                        Call::new(Method::GET, target.clone(), Operation::READ_MAIL, mailbox)
                            .query("$select", "id,name,size")
                            .item(draft);
                    let present = self
                        .all::<WireAttachment>(listed)
                        .await?
                        .iter()
                        .any(|w| w.name.as_deref() == Some(a.name.as_str()));
                    if present {
                        return Ok(());
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(MailboxError::Transport(format!("`{}` could not be attached", a.name)).into())
    }

    /// Sends a draft by ID. A second send of a draft that was already sent finds nothing, so
    /// trying again after a lost answer never delivers twice.
    async fn send_draft(&self, mailbox: &MailboxRef, root: &str, id: &str) -> Result<(), Error> {
        let target = format!("{root}/messages/{}/send", segment("message", id)?);
        let attempts = self.pipe.limits().attempts.max(1);
        for attempt in 1..=attempts {
            let call =
                Call::new(Method::POST, target.clone(), Operation::SEND_MAIL, mailbox).item(id);
            match self.no_content(call).await {
                Ok(()) => return Ok(()),
                Err(Error::Mailbox(MailboxError::NotFound { .. })) if attempt > 1 => return Ok(()),
                Err(e) if in_doubt(&e) && attempt < attempts => {
                    tracing::warn!(attempt, error = %e, "sending the draft failed in transit; sending it again by ID");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(MailboxError::Transport("the message could not be sent".into()).into())
    }

    /// The internet message ID a new draft gets, to find it again after a lost answer.
    fn marker(&self, mailbox: &MailboxRef) -> String {
        let key = self.key(mailbox);
        let domain = key
            .rsplit_once('@')
            .map_or("exgate.invalid", |(_, d)| d)
            .to_owned();
        format!("<exgate.{}@{domain}>", uuid::Uuid::new_v4().simple())
    }
}

#[async_trait]
impl Mail for GraphMailbox {
    async fn folders(&self, mailbox: &MailboxRef) -> Result<Vec<Folder>, Error> {
        let call = Call::new(
            Method::GET,
            format!("{}/mailFolders", self.root(mailbox)?),
            Operation::READ_MAIL,
            mailbox,
        )
        .query("$top", "100");
        Ok(self
            .all::<wire::MailFolder>(call)
            .await?
            .into_iter()
            .map(Folder::from)
            .collect())
    }

    async fn messages(
        &self,
        mailbox: &MailboxRef,
        query: &MessageQuery,
        page: Option<&str>,
    ) -> Result<Page<MessageSummary>, Error> {
        let detail = query_detail(query);
        let (call, current) = match page {
            Some(token) => {
                let link = self.unseal(mailbox, "messages", &detail, token)?;
                (
                    Call::link(link.clone(), Operation::READ_MAIL, mailbox),
                    Some(link),
                )
            }
            None => {
                let root = self.root(mailbox)?;
                let target = match &query.folder {
                    Some(f) => format!("{root}/mailFolders/{}/messages", folder_segment(f)?),
                    None => format!("{root}/messages"),
                };
                let mut call = Call::new(Method::GET, target, Operation::READ_MAIL, mailbox)
                    .query("$select", wire::SUMMARY_FIELDS)
                    .query("$top", query.page_size.clamp(1, 1000).to_string())
                    .query("$orderby", "receivedDateTime desc");
                if let Some(filter) = message_filter(query) {
                    call = call.query("$filter", filter);
                }
                (call, None)
            }
        };
        let page: Collection<WireMessage> = self.get_json(call).await?;
        if page.next_link.is_some() && page.next_link == current {
            return Err(super::repeated_link(1));
        }
        Ok(Page {
            items: page
                .value
                .into_iter()
                .map(WireMessage::into_summary)
                .collect(),
            next: page
                .next_link
                .map(|link| self.seal(mailbox, "messages", &detail, &link)),
        })
    }

    async fn message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        body: Option<BodyKind>,
    ) -> Result<Message, Error> {
        let root = self.root(mailbox)?;
        let item = segment("message", id)?;
        let mut call = Call::new(
            Method::GET,
            format!("{root}/messages/{item}"),
            Operation::READ_MAIL,
            mailbox,
        )
        .query("$select", wire::MESSAGE_FIELDS)
        .item(id);
        if let Some(kind) = body {
            call = call.prefer(format!(
                "outlook.body-content-type=\"{}\"",
                match kind {
                    BodyKind::Text => "text",
                    BodyKind::Html => "html",
                }
            ));
        }
        let message: WireMessage = self.get_json(call).await?;
        let attachments = if message.has_attachments.unwrap_or(false) {
            let call = Call::new(
                Method::GET,
                format!("{root}/messages/{item}/attachments"),
                Operation::READ_MAIL,
                mailbox,
            )
            .query("$select", "id,name,contentType,size,isInline")
            .item(id);
            self.all::<WireAttachment>(call)
                .await?
                .iter()
                .map(WireAttachment::info)
                .collect()
        } else {
            Vec::new()
        };
        Ok(message.into_message(attachments))
    }

    async fn attachment(
        &self,
        mailbox: &MailboxRef,
        message: &str,
        attachment: &str,
    ) -> Result<Attachment, Error> {
        let target = format!(
            "{}/messages/{}/attachments/{}",
            self.root(mailbox)?,
            segment("message", message)?,
            segment("attachment", attachment)?
        );
        let meta: WireAttachment = self
            .get_json(
                Call::new(Method::GET, target.clone(), Operation::READ_MAIL, mailbox)
                    .query("$select", "id,name,contentType,size,isInline")
                    .item(attachment),
            )
            .await?;
        if meta
            .odata_type
            .as_deref()
            .is_some_and(|t| t.ends_with("referenceAttachment"))
        {
            return Err(MailboxError::Unsupported(format!(
                "attachment `{}` is a link to a file elsewhere (a reference attachment), not content; open it in Outlook",
                meta.name.as_deref().unwrap_or_default()
            ))
            .into());
        }
        let call = Call::new(
            Method::GET,
            format!("{target}/$value"),
            Operation::READ_MAIL,
            mailbox,
        )
        .item(attachment);
        let req = self.request(&call)?;
        let streamed = self
            .pipe
            .stream(&req)
            .await
            .map_err(|f| self.failure(f, &call))?;
        Ok(Attachment {
            info: meta.info(),
            content: streamed.body,
        })
    }

    async fn mime(&self, mailbox: &MailboxRef, id: &str) -> Result<ByteStream, Error> {
        let call = Call::new(
            Method::GET,
            format!(
                "{}/messages/{}/$value",
                self.root(mailbox)?,
                segment("message", id)?
            ),
            Operation::READ_MAIL,
            mailbox,
        )
        .item(id);
        let req = self.request(&call)?;
        let streamed = self
            .pipe
            .stream(&req)
            .await
            .map_err(|f| self.failure(f, &call))?;
        Ok(streamed.body)
    }

    /// Fetches MIME in `$batch`es of 20; throttled inner requests are retried after their hint
    /// (within the cap). A batch that fails whole fails only its own items, each with the
    /// reason, for the caller to fetch alone.
    async fn mime_many(
        &self,
        mailbox: &MailboxRef,
        ids: &[String],
    ) -> Result<Vec<Result<Vec<u8>, Error>>, Error> {
        let root = self.root(mailbox)?;
        let key = self.key(mailbox);
        let limits = self.pipe.limits();
        let mut results: Vec<Option<Result<Vec<u8>, Error>>> =
            (0..ids.len()).map(|_| None).collect();
        for chunk_start in (0..ids.len()).step_by(BATCH_SIZE) {
            let mut pending = Vec::new();
            for i in chunk_start..(chunk_start + BATCH_SIZE).min(ids.len()) {
                match segment("message", &ids[i]) {
                    Ok(_) => pending.push(i),
                    Err(e) => results[i] = Some(Err(e.into())),
                }
            }
            let mut rounds = 0;
            while !pending.is_empty() {
                rounds += 1;
                let requests: Vec<Value> = pending
                    .iter()
                    .map(|&i| json!({ "id": i.to_string(), "method": "GET", "url": format!("/{root}/messages/{}/$value", segment("message", &ids[i]).unwrap_or_default()) }))
                    .collect();
                let mut call =
                    Call::new(Method::POST, "$batch".into(), Operation::READ_MAIL, mailbox)
                        .json(json!({ "requests": requests }))
                        .retry(Retry::Always);
                call.answer_limit = Some(BATCH_ANSWER_LIMIT);
                call.cost = u32::try_from(pending.len()).unwrap_or(u32::MAX);
                let replies: wire::BatchResponses = match self.get_json(call).await {
                    Ok(r) => r,
                    Err(e) => {
                        let why = e.to_string();
                        for &i in &pending {
                            results[i] = Some(Err(MailboxError::Protocol(format!(
                                "its batch failed: {why}"
                            ))
                            .into()));
                        }
                        break;
                    }
                };
                let mut retry_later = Vec::new();
                let mut wait: Option<Duration> = None;
                for r in replies.responses {
                    let Some(i) = r.id.parse::<usize>().ok().filter(|i| pending.contains(i)) else {
                        continue;
                    };
                    if r.status == 429 || r.status == 503 {
                        let hint = r
                            .headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                            .and_then(|(_, v)| {
                                crate::net::parse_retry_after(v, std::time::SystemTime::now())
                            })
                            .unwrap_or_else(|| backoff(rounds));
                        if rounds < limits.attempts && hint <= limits.max_wait {
                            wait = wait.max(Some(hint));
                            retry_later.push(i);
                        } else {
                            results[i] =
                                Some(Err(MailboxError::Throttled { retry_after: hint }.into()));
                        }
                        continue;
                    }
                    results[i] = Some(batch_body(r, &ids[i]));
                }
                for &i in &pending {
                    if results[i].is_none() && !retry_later.contains(&i) {
                        results[i] = Some(Err(MailboxError::Protocol(format!(
                            "the batch answered nothing for message `{}`",
                            ids[i]
                        ))
                        .into()));
                    }
                }
                if let Some(w) = wait {
                    self.pipe.governor().back_off(&key, w);
                }
                pending = retry_later;
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(MailboxError::Protocol("no batch answer".into()).into()))
            })
            .collect())
    }

    async fn send(&self, mailbox: &MailboxRef, message: &NewMessage) -> Result<(), Error> {
        message.check_size(self.pipe.limits().max_item_bytes)?;
        let root = self.root(mailbox)?;
        let mut inline = Vec::new();
        let mut large = Vec::new();
        let mut budget = INLINE_BUDGET;
        for a in &message.attachments {
            if a.content.len() <= budget {
                budget -= a.content.len();
                inline.push(a);
            } else {
                large.push(a);
            }
        }
        if large.is_empty() && !message.save_to_sent {
            let body =
                json!({ "message": wire::new_message_json(message), "saveToSentItems": false });
            return self
                .no_content(
                    Call::new(
                        Method::POST,
                        format!("{root}/sendMail"),
                        Operation::SEND_MAIL,
                        mailbox,
                    )
                    .json(body),
                )
                .await;
        }
        if !message.save_to_sent {
            tracing::info!(
                "attachments over {INLINE_BUDGET} bytes go through a draft, which Graph keeps in Sent Items"
            );
        }
        // Save a draft, then send it by ID: sending a draft that was already sent finds nothing,
        // so retrying after a lost answer cannot deliver twice.
        let marker = self.marker(mailbox);
        let draft = wire::message_json(message, &inline);
        let id = self.create_draft(mailbox, &root, draft, &marker).await?;
        for a in large {
            if a.content.len() >= UPLOAD_MIN {
                self.upload_attachment(mailbox, &root, &id, a).await?;
            } else {
                self.post_attachment(mailbox, &root, &id, a).await?;
            }
        }
        self.send_draft(mailbox, &root, &id).await
    }

    async fn reply(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        comment: &str,
        all: bool,
    ) -> Result<(), Error> {
        let action = if all { "replyAll" } else { "reply" };
        let target = format!(
            "{}/messages/{}/{action}",
            self.root(mailbox)?,
            segment("message", id)?
        );
        self.no_content(
            Call::new(Method::POST, target, Operation::SEND_MAIL, mailbox)
                .json(json!({ "comment": comment }))
                .item(id),
        )
        .await
    }

    async fn forward(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &[Recipient],
        comment: &str,
    ) -> Result<(), Error> {
        let target = format!(
            "{}/messages/{}/forward",
            self.root(mailbox)?,
            segment("message", id)?
        );
        let body = json!({ "comment": comment, "toRecipients": to.iter().map(wire::recipient_json).collect::<Vec<_>>() });
        self.no_content(
            Call::new(Method::POST, target, Operation::SEND_MAIL, mailbox)
                .json(body)
                .item(id),
        )
        .await
    }

    async fn move_message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &FolderRef,
    ) -> Result<String, Error> {
        let target = format!(
            "{}/messages/{}/move",
            self.root(mailbox)?,
            segment("message", id)?
        );
        let destination = match to {
            FolderRef::WellKnown(w) => wire::folder_name(*w).to_owned(),
            FolderRef::Id(f) => f.clone(),
        };
        let moved: Value = self
            .get_json(
                Call::new(Method::POST, target, Operation::WRITE_MAIL, mailbox)
                    .json(json!({ "destinationId": destination }))
                    .item(id),
            )
            .await?;
        moved["id"].as_str().map(str::to_owned).ok_or_else(|| {
            MailboxError::Protocol("the moved message came back without an id".into()).into()
        })
    }

    async fn delete_message(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        let target = format!(
            "{}/messages/{}",
            self.root(mailbox)?,
            segment("message", id)?
        );
        self.no_content(Call::new(Method::DELETE, target, Operation::WRITE_MAIL, mailbox).item(id))
            .await
    }

    async fn set_read(&self, mailbox: &MailboxRef, id: &str, read: bool) -> Result<(), Error> {
        let target = format!(
            "{}/messages/{}",
            self.root(mailbox)?,
            segment("message", id)?
        );
        self.no_content(
            Call::new(Method::PATCH, target, Operation::WRITE_MAIL, mailbox)
                .json(json!({ "isRead": read }))
                .item(id),
        )
        .await
    }

    async fn changes(
        &self,
        mailbox: &MailboxRef,
        folder: &FolderRef,
        state: Option<&str>,
    ) -> Result<FolderChanges, Error> {
        let detail = format!("{folder:?}");
        let mut call = match state {
            Some(token) => Call::link(
                self.unseal(mailbox, "changes", &detail, token)?,
                Operation::READ_MAIL,
                mailbox,
            ),
            None => Call::new(
                Method::GET,
                format!(
                    "{}/mailFolders/{}/messages/delta",
                    self.root(mailbox)?,
                    folder_segment(folder)?
                ),
                Operation::READ_MAIL,
                mailbox,
            )
            .query("$select", wire::SUMMARY_FIELDS),
        };
        let (mut changed, mut removed) = (Vec::new(), Vec::new());
        let mut seen = std::collections::HashSet::new();
        loop {
            let page: Collection<WireMessage> = self.get_json(call).await?;
            for m in page.value {
                if m.removed.is_some() {
                    removed.push(m.id);
                } else {
                    changed.push(m.into_summary());
                }
            }
            match (page.next_link, page.delta_link) {
                (Some(next), _) => {
                    if !seen.insert(next.clone()) {
                        return Err(super::repeated_link(seen.len()));
                    }
                    call = Call::link(next, Operation::READ_MAIL, mailbox);
                }
                (None, Some(delta)) => {
                    return Ok(FolderChanges {
                        changed,
                        removed,
                        state: self.seal(mailbox, "changes", &detail, &delta),
                        reset: false,
                    });
                }
                (None, None) => {
                    return Err(MailboxError::Protocol(
                        "the delta answer ended without a deltaLink".into(),
                    )
                    .into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_is_recognised_by_its_first_header() {
        assert!(looks_like_mime(
            b"Received: from x\r\nSubject: y\r\n\r\nbody"
        ));
        assert!(looks_like_mime(b"MIME-Version: 1.0\n"));
        assert!(!looks_like_mime(b"{\"error\":1}"));
        assert!(!looks_like_mime(b""));
        assert!(!looks_like_mime(b": no name"));
        assert!(!looks_like_mime(b"not a header line\r\n"));
    }

    #[test]
    fn a_batch_part_that_is_not_mime_is_an_error() {
        let part = |body: Value| wire::BatchResponse {
            id: "0".into(),
            status: 200,
            headers: Default::default(),
            body,
        };
        let b64 = |s: &str| Value::String(base64::engine::general_purpose::STANDARD.encode(s));
        assert!(batch_body(part(b64("Subject: hi\r\n\r\nx")), "m").is_ok());
        assert!(batch_body(part(b64("<html>")), "m").is_err());
        assert!(batch_body(part(json!({"a": 1})), "m").is_err());
        assert!(batch_body(part(Value::String("%%%".into())), "m").is_err());
    }
}
