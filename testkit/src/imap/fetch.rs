//! FETCH data items of one message: flags, UID, sizes, dates, ENVELOPE, BODYSTRUCTURE and
//! body sections, over the store's MIME rendering of the item (the same bytes Graph's
//! `$value` and EWS's `MimeContent` answer).

use imap_codec::imap_types::fetch::{MessageDataItemName, Section};
use mail_parser::{MessageParser, PartType};

use super::wire;
use crate::mailproto::ExtraFlags;
use crate::mailstore::content::FlagStatus;
use crate::mailstore::mailbox::Message;
use crate::mailstore::mime;

/// The flags of a message as IMAP shows them.
pub(crate) fn flags(m: &Message, extra: Option<&ExtraFlags>) -> Vec<&'static str> {
    let mut flags = Vec::new();
    if m.is_read {
        flags.push("\\Seen");
    }
    if extra.is_some_and(|e| e.contains("\\Answered")) {
        flags.push("\\Answered");
    }
    if m.flag == FlagStatus::Flagged {
        flags.push("\\Flagged");
    }
    if extra.is_some_and(|e| e.contains("\\Deleted")) {
        flags.push("\\Deleted");
    }
    if m.is_draft {
        flags.push("\\Draft");
    }
    flags
}

pub(crate) fn flag_list(flags: &[&str]) -> String {
    format!("FLAGS ({})", flags.join(" "))
}

/// The message's bytes, split at the end of the header block (the blank line included).
fn split(raw: &[u8]) -> (&[u8], &[u8]) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
        .unwrap_or(raw.len());
    raw.split_at(end)
}

/// The header lines (with their continuations) whose names are (`keep`) or are not in
/// `names`, then the blank line.
fn header_fields(header: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut take = false;
    for line in header.split_inclusive(|b| *b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line
                .split(|b| *b == b':')
                .next()
                .map(|n| String::from_utf8_lossy(n).trim().to_ascii_uppercase())
                .unwrap_or_default();
            take = names.contains(&name) == keep;
        }
        if take {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn field_names(
    fields: &imap_codec::imap_types::core::Vec1<imap_codec::imap_types::core::AString<'_>>,
) -> Vec<String> {
    fields
        .as_ref()
        .iter()
        .map(|f| String::from_utf8_lossy(f.as_ref()).to_ascii_uppercase())
        .collect()
}

/// The section's name as the answer repeats it (`HEADER.FIELDS (FROM SUBJECT)`, `1.2`).
fn section_name(section: Option<&Section<'_>>) -> String {
    let part = |p: &imap_codec::imap_types::fetch::Part| {
        p.0.as_ref()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(".")
    };
    let prefixed = |p: Option<&imap_codec::imap_types::fetch::Part>, what: String| match p {
        Some(p) => format!("{}.{what}", part(p)),
        None => what,
    };
    match section {
        None => String::new(),
        Some(Section::Part(p)) => part(p),
        Some(Section::Header(p)) => prefixed(p.as_ref(), "HEADER".into()),
        Some(Section::HeaderFields(p, f)) => prefixed(
            p.as_ref(),
            format!("HEADER.FIELDS ({})", field_names(f).join(" ")),
        ),
        Some(Section::HeaderFieldsNot(p, f)) => prefixed(
            p.as_ref(),
            format!("HEADER.FIELDS.NOT ({})", field_names(f).join(" ")),
        ),
        Some(Section::Text(p)) => prefixed(p.as_ref(), "TEXT".into()),
        Some(Section::Mime(p)) => format!("{}.MIME", part(p)),
    }
}

/// The bytes of a body part by its number path (`1`, `2.1`); a single-part message's part 1
/// is its body.
fn part_bytes(raw: &[u8], path: &[u32]) -> Vec<u8> {
    let Some(parsed) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    let mut current = parsed.root_part();
    for n in path {
        match &current.body {
            PartType::Multipart(children) => {
                let Some(child) = usize::try_from(*n)
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|i| children.get(i))
                    .and_then(|id| parsed.part(*id))
                else {
                    return Vec::new();
                };
                current = child;
            }
            _ if *n == 1 => {}
            _ => return Vec::new(),
        }
    }
    let (start, end) = (current.offset_body as usize, current.offset_end as usize);
    raw.get(start..end.min(raw.len()))
        .unwrap_or_default()
        .to_vec()
}

/// The bytes a section names.
fn section_bytes(raw: &[u8], section: Option<&Section<'_>>) -> Vec<u8> {
    let (header, body) = split(raw);
    match section {
        None => raw.to_vec(),
        Some(Section::Header(None)) => header.to_vec(),
        Some(Section::Text(None)) => body.to_vec(),
        Some(Section::HeaderFields(None, f)) => header_fields(header, &field_names(f), true),
        Some(Section::HeaderFieldsNot(None, f)) => header_fields(header, &field_names(f), false),
        Some(Section::Part(p)) => {
            let path: Vec<u32> = p.0.as_ref().iter().map(|n| n.get()).collect();
            part_bytes(raw, &path)
        }
        // Sections of attached messages and part MIME headers: not modelled.
        Some(_) => Vec::new(),
    }
}

/// BODYSTRUCTURE from the rendering (mail-parser); a plain text part when it cannot be
/// parsed.
fn body_structure(raw: &[u8]) -> Vec<u8> {
    fn part(
        parsed: &mail_parser::Message<'_>,
        p: &mail_parser::MessagePart<'_>,
        raw: &[u8],
    ) -> String {
        use mail_parser::MimeHeaders as _;
        let (ctype, subtype) = p
            .content_type()
            .map(|ct| {
                (
                    ct.ctype().to_ascii_uppercase(),
                    ct.subtype().unwrap_or("plain").to_ascii_uppercase(),
                )
            })
            .unwrap_or_else(|| ("TEXT".into(), "PLAIN".into()));
        if let PartType::Multipart(children) = &p.body {
            let inner: String = children
                .iter()
                .filter_map(|id| parsed.part(*id))
                .map(|c| part(parsed, c, raw))
                .collect();
            return format!("({inner} \"{subtype}\")");
        }
        let charset = p
            .content_type()
            .and_then(|ct| ct.attribute("charset"))
            .map(|c| format!("(\"CHARSET\" \"{}\")", c.replace(['"', '\\'], "")))
            .unwrap_or_else(|| "NIL".into());
        let encoding = p
            .content_transfer_encoding()
            .unwrap_or("7bit")
            .to_ascii_uppercase()
            .replace(['"', '\\'], "");
        let body = raw
            .get(p.offset_body as usize..(p.offset_end as usize).min(raw.len()))
            .unwrap_or_default();
        let lines = if ctype == "TEXT" {
            format!(" {}", body.iter().filter(|b| **b == b'\n').count())
        } else {
            String::new()
        };
        format!(
            "(\"{ctype}\" \"{subtype}\" {charset} NIL NIL \"{encoding}\" {}{lines})",
            body.len()
        )
    }
    match MessageParser::default().parse(raw) {
        Some(parsed) => part(&parsed, parsed.root_part(), raw).into_bytes(),
        None => format!("(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" {} 0)", raw.len()).into_bytes(),
    }
}

fn envelope(m: &Message) -> Vec<u8> {
    let mut out = b"(".to_vec();
    let date = mime::rfc5322_date(m.sent.unwrap_or(m.created));
    out.extend(wire::nstring(Some(&date)));
    out.push(b' ');
    out.extend(wire::nstring(Some(&wire::encoded_word(&m.subject))));
    let from: Vec<_> = m.from.iter().cloned().collect();
    let sender: Vec<_> = m.sender.iter().cloned().collect();
    let sender = if sender.is_empty() {
        from.clone()
    } else {
        sender
    };
    let reply_to = if m.reply_to.is_empty() {
        from.clone()
    } else {
        m.reply_to.clone()
    };
    for list in [&from, &sender, &reply_to, &m.to, &m.cc, &m.bcc] {
        out.push(b' ');
        out.extend(wire::address_list(list));
    }
    out.push(b' ');
    out.extend(wire::nstring(m.in_reply_to.as_deref()));
    out.push(b' ');
    out.extend(wire::nstring(Some(&m.internet_message_id)));
    out.push(b')');
    out
}

/// What one FETCH answers for one message.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// `* n FETCH (…)` CRLF.
    pub line: Vec<u8>,
    /// A non-PEEK body item was asked for: the message becomes \Seen.
    pub sets_seen: bool,
}

/// The FETCH answer of message `seq` (sequence number) with `uid`; `flags` as they will be
/// after the fetch.
pub(crate) fn fetch(
    seq: u32,
    uid: u32,
    m: &Message,
    flags: &[&str],
    items: &[MessageDataItemName<'_>],
    with_uid: bool,
) -> Fetched {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut raw: Option<Vec<u8>> = None;
    let mut sets_seen = false;
    let render = |raw: &mut Option<Vec<u8>>| -> Vec<u8> {
        raw.get_or_insert_with(|| mime::render(m)).clone()
    };
    let mut flags_done = false;
    let mut uid_done = false;
    for item in items {
        match item {
            MessageDataItemName::Uid => {
                uid_done = true;
                parts.push(format!("UID {uid}").into_bytes());
            }
            MessageDataItemName::Flags => {
                flags_done = true;
                parts.push(flag_list(flags).into_bytes());
            }
            MessageDataItemName::Rfc822Size => {
                parts.push(format!("RFC822.SIZE {}", render(&mut raw).len()).into_bytes());
            }
            MessageDataItemName::InternalDate => {
                parts
                    .push(format!("INTERNALDATE {}", wire::internal_date(m.received)).into_bytes());
            }
            MessageDataItemName::Envelope => {
                let mut p = b"ENVELOPE ".to_vec();
                p.extend(envelope(m));
                parts.push(p);
            }
            MessageDataItemName::BodyStructure | MessageDataItemName::Body => {
                let name = if matches!(item, MessageDataItemName::Body) {
                    "BODY"
                } else {
                    "BODYSTRUCTURE"
                };
                let mut p = format!("{name} ").into_bytes();
                p.extend(body_structure(&render(&mut raw)));
                parts.push(p);
            }
            MessageDataItemName::BodyExt {
                section,
                partial,
                peek,
            } => {
                if !peek {
                    sets_seen = true;
                }
                let bytes = section_bytes(&render(&mut raw), section.as_ref());
                let (bytes, origin) = match partial {
                    Some((start, len)) => {
                        let start = (*start as usize).min(bytes.len());
                        let end = start.saturating_add(len.get() as usize).min(bytes.len());
                        (bytes[start..end].to_vec(), format!("<{}>", start))
                    }
                    None => (bytes, String::new()),
                };
                let mut p =
                    format!("BODY[{}]{origin} ", section_name(section.as_ref())).into_bytes();
                p.extend(wire::literal(&bytes));
                parts.push(p);
            }
            MessageDataItemName::Rfc822 => {
                sets_seen = true;
                let mut p = b"RFC822 ".to_vec();
                p.extend(wire::literal(&render(&mut raw)));
                parts.push(p);
            }
            MessageDataItemName::Rfc822Header => {
                let mut p = b"RFC822.HEADER ".to_vec();
                p.extend(wire::literal(split(&render(&mut raw)).0));
                parts.push(p);
            }
            MessageDataItemName::Rfc822Text => {
                sets_seen = true;
                let mut p = b"RFC822.TEXT ".to_vec();
                p.extend(wire::literal(split(&render(&mut raw)).1));
                parts.push(p);
            }
            // BINARY (RFC 3516) is not advertised.
            _ => {}
        }
    }
    if with_uid && !uid_done {
        parts.push(format!("UID {uid}").into_bytes());
    }
    if sets_seen && !flags_done && !flags.contains(&"\\Seen") {
        let mut now: Vec<&str> = flags.to_vec();
        now.insert(0, "\\Seen");
        parts.push(flag_list(&now).into_bytes());
    }
    let mut line = format!("* {seq} FETCH (").into_bytes();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        line.extend_from_slice(p);
    }
    line.extend_from_slice(b")\r\n");
    Fetched { line, sets_seen }
}
