//! Messages read over IMAP or POP (RFC 5322 MIME) into the neutral mailbox types, with
//! mail-parser. Headers alone (POP's `TOP n 0`) give a summary; the whole MIME gives a message
//! with its body and attachments.

use mail_parser::{MessageParser, MimeHeaders};
use time::OffsetDateTime;

use crate::mailbox::{
    AttachmentInfo, Body, BodyKind, FlagStatus, Importance, Message, MessageSummary, Recipient,
};

fn recipients(a: Option<&mail_parser::Address<'_>>) -> Vec<Recipient> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| {
                x.address().map(|addr| Recipient {
                    name: x.name().map(str::to_owned),
                    address: addr.to_owned(),
                })
            })
            .collect()
    })
    .unwrap_or_default()
}

fn date(d: Option<&mail_parser::DateTime>) -> Option<OffsetDateTime> {
    d.and_then(|d| OffsetDateTime::from_unix_timestamp(d.to_timestamp()).ok())
}

fn importance(m: &mail_parser::Message<'_>) -> Importance {
    let value = m
        .header_raw("Importance")
        .or_else(|| m.header_raw("X-Priority"))
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if value.starts_with("high") || value.starts_with('1') || value.starts_with('2') {
        Importance::High
    } else if value.starts_with("low") || value.starts_with('5') || value.starts_with('4') {
        Importance::Low
    } else {
        Importance::Normal
    }
}

fn preview(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.chars().take(255).collect()
}

/// A summary from a message's MIME or only its headers; `None` if it is not MIME at all.
pub fn summary(id: &str, folder_id: &str, mime: &[u8]) -> Option<MessageSummary> {
    let m = MessageParser::default().parse_headers(mime)?;
    Some(summary_of(id, folder_id, &m))
}

fn summary_of(id: &str, folder_id: &str, m: &mail_parser::Message<'_>) -> MessageSummary {
    let multipart_mixed = m.content_type().is_some_and(|ct| {
        ct.c_type.eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("mixed"))
    });
    MessageSummary {
        id: id.to_owned(),
        subject: m.subject().unwrap_or_default().to_owned(),
        from: recipients(m.from()).into_iter().next(),
        received_at: date(m.date()),
        is_read: false,
        has_attachments: m.attachment_count() > 0 || multipart_mixed,
        importance: importance(m),
        flag: FlagStatus::NotFlagged,
        categories: Vec::new(),
        preview: m.body_text(0).map(|t| preview(&t)).unwrap_or_default(),
        folder_id: Some(folder_id.to_owned()),
    }
}

/// A whole message from its MIME; `body` asks for text or HTML (default: HTML when there is
/// one, as Exchange stores it).
pub fn message(id: &str, folder_id: &str, mime: &[u8], body: Option<BodyKind>) -> Option<Message> {
    let m = MessageParser::default().parse(mime)?;
    let mut summary = summary_of(id, folder_id, &m);
    summary.has_attachments = m.attachment_count() > 0;
    let html = m.body_html(0).map(|h| h.into_owned());
    let text = m.body_text(0).map(|t| t.into_owned());
    let body = match (body, html, text) {
        (Some(BodyKind::Text), _, Some(t)) | (None, None, Some(t)) => Body::text(t),
        (Some(BodyKind::Html) | None, Some(h), _) => Body::html(h),
        (Some(BodyKind::Html), None, Some(t)) => Body::text(t),
        (Some(BodyKind::Text), Some(h), None) => Body::html(h),
        (_, None, None) => Body::text(String::new()),
    };
    let attachments = m
        .attachments()
        .enumerate()
        .map(|(i, a)| AttachmentInfo {
            id: i.to_string(),
            name: a.attachment_name().unwrap_or("attachment").to_owned(),
            content_type: a.content_type().map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{sub}", ct.ctype()),
                None => ct.ctype().to_owned(),
            }),
            size: a.contents().len() as u64,
            is_inline: a
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline")),
        })
        .collect();
    Some(Message {
        to: recipients(m.to()),
        cc: recipients(m.cc()),
        bcc: recipients(m.bcc()),
        reply_to: recipients(m.reply_to()),
        sent_at: date(m.date()),
        body,
        attachments,
        internet_message_id: m.message_id().map(|i| format!("<{i}>")),
        conversation_id: None,
        summary,
    })
}

/// Attachment `index` (as [`message`] numbers them) of a MIME message: its name, type and
/// content.
pub fn attachment(mime: &[u8], index: &str) -> Option<(AttachmentInfo, Vec<u8>)> {
    let i: usize = index.parse().ok()?;
    let m = MessageParser::default().parse(mime)?;
    let a = m.attachment(u32::try_from(i).ok()?)?;
    let info = AttachmentInfo {
        id: index.to_owned(),
        name: a.attachment_name().unwrap_or("attachment").to_owned(),
        content_type: a.content_type().map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{sub}", ct.ctype()),
            None => ct.ctype().to_owned(),
        }),
        size: a.contents().len() as u64,
        is_inline: false,
    };
    Some((info, a.contents().to_vec()))
}
