//! Messages as IMAP delivers them, made neutral: a summary from one `UID FETCH` (flags, size,
//! `INTERNALDATE`, `BODYSTRUCTURE` and a few header fields), a whole message from its MIME
//! (parsed by mail-parser), attachments numbered in MIME order.

use async_imap::imap_proto::BodyStructure;
use mail_parser::{Address, MessageParser, MimeHeaders as _};
use time::OffsetDateTime;

use crate::mailbox::{
    AttachmentInfo, Body, BodyKind, FlagStatus, Importance, Message, MessageSummary, Recipient,
};

/// The FETCH items of a summary.
pub(crate) const SUMMARY_ITEMS: &str = "(UID FLAGS RFC822.SIZE INTERNALDATE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE MESSAGE-ID IMPORTANCE X-PRIORITY)])";

/// How deep a BODYSTRUCTURE is walked; deeper parts are not looked at.
const MAX_DEPTH: usize = 32;

/// The characters of a preview.
const PREVIEW: usize = 255;

/// What the flags of a message say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct MessageFlags {
    pub seen: bool,
    pub flagged: bool,
    pub deleted: bool,
}

/// Whether a BODYSTRUCTURE holds a part meant as an attachment: one with an `attachment`
/// disposition, an attached message, a named text part, or a part that is not text, unless it
/// is shown inline (an `inline` disposition, or an image of a `multipart/related` HTML body).
pub(crate) fn has_attachments(body: &BodyStructure<'_>) -> bool {
    fn walk(body: &BodyStructure<'_>, depth: usize, related: bool) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let common = match body {
            BodyStructure::Multipart { common, bodies, .. } => {
                let related = common.ty.subtype.eq_ignore_ascii_case("related");
                return bodies.iter().any(|b| walk(b, depth + 1, related));
            }
            BodyStructure::Basic { common, .. }
            | BodyStructure::Text { common, .. }
            | BodyStructure::Message { common, .. } => common,
        };
        if let Some(d) = &common.disposition {
            if d.ty.eq_ignore_ascii_case("attachment") {
                return true;
            }
            if d.ty.eq_ignore_ascii_case("inline") {
                return false;
            }
        }
        match body {
            BodyStructure::Message { .. } => true,
            BodyStructure::Text { .. } => common
                .ty
                .params
                .as_ref()
                .is_some_and(|p| p.iter().any(|(k, _)| k.eq_ignore_ascii_case("name"))),
            _ => !related,
        }
    }
    walk(body, 0, false)
}

fn importance(raw_importance: Option<&str>, raw_priority: Option<&str>) -> Importance {
    if let Some(i) = raw_importance {
        match i.trim().to_ascii_lowercase().as_str() {
            "high" => return Importance::High,
            "low" => return Importance::Low,
            "normal" => return Importance::Normal,
            _ => {}
        }
    }
    match raw_priority
        .and_then(|p| p.trim().chars().next())
        .and_then(|c| c.to_digit(10))
    {
        Some(1 | 2) => Importance::High,
        Some(4 | 5) => Importance::Low,
        _ => Importance::Normal,
    }
}

fn recipients(a: Option<&Address<'_>>) -> Vec<Recipient> {
    let Some(a) = a else {
        return Vec::new();
    };
    a.iter()
        .filter_map(|addr| {
            let address = addr.address.as_deref()?.trim();
            (!address.is_empty()).then(|| Recipient {
                name: addr
                    .name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
                address: address.to_owned(),
            })
        })
        .collect()
}

fn timestamp(t: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t).ok()
}

/// The parts of a summary a FETCH answer gives.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fetched<'a> {
    pub id: String,
    pub folder: String,
    pub flags: MessageFlags,
    pub internal_date: Option<OffsetDateTime>,
    /// The header fields of [`SUMMARY_ITEMS`].
    pub header: &'a [u8],
    pub has_attachments: bool,
}

/// A summary from the fields one FETCH gave.
pub(crate) fn summary(f: &Fetched<'_>) -> MessageSummary {
    let parsed = MessageParser::new().parse_headers(f.header);
    let (subject, from, date, imp) = match &parsed {
        Some(m) => (
            m.subject().unwrap_or_default().to_owned(),
            recipients(m.from()).into_iter().next(),
            m.date().and_then(|d| timestamp(d.to_timestamp())),
            importance(m.header_raw("Importance"), m.header_raw("X-Priority")),
        ),
        None => (String::new(), None, None, Importance::Normal),
    };
    MessageSummary {
        id: f.id.clone(),
        subject,
        from,
        received_at: f.internal_date.or(date),
        is_read: f.flags.seen,
        has_attachments: f.has_attachments,
        importance: imp,
        flag: if f.flags.flagged {
            FlagStatus::Flagged
        } else {
            FlagStatus::NotFlagged
        },
        categories: Vec::new(),
        preview: String::new(),
        folder_id: Some(f.folder.clone()),
    }
}

/// An attachment's ID: its 1-based position among the message's attachments, in MIME order.
fn attachment_id(index: usize) -> String {
    (index + 1).to_string()
}

/// The position an attachment ID names (`None` for anything else).
pub(crate) fn attachment_index(id: &str) -> Option<usize> {
    if id.is_empty()
        || id.len() > 6
        || !id.bytes().all(|b| b.is_ascii_digit())
        || id.starts_with('0')
    {
        return None;
    }
    id.parse::<usize>().ok()?.checked_sub(1)
}

/// A whole message from its MIME; `summary` holds what the FETCH said (ID, folder, flags,
/// `INTERNALDATE`). `None` when the MIME cannot be read at all.
pub(crate) fn message(
    mime: &[u8],
    mut summary: MessageSummary,
    body: Option<BodyKind>,
) -> Option<Message> {
    let m = MessageParser::new().parse(mime)?;
    let attachments: Vec<AttachmentInfo> = m
        .attachments()
        .enumerate()
        .map(|(i, part)| attachment_info(i, part))
        .collect();
    let html = m.html_body_count() > 0
        && m.html_part(0)
            .is_some_and(|p| p.is_content_type("text", "html"));
    let kind = body.unwrap_or(if html { BodyKind::Html } else { BodyKind::Text });
    let content = match kind {
        BodyKind::Html => m.body_html(0),
        BodyKind::Text => m.body_text(0),
    }
    .map(|c| c.into_owned())
    .unwrap_or_default();
    summary.subject = m.subject().unwrap_or_default().to_owned();
    summary.from = recipients(m.from()).into_iter().next();
    summary.has_attachments = !attachments.is_empty();
    summary.importance = importance(m.header_raw("Importance"), m.header_raw("X-Priority"));
    summary.preview = m
        .body_preview(PREVIEW)
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    if summary.received_at.is_none() {
        summary.received_at = m.date().and_then(|d| timestamp(d.to_timestamp()));
    }
    Some(Message {
        summary,
        to: recipients(m.to()),
        cc: recipients(m.cc()),
        bcc: recipients(m.bcc()),
        reply_to: recipients(m.reply_to()),
        sent_at: m.date().and_then(|d| timestamp(d.to_timestamp())),
        body: Body { kind, content },
        attachments,
        internet_message_id: m.message_id().map(|id| format!("<{id}>")),
        conversation_id: None,
    })
}

fn attachment_info(index: usize, part: &mail_parser::MessagePart<'_>) -> AttachmentInfo {
    let content_type = part.content_type().map(|ct| match ct.subtype() {
        Some(sub) => format!("{}/{sub}", ct.ctype()),
        None => ct.ctype().to_owned(),
    });
    let name = part
        .attachment_name()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("attachment-{}", index + 1));
    AttachmentInfo {
        id: attachment_id(index),
        name,
        content_type,
        size: part.contents().len() as u64,
        is_inline: part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline")),
    }
}

/// Attachment `id` of a MIME message: its metadata and content.
pub(crate) fn attachment(mime: &[u8], id: &str) -> Option<(AttachmentInfo, Vec<u8>)> {
    let index = attachment_index(id)?;
    let m = MessageParser::new().parse(mime)?;
    let part = m.attachments().nth(index)?;
    let content = match &part.body {
        // An attached message is handed over as its MIME.
        mail_parser::PartType::Message(inner) => inner.raw_message().to_vec(),
        _ => part.contents().to_vec(),
    };
    let mut info = attachment_info(index, part);
    info.size = content.len() as u64;
    Some((info, content))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MIME: &[u8] = b"From: \"Adele Vance\" <adele@contoso.com>\r\n\
To: megan@contoso.com, =?utf-8?q?J=C3=BCrgen?= <j@contoso.com>\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
Date: Tue, 01 Dec 2026 09:00:00 +0000\r\n\
Message-ID: <abc@contoso.com>\r\n\
Importance: high\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hello <b>there</b></p>\r\n\
--b\r\n\
Content-Type: application/pdf; name=\"report.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--b--\r\n";

    fn base() -> MessageSummary {
        summary(&Fetched {
            id: "im1.x".into(),
            folder: "INBOX".into(),
            ..Fetched::default()
        })
    }

    #[test]
    fn a_whole_message_is_read_from_its_mime() {
        let m = message(MIME, base(), None).unwrap();
        assert_eq!(m.summary.subject, "Grüße");
        assert_eq!(
            m.summary.from,
            Some(Recipient {
                name: Some("Adele Vance".into()),
                address: "adele@contoso.com".into()
            })
        );
        assert_eq!(m.to.len(), 2);
        assert_eq!(m.to[1].name.as_deref(), Some("Jürgen"));
        assert_eq!(m.summary.importance, Importance::High);
        assert_eq!(m.body.kind, BodyKind::Html);
        assert!(m.body.content.contains("<b>there</b>"));
        assert_eq!(m.internet_message_id.as_deref(), Some("<abc@contoso.com>"));
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].id, "1");
        assert_eq!(m.attachments[0].name, "report.pdf");
        assert_eq!(
            m.attachments[0].content_type.as_deref(),
            Some("application/pdf")
        );
        let text = message(MIME, base(), Some(BodyKind::Text)).unwrap();
        assert_eq!(text.body.kind, BodyKind::Text);
        assert!(text.body.content.contains("Hello"), "{}", text.body.content);
        assert!(!text.body.content.contains("<b>"), "{}", text.body.content);

        let (info, content) = attachment(MIME, "1").unwrap();
        assert_eq!(content, b"%PDF-1.4\n");
        assert_eq!(info.size, 9);
        assert!(attachment(MIME, "2").is_none());
        assert!(attachment(MIME, "01").is_none());
        assert!(attachment(MIME, "0").is_none());
    }

    #[test]
    fn a_summary_is_read_from_the_header_fields() {
        let header =
            b"From: Adele <adele@contoso.com>\r\nSubject: Hi\r\nX-Priority: 5 (Lowest)\r\n\r\n";
        let s = summary(&Fetched {
            id: "im1.x".into(),
            folder: "INBOX".into(),
            flags: MessageFlags {
                seen: true,
                flagged: true,
                deleted: false,
            },
            header,
            ..Fetched::default()
        });
        assert_eq!(s.subject, "Hi");
        assert_eq!(s.from.unwrap().address, "adele@contoso.com");
        assert!(s.is_read);
        assert_eq!(s.flag, FlagStatus::Flagged);
        assert_eq!(s.importance, Importance::Low);
        assert_eq!(s.folder_id.as_deref(), Some("INBOX"));
    }

    fn part<'a>(ty: &'a str, subtype: &'a str, disposition: Option<&'a str>) -> BodyStructure<'a> {
        use async_imap::imap_proto::{
            BodyContentCommon, BodyContentSinglePart, ContentDisposition, ContentEncoding,
            ContentType,
        };
        let common = BodyContentCommon {
            ty: ContentType {
                ty: ty.into(),
                subtype: subtype.into(),
                params: None,
            },
            disposition: disposition.map(|d| ContentDisposition {
                ty: d.into(),
                params: None,
            }),
            language: None,
            location: None,
        };
        let other = BodyContentSinglePart {
            id: None,
            md5: None,
            description: None,
            transfer_encoding: ContentEncoding::Base64,
            octets: 10,
        };
        if ty.eq_ignore_ascii_case("text") {
            BodyStructure::Text {
                common,
                other,
                lines: 1,
                extension: None,
            }
        } else {
            BodyStructure::Basic {
                common,
                other,
                extension: None,
            }
        }
    }

    fn multi<'a>(subtype: &'a str, bodies: Vec<BodyStructure<'a>>) -> BodyStructure<'a> {
        BodyStructure::Multipart {
            common: async_imap::imap_proto::BodyContentCommon {
                ty: async_imap::imap_proto::ContentType {
                    ty: "MULTIPART".into(),
                    subtype: subtype.into(),
                    params: None,
                },
                disposition: None,
                language: None,
                location: None,
            },
            bodies,
            extension: None,
        }
    }

    #[test]
    fn attachments_are_seen_in_the_body_structure() {
        let text = || part("TEXT", "PLAIN", None);
        let html = || part("TEXT", "HTML", None);
        assert!(!has_attachments(&text()));
        assert!(!has_attachments(&multi(
            "ALTERNATIVE",
            vec![text(), html()]
        )));
        // A file, with or without disposition (the non-extensible BODY form has none).
        assert!(has_attachments(&multi(
            "MIXED",
            vec![text(), part("APPLICATION", "PDF", None)]
        )));
        assert!(has_attachments(&multi(
            "MIXED",
            vec![text(), part("TEXT", "CSV", Some("attachment"))]
        )));
        // Inline pictures of an HTML body are not attachments.
        assert!(!has_attachments(&multi(
            "RELATED",
            vec![html(), part("IMAGE", "PNG", None)]
        )));
        assert!(!has_attachments(&multi(
            "MIXED",
            vec![text(), part("IMAGE", "PNG", Some("inline"))]
        )));
        // Nesting deeper than anyone sends is not followed.
        let mut deep = part("APPLICATION", "PDF", None);
        for _ in 0..100 {
            deep = multi("MIXED", vec![deep]);
        }
        assert!(!has_attachments(&deep));
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = message(&bytes, base(), None);
            let _ = attachment(&bytes, "1");
            let _ = summary(&Fetched { header: &bytes, ..Fetched::default() });
        }

        #[test]
        fn any_attachment_id_is_a_position_or_refused(s in "\\PC{0,10}") {
            if let Some(i) = attachment_index(&s) {
                prop_assert_eq!(attachment_id(i), s);
            }
        }
    }
}
