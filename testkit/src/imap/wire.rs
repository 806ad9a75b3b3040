//! IMAP's data encodings for the untagged answers the mock writes itself (FETCH, LIST,
//! STATUS, SEARCH): strings as quoted strings or literals, NIL, address lists, dates. Tagged
//! status answers and the greeting go through imap-codec's encoders (see `super::status`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

use crate::mailstore::content::Address;

/// `bytes` as an IMAP string: quoted when it is short printable ASCII, a literal otherwise.
pub(crate) fn string(bytes: &[u8]) -> Vec<u8> {
    let printable = bytes.len() < 1024 && bytes.iter().all(|b| (0x20..0x7f).contains(b));
    if printable {
        let mut out = Vec::with_capacity(bytes.len() + 2);
        out.push(b'"');
        for b in bytes {
            if *b == b'"' || *b == b'\\' {
                out.push(b'\\');
            }
            out.push(*b);
        }
        out.push(b'"');
        out
    } else {
        literal(bytes)
    }
}

/// `bytes` as a synchronizing literal (`{n}` CRLF bytes).
pub(crate) fn literal(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{{{}}}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out
}

/// An nstring: NIL for `None` or an empty value.
pub(crate) fn nstring(value: Option<&str>) -> Vec<u8> {
    match value {
        Some(v) if !v.is_empty() => string(v.as_bytes()),
        _ => b"NIL".to_vec(),
    }
}

/// A header value as an envelope field: non-ASCII text as an RFC 2047 encoded word, as
/// Exchange sends it.
pub(crate) fn encoded_word(text: &str) -> String {
    if text.is_ascii() {
        text.to_string()
    } else {
        format!("=?utf-8?B?{}?=", STANDARD.encode(text.as_bytes()))
    }
}

/// An envelope address list: `((name NIL mailbox host) …)` or NIL.
pub(crate) fn address_list(list: &[Address]) -> Vec<u8> {
    if list.is_empty() {
        return b"NIL".to_vec();
    }
    let mut out = b"(".to_vec();
    for a in list {
        let (local, host) = a.address.split_once('@').unwrap_or((&a.address, ""));
        out.push(b'(');
        out.extend(nstring(Some(&encoded_word(&a.name))));
        out.extend_from_slice(b" NIL ");
        out.extend(nstring(Some(local)));
        out.push(b' ');
        out.extend(nstring(Some(host)));
        out.push(b')');
    }
    out.push(b')');
    out
}

/// `"17-Jul-1996 02:44:25 +0000"` (INTERNALDATE).
pub(crate) fn internal_date(t: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "\"{:02}-{}-{} {:02}:{:02}:{:02} +0000\"",
        t.day(),
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_or_literal() {
        assert_eq!(string(b"INBOX"), b"\"INBOX\"");
        assert_eq!(string(b"a\"b"), b"\"a\\\"b\"");
        assert_eq!(string("Grüße".as_bytes()), "{7}\r\nGrüße".as_bytes());
        assert_eq!(nstring(None), b"NIL");
        assert_eq!(
            internal_date(time::macros::datetime!(2026-11-02 09:05:01 UTC)),
            "\"02-Nov-2026 09:05:01 +0000\""
        );
        assert_eq!(
            String::from_utf8(address_list(&[Address::new("Lee", "lee@x.example")])).unwrap(),
            "((\"Lee\" NIL \"lee\" \"x.example\"))"
        );
    }
}
