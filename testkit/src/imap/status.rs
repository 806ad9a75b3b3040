//! Tagged status answers and the greeting, encoded by imap-codec's encoders (Exchange's exact
//! wording; the text must be valid IMAP `text`, which every constant here is).

use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Code, Greeting, Response, Status};
use imap_codec::{GreetingCodec, ResponseCodec, encode::Encoder as _};

fn encode(status: Result<Status<'_>, impl std::fmt::Debug>) -> Vec<u8> {
    match status {
        Ok(status) => ResponseCodec::default()
            .encode(&Response::Status(status))
            .dump(),
        // Not reachable with the texts used here; a plain BAD keeps the session going.
        Err(_) => b"* BAD Internal error.\r\n".to_vec(),
    }
}

pub(crate) fn greeting(text: &str) -> Vec<u8> {
    match Greeting::ok(None, text) {
        Ok(g) => GreetingCodec::default().encode(&g).dump(),
        Err(_) => b"* OK The Microsoft Exchange IMAP4 service is ready.\r\n".to_vec(),
    }
}

pub(crate) fn ok(tag: Option<&Tag<'static>>, code: Option<Code<'static>>, text: &str) -> Vec<u8> {
    encode(Status::ok(tag.cloned(), code, text))
}

pub(crate) fn no(tag: Option<&Tag<'static>>, code: Option<Code<'static>>, text: &str) -> Vec<u8> {
    encode(Status::no(tag.cloned(), code, text))
}

pub(crate) fn bad(tag: Option<&Tag<'static>>, text: &str) -> Vec<u8> {
    encode(Status::bad(tag.cloned(), None, text))
}

/// `tag OK [CODE …] text` with a code imap-types has no constructor for here (APPENDUID,
/// COPYUID, READ-WRITE): written directly, in the same form.
pub(crate) fn ok_code(tag: &Tag<'static>, code: &str, text: &str) -> Vec<u8> {
    format!("{} OK [{code}] {text}\r\n", tag.as_ref()).into_bytes()
}

pub(crate) fn no_code(tag: &Tag<'static>, code: &str, text: &str) -> Vec<u8> {
    format!("{} NO [{code}] {text}\r\n", tag.as_ref()).into_bytes()
}
