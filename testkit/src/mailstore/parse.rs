//! An RFC 5322 / MIME message read into the store's [`Message`] (mail-parser): what SMTP
//! submission and IMAP `APPEND` hand the store. The store keeps items, not bytes, so the
//! message a protocol reads back is the store's rendering ([`super::mime::render`]), as
//! Exchange's own MIME is a rendering of its item.

use bytes::Bytes;
use mail_parser::{MessageParser, MimeHeaders as _, PartType};
use time::OffsetDateTime;

use super::content::{Address, BodyType};
use super::mailbox::{Attachment, Body, Message};

/// The message `bytes` hold, received `now`; `None` when they are not a message at all (no
/// header block).
pub(crate) fn message_from_mime(bytes: &[u8], now: OffsetDateTime) -> Option<Message> {
    let parsed = MessageParser::default().parse(bytes)?;
    let id = parsed
        .message_id()
        .map(|id| format!("<{}>", id.trim_matches(['<', '>'])))
        .unwrap_or_else(|| format!("<{}@exgate-mock>", uuid::Uuid::new_v4()));
    let mut message = Message::blank(now, id);
    message.is_draft = false;
    message.subject = parsed.subject().unwrap_or_default().to_string();
    let list = |addr: Option<&mail_parser::Address<'_>>| -> Vec<Address> {
        addr.map(|a| {
            a.iter()
                .filter_map(|one| {
                    let address = one.address()?.to_string();
                    Some(Address::new(one.name().unwrap_or_default(), address))
                })
                .collect()
        })
        .unwrap_or_default()
    };
    message.from = list(parsed.from()).into_iter().next();
    message.sender = list(parsed.sender()).into_iter().next();
    message.to = list(parsed.to());
    message.cc = list(parsed.cc());
    message.bcc = list(parsed.bcc());
    message.reply_to = list(parsed.reply_to());
    message.in_reply_to = parsed
        .in_reply_to()
        .as_text()
        .map(|id| format!("<{}>", id.trim_matches(['<', '>'])));
    message.sent = parsed
        .date()
        .and_then(|d| OffsetDateTime::from_unix_timestamp(d.to_timestamp()).ok());
    // mail-parser offers a text part as HTML and the other way round when one is missing:
    // take the HTML only when the message has a real text/html part.
    let html = parsed.html_part(0).and_then(|p| match &p.body {
        PartType::Html(html) => Some(html.to_string()),
        _ => None,
    });
    message.body = match html {
        Some(content) => Body {
            kind: BodyType::Html,
            content,
        },
        None => Body {
            kind: BodyType::Text,
            content: parsed
                .body_text(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
        },
    };
    for part in parsed.attachments() {
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{sub}", ct.ctype()),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        let name = part.attachment_name().unwrap_or("attachment").to_string();
        let is_inline = part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline"));
        message.add_attachment(Attachment {
            seq: 0,
            name,
            content_type,
            bytes: Bytes::copy_from_slice(part.contents()),
            is_inline,
            content_id: part.content_id().map(|cid| format!("<{cid}>")),
            modified: now,
        });
    }
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_submitted_message_becomes_an_item() {
        let raw = b"From: Adele Vance <adele@contoso.onmicrosoft.com>\r\nTo: megan@contoso.onmicrosoft.com, Lee <lee@contoso.example>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <abc@x>\r\nDate: Mon, 2 Nov 2026 09:00:00 +0000\r\n\r\nHello\r\n";
        let m = message_from_mime(raw, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(m.subject, "Grüße");
        assert_eq!(m.internet_message_id, "<abc@x>");
        assert_eq!(
            m.from.map(|a| a.address).as_deref(),
            Some("adele@contoso.onmicrosoft.com")
        );
        assert_eq!(m.to.len(), 2);
        assert_eq!(m.body.kind, BodyType::Text);
        assert!(m.body.content.starts_with("Hello"));
        assert!(!m.is_draft);
    }
}
