//! Messages as MIME (RFC 5322) for SMTP submission: a neutral [`NewMessage`] written with
//! mail-builder, and replies and forwards composed from the original's MIME (read with
//! mail-parser): the original quoted, `In-Reply-To` and `References` set. Shared by every sender
//! that submits MIME (SMTP for IMAP/POP connections and `send = smtp`).

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_parser::MessageParser;

use crate::mailbox::{Body, BodyKind, MailboxError, NewMessage, Recipient};

/// A message ready for SMTP: its envelope recipients (To, Cc and Bcc; Bcc is not in the
/// headers) and its MIME.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub recipients: Vec<String>,
    pub mime: Vec<u8>,
}

fn address(r: &Recipient) -> Address<'static> {
    Address::new_address(r.name.clone(), r.address.clone())
}

fn list(rs: &[Recipient]) -> Address<'static> {
    Address::new_list(rs.iter().map(address).collect())
}

/// Refuses an address that could smuggle SMTP or header syntax (line breaks, angle brackets).
fn check_address(a: &str) -> Result<(), MailboxError> {
    let ok = !a.is_empty()
        && a.len() <= 320
        && a.contains('@')
        && !a
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';'));
    if ok {
        Ok(())
    } else {
        Err(MailboxError::Invalid(format!(
            "`{}` is not an email address",
            a.escape_debug()
        )))
    }
}

/// The MIME of `message` from `sender` (the mailbox sent from, or `message.from`). `extra`
/// adds headers such as `In-Reply-To`.
pub fn outgoing(
    sender: &str,
    message: &NewMessage,
    in_reply_to: Option<&ThreadIds>,
) -> Result<Outgoing, MailboxError> {
    let recipients: Vec<String> = message
        .to
        .iter()
        .chain(&message.cc)
        .chain(&message.bcc)
        .map(|r| r.address.trim().to_owned())
        .collect();
    if recipients.is_empty() {
        return Err(MailboxError::Invalid(
            "the message has no recipient (To, Cc or Bcc)".into(),
        ));
    }
    for r in &recipients {
        check_address(r)?;
    }
    let from = message
        .from
        .clone()
        .unwrap_or_else(|| Recipient::address(sender));
    check_address(&from.address)?;
    let mut b = MessageBuilder::new()
        .from(address(&from))
        .subject(message.subject.clone());
    if !message.to.is_empty() {
        b = b.to(list(&message.to));
    }
    if !message.cc.is_empty() {
        b = b.cc(list(&message.cc));
    }
    if from.address != sender {
        b = b.sender(Address::new_address(None::<String>, sender.to_owned()));
    }
    match message.importance {
        crate::mailbox::Importance::High => {
            b = b.header("Importance", mail_builder::headers::raw::Raw::new("high"))
        }
        crate::mailbox::Importance::Low => {
            b = b.header("Importance", mail_builder::headers::raw::Raw::new("low"))
        }
        crate::mailbox::Importance::Normal => {}
    }
    if let Some(ids) = in_reply_to {
        b = b.in_reply_to(ids.message_id.clone());
        let mut refs = ids.references.clone();
        refs.push(ids.message_id.clone());
        b = b.references(refs);
    }
    b = match message.body.kind {
        BodyKind::Text => b.text_body(message.body.content.clone()),
        BodyKind::Html => b.html_body(message.body.content.clone()),
    };
    for a in &message.attachments {
        b = b.attachment(a.content_type.clone(), a.name.clone(), a.content.to_vec());
    }
    let mime = b
        .write_to_vec()
        .map_err(|e| MailboxError::Invalid(format!("the message cannot be written: {e}")))?;
    Ok(Outgoing { recipients, mime })
}

/// The IDs a reply refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadIds {
    /// Without angle brackets.
    pub message_id: String,
    pub references: Vec<String>,
}

/// A reply (to the sender, or to all but `me`) or a forward of `original` (its MIME), with
/// `comment` above the quoted original.
pub fn reply(
    original: &[u8],
    me: &str,
    comment: &str,
    all: bool,
) -> Result<(NewMessage, Option<ThreadIds>), MailboxError> {
    let parsed = MessageParser::default().parse(original).ok_or_else(|| {
        MailboxError::Protocol("the original message cannot be read as MIME".into())
    })?;
    let addrs = |a: Option<&mail_parser::Address<'_>>| -> Vec<Recipient> {
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
    };
    let from = addrs(parsed.reply_to().or(parsed.from()));
    let mut to = from.clone();
    let mut cc = Vec::new();
    if all {
        let not_me = |r: &Recipient| !r.address.eq_ignore_ascii_case(me);
        to.extend(addrs(parsed.to()).into_iter().filter(not_me));
        cc = addrs(parsed.cc()).into_iter().filter(not_me).collect();
        to.dedup_by(|a, b| a.address.eq_ignore_ascii_case(&b.address));
    }
    if to.is_empty() {
        return Err(MailboxError::Invalid(
            "the original message has no sender to reply to".into(),
        ));
    }
    let subject = parsed.subject().unwrap_or_default();
    let subject = if subject.to_ascii_lowercase().starts_with("re:") {
        subject.to_owned()
    } else {
        format!("Re: {subject}")
    };
    let body = quoted(&parsed, comment);
    let ids = thread_ids(&parsed);
    Ok((
        NewMessage {
            to,
            cc,
            bcc: Vec::new(),
            subject,
            body: Body::text(body),
            attachments: Vec::new(),
            importance: crate::mailbox::Importance::Normal,
            from: None,
            save_to_sent: true,
        },
        ids,
    ))
}

/// A forward of `original` to `to`: the original quoted below `comment`, and attached whole
/// as `message/rfc822`.
pub fn forward(
    original: &[u8],
    to: &[Recipient],
    comment: &str,
) -> Result<NewMessage, MailboxError> {
    let parsed = MessageParser::default().parse(original).ok_or_else(|| {
        MailboxError::Protocol("the original message cannot be read as MIME".into())
    })?;
    let subject = parsed.subject().unwrap_or_default();
    let subject = if subject.to_ascii_lowercase().starts_with("fw:")
        || subject.to_ascii_lowercase().starts_with("fwd:")
    {
        subject.to_owned()
    } else {
        format!("Fw: {subject}")
    };
    Ok(NewMessage {
        to: to.to_vec(),
        cc: Vec::new(),
        bcc: Vec::new(),
        subject,
        body: Body::text(quoted(&parsed, comment)),
        attachments: vec![crate::mailbox::NewAttachment {
            name: "forwarded.eml".into(),
            content_type: "message/rfc822".into(),
            content: bytes::Bytes::copy_from_slice(original),
        }],
        importance: crate::mailbox::Importance::Normal,
        from: None,
        save_to_sent: true,
    })
}

fn thread_ids(parsed: &mail_parser::Message<'_>) -> Option<ThreadIds> {
    let message_id = parsed.message_id()?.to_owned();
    let references = parsed
        .references()
        .as_text_list()
        .map(|l| l.iter().map(|s| s.to_string()).collect())
        .or_else(|| parsed.references().as_text().map(|s| vec![s.to_owned()]))
        .unwrap_or_default();
    Some(ThreadIds {
        message_id,
        references,
    })
}

fn quoted(parsed: &mail_parser::Message<'_>, comment: &str) -> String {
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(x)) => format!("{n} <{x}>"),
            (None, Some(x)) => x.to_owned(),
            (Some(n), None) => n.to_owned(),
            (None, None) => String::new(),
        })
        .unwrap_or_default();
    let date = parsed.date().map(|d| d.to_rfc822()).unwrap_or_default();
    let text = parsed.body_text(0).unwrap_or_default();
    let mut out = String::from(comment);
    out.push_str("\r\n\r\n");
    out.push_str(&format!("On {date}, {from} wrote:\r\n"));
    for line in text.lines() {
        out.push_str("> ");
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> NewMessage {
        NewMessage {
            to: vec![Recipient::address("adele@contoso.com")],
            cc: vec![],
            bcc: vec![Recipient::address("audit@contoso.com")],
            subject: "Grüße".into(),
            body: Body::text("Hello"),
            attachments: vec![crate::mailbox::NewAttachment {
                name: "a.bin".into(),
                content_type: "application/octet-stream".into(),
                content: bytes::Bytes::from_static(&[0, 1, 2, 255]),
            }],
            importance: crate::mailbox::Importance::Normal,
            from: None,
            save_to_sent: true,
        }
    }

    #[test]
    fn bcc_is_in_the_envelope_only_and_the_mime_round_trips() {
        let out = outgoing("sales@contoso.com", &message(), None).unwrap();
        assert_eq!(out.recipients, ["adele@contoso.com", "audit@contoso.com"]);
        let text = String::from_utf8_lossy(&out.mime);
        assert!(!text.to_ascii_lowercase().contains("audit@"), "{text}");
        let parsed = MessageParser::default().parse(&out.mime).unwrap();
        assert_eq!(parsed.subject(), Some("Grüße"));
        assert_eq!(
            parsed.from().unwrap().first().unwrap().address(),
            Some("sales@contoso.com")
        );
        assert_eq!(parsed.attachment(0).unwrap().contents(), &[0, 1, 2, 255]);
    }

    #[test]
    fn a_reply_quotes_and_threads() {
        let original = b"From: Adele <adele@contoso.com>\r\nTo: sales@contoso.com, bob@contoso.com\r\nSubject: Offer\r\nMessage-ID: <m1@contoso.com>\r\nReferences: <m0@contoso.com>\r\nDate: Tue, 1 Dec 2026 05:00:00 +0000\r\n\r\nLine one\r\nLine two\r\n";
        let (msg, ids) = reply(original, "sales@contoso.com", "Thanks", true).unwrap();
        assert_eq!(msg.subject, "Re: Offer");
        let to: Vec<&str> = msg.to.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(to, ["adele@contoso.com", "bob@contoso.com"]);
        assert!(msg.body.content.contains("> Line two"));
        let ids = ids.unwrap();
        let out = outgoing("sales@contoso.com", &msg, Some(&ids)).unwrap();
        let parsed = MessageParser::default().parse(&out.mime).unwrap();
        assert_eq!(parsed.in_reply_to().as_text(), Some("m1@contoso.com"));
        let refs = parsed.references().as_text_list().unwrap();
        assert_eq!(refs, ["m0@contoso.com", "m1@contoso.com"]);

        let fwd = forward(original, &[Recipient::address("x@contoso.com")], "FYI").unwrap();
        assert_eq!(fwd.subject, "Fw: Offer");
        assert_eq!(fwd.attachments[0].content_type, "message/rfc822");
    }

    #[test]
    fn addresses_that_could_inject_are_refused() {
        let mut m = message();
        m.to = vec![Recipient::address("a@b.c>\r\nRCPT TO:<evil@x.y")];
        assert!(outgoing("sales@contoso.com", &m, None).is_err());
        m.to = vec![];
        m.bcc = vec![];
        assert!(outgoing("sales@contoso.com", &m, None).is_err());
    }
}
