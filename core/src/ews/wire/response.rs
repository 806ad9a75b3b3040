//! Reading answers: the envelope (`t:ServerVersionInfo`, a `soap:Fault` with its
//! `e:ResponseCode`, `e:Message` and `t:MessageXml`), each `*ResponseMessage`'s
//! `ResponseClass`, `m:ResponseCode`, `m:MessageText` and `m:MessageXml` (`BackOffMilliseconds`),
//! and the typed values inside (dates, numbers, booleans), strictly: a value that does not
//! parse is an error, never a default.

use std::time::Duration;

use time::OffsetDateTime;

use super::WireError;
use super::errors::{EwsError, ResponseClass, ResponseCode};
use super::xml::{Elem, Ns, Reader};

/// The longest back-off hint kept (a larger one is clamped): one day.
const MAX_BACK_OFF: Duration = Duration::from_secs(24 * 60 * 60);

/// `t:ServerVersionInfo` from the answer's header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerVersionInfo {
    pub major: u16,
    pub minor: u16,
    pub major_build: u16,
    pub minor_build: u16,
    /// The schema level it speaks (`V2018_01_08`, `Exchange2016`), when given.
    pub version: Option<String>,
}

/// One `*ResponseMessage`: how it ended and, unless it failed, what it carried.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseMessage<T> {
    pub class: ResponseClass,
    pub code: ResponseCode,
    pub message_text: Option<String>,
    pub back_off: Option<Duration>,
    /// The payload; `None` when the class is `Error`.
    pub value: Option<T>,
}

impl<T> ResponseMessage<T> {
    /// The error this message carries, if its class is `Error`.
    pub fn error(&self) -> Option<EwsError> {
        (self.class == ResponseClass::Error).then(|| self.to_error())
    }

    fn to_error(&self) -> EwsError {
        EwsError {
            code: self.code.clone(),
            message: self.message_text.clone().unwrap_or_default(),
            back_off: self.back_off,
            http_status: None,
        }
    }

    /// The payload, or the error. A warning with a payload is a success.
    pub fn into_result(self) -> Result<T, EwsError> {
        let error = self.to_error();
        match (self.class, self.value) {
            (ResponseClass::Error, _) | (_, None) => Err(error),
            (_, Some(v)) => Ok(v),
        }
    }
}

/// A decoded answer: the server's version and one message per item or folder asked about.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    pub server_version: Option<ServerVersionInfo>,
    pub messages: Vec<ResponseMessage<T>>,
}

impl<T> Decoded<T> {
    /// The payload of an answer that carries exactly one message.
    pub fn into_single(self) -> Result<T, WireError> {
        let mut messages = self.messages.into_iter();
        match (messages.next(), messages.next()) {
            (Some(m), None) => m.into_result().map_err(WireError::Refused),
            (None, _) => Err(WireError::malformed("the answer holds no response message")),
            (Some(_), Some(_)) => Err(WireError::malformed(
                "the answer holds more response messages than were asked for",
            )),
        }
    }

    /// Each message's payload or error, in request order.
    pub fn into_results(self) -> Vec<Result<T, EwsError>> {
        self.messages
            .into_iter()
            .map(ResponseMessage::into_result)
            .collect()
    }

    /// The first busy error among the messages (`ErrorServerBusy` inside a 200 answer).
    pub fn busy(&self) -> Option<EwsError> {
        self.messages
            .iter()
            .filter_map(ResponseMessage::error)
            .find(EwsError::is_busy)
    }
}

/// Opens an answer: checks the envelope, reads the header, and returns a reader positioned
/// inside `soap:Body` at its one element, which must be `m:<op>Response`. A fault is an error.
pub(super) fn open_body<'a>(
    xml: &'a str,
    op: &'static str,
) -> Result<(Reader<'a>, Option<ServerVersionInfo>), WireError> {
    let mut r = Reader::new(xml);
    let root = r.root()?;
    if !(root.ns == Ns::Soap && root.local() == "Envelope") {
        return Err(WireError::malformed(
            "the answer is not a SOAP 1.1 envelope",
        ));
    }
    let mut server_version = None;
    while let Some(part) = r.child()? {
        match (part.ns, part.local()) {
            (Ns::Soap, "Header") => {
                while let Some(h) = r.child()? {
                    if h.is_t("ServerVersionInfo") {
                        server_version = Some(server_version_info(&h)?);
                    }
                    r.skip()?;
                }
            }
            (Ns::Soap, "Body") => {
                let Some(body) = r.child()? else {
                    return Err(WireError::malformed("soap:Body is empty"));
                };
                if body.ns == Ns::Soap && body.local() == "Fault" {
                    return Err(WireError::Fault(fault(&mut r)?));
                }
                let expected = op.len() + "Response".len();
                if !(body.ns == Ns::Messages
                    && body.local().len() == expected
                    && body.local().starts_with(op)
                    && body.local().ends_with("Response"))
                {
                    return Err(WireError::malformed(format!(
                        "expected m:{op}Response, found `{}`",
                        body.local()
                    )));
                }
                return Ok((r, server_version));
            }
            _ => {
                return Err(WireError::malformed(
                    "soap:Envelope holds an unknown element",
                ));
            }
        }
    }
    Err(WireError::malformed("the envelope has no soap:Body"))
}

fn server_version_info(e: &Elem<'_>) -> Result<ServerVersionInfo, WireError> {
    let num = |key: &str| -> Result<u16, WireError> {
        e.attr(key)?
            .map(|v| parse_num::<u16>(&v, key))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    Ok(ServerVersionInfo {
        major: num("MajorVersion")?,
        minor: num("MinorVersion")?,
        major_build: num("MajorBuildNumber")?,
        minor_build: num("MinorBuildNumber")?,
        version: e.attr("Version")?,
    })
}

/// Reads a `soap:Fault` (the reader is inside it).
fn fault(r: &mut Reader<'_>) -> Result<EwsError, WireError> {
    let mut code = None;
    let mut fault_code = None;
    let mut message = None;
    let mut fault_string = String::new();
    let mut back_off = None;
    while let Some(e) = r.child()? {
        match (e.ns, e.local()) {
            (Ns::None, "faultcode") => fault_code = Some(r.text()?.into_owned()),
            (Ns::None, "faultstring") => fault_string = r.text()?.into_owned(),
            (Ns::None, "detail") => {
                while let Some(d) = r.child()? {
                    match (d.ns, d.local()) {
                        (Ns::Errors, "ResponseCode") => {
                            code = Some(ResponseCode::parse(&r.text()?))
                        }
                        (Ns::Errors, "Message") => message = Some(r.text()?.into_owned()),
                        (Ns::Types, "MessageXml") => back_off = message_xml(r)?.or(back_off),
                        _ => r.skip()?,
                    }
                }
            }
            _ => r.skip()?,
        }
    }
    let Some(fault_code) = fault_code else {
        return Err(WireError::malformed("a soap:Fault without faultcode"));
    };
    Ok(EwsError {
        code: code.unwrap_or_else(|| ResponseCode::parse(&fault_code)),
        message: message.unwrap_or(fault_string),
        back_off,
        http_status: None,
    })
}

/// Reads `MessageXml` (the reader is inside it): the `BackOffMilliseconds` value, if any.
fn message_xml(r: &mut Reader<'_>) -> Result<Option<Duration>, WireError> {
    let mut found = None;
    while let Some(v) = r.child()? {
        if v.is_t("Value") && v.attr("Name")?.as_deref() == Some("BackOffMilliseconds") {
            let ms: u64 = parse_num(&r.text()?, "BackOffMilliseconds")?;
            found = Some(Duration::from_millis(ms).min(MAX_BACK_OFF));
        } else {
            r.skip()?;
        }
    }
    Ok(found)
}

/// Reads `m:ResponseMessages` of an `m:<op>Response` (the reader is inside the response):
/// each message's common parts, and the rest through `item`, which gets each other child
/// and the message's payload (created with `Default`) to fill. `item` returns `false` for a
/// child it does not read; that child is skipped.
pub(super) fn messages<'a, T: Default>(
    r: &mut Reader<'a>,
    mut item: impl FnMut(&mut Reader<'a>, &Elem<'a>, &mut T) -> Result<bool, WireError>,
) -> Result<Vec<ResponseMessage<T>>, WireError> {
    let mut out = Vec::new();
    let mut seen = false;
    while let Some(e) = r.child()? {
        if !e.is_m("ResponseMessages") {
            r.skip()?;
            continue;
        }
        seen = true;
        while let Some(m) = r.child()? {
            if m.ns != Ns::Messages || !m.local().ends_with("ResponseMessage") {
                r.skip()?;
                continue;
            }
            out.push(message(r, &m, &mut item)?);
        }
    }
    if !seen {
        return Err(WireError::malformed(
            "the response has no m:ResponseMessages",
        ));
    }
    Ok(out)
}

/// One `*ResponseMessage` (the reader is inside it).
pub(super) fn message<'a, T: Default>(
    r: &mut Reader<'a>,
    m: &Elem<'a>,
    item: &mut impl FnMut(&mut Reader<'a>, &Elem<'a>, &mut T) -> Result<bool, WireError>,
) -> Result<ResponseMessage<T>, WireError> {
    let class = match m.attr("ResponseClass")?.as_deref() {
        Some("Success") => ResponseClass::Success,
        Some("Warning") => ResponseClass::Warning,
        Some("Error") => ResponseClass::Error,
        Some(other) => {
            return Err(WireError::malformed(format!(
                "unknown ResponseClass `{other}`"
            )));
        }
        None => {
            return Err(WireError::malformed(
                "a response message without ResponseClass",
            ));
        }
    };
    let mut code = None;
    let mut message_text = None;
    let mut back_off = None;
    let mut value = T::default();
    while let Some(e) = r.child()? {
        if e.ns == Ns::Messages {
            match e.local() {
                "ResponseCode" => {
                    code = Some(ResponseCode::parse(&r.text()?));
                    continue;
                }
                "MessageText" => {
                    message_text = Some(r.text()?.into_owned());
                    continue;
                }
                "MessageXml" => {
                    back_off = message_xml(r)?;
                    continue;
                }
                "DescriptiveLinkKey" => {
                    r.skip()?;
                    continue;
                }
                _ => {}
            }
        }
        if !item(r, &e, &mut value)? {
            r.skip()?;
        }
    }
    let code = match (code, class) {
        (Some(c), _) => c,
        (None, ResponseClass::Success) => ResponseCode::NoError,
        (None, _) => {
            return Err(WireError::malformed(
                "a failed response message without ResponseCode",
            ));
        }
    };
    Ok(ResponseMessage {
        class,
        code,
        message_text,
        back_off,
        value: (class != ResponseClass::Error).then_some(value),
    })
}

/// Decodes a whole `m:<op>Response` with [`messages`].
pub(super) fn decode<'a, T: Default>(
    xml: &'a [u8],
    op: &'static str,
    item: impl FnMut(&mut Reader<'a>, &Elem<'a>, &mut T) -> Result<bool, WireError>,
) -> Result<Decoded<T>, WireError> {
    let xml =
        std::str::from_utf8(xml).map_err(|_| WireError::malformed("the answer is not UTF-8"))?;
    let (mut r, server_version) = open_body(xml, op)?;
    let messages = messages(&mut r, item)?;
    Ok(Decoded {
        server_version,
        messages,
    })
}

/// Reads a SOAP fault from an answer, if it is one (an HTTP 500 usually is).
pub fn decode_fault(xml: &[u8]) -> Option<EwsError> {
    let xml = std::str::from_utf8(xml).ok()?;
    match open_body(xml, "") {
        Err(WireError::Fault(e)) => Some(e),
        _ => None,
    }
}

/// Finds the first busy refusal in any answer: a fault, or a response message of class
/// `Error` with a busy code, with its back-off hint. Reads no further than it must.
pub fn find_busy(xml: &[u8]) -> Option<EwsError> {
    let text = std::str::from_utf8(xml).ok()?;
    if let Some(fault) = decode_fault(xml) {
        return fault.is_busy().then_some(fault);
    }
    // Cheap test first: a busy code must appear literally.
    if !(text.contains("ErrorServerBusy")
        || text.contains("ErrorExceededConnectionCount")
        || text.contains("ErrorTooManyObjectsOpened"))
    {
        return None;
    }
    let mut r = Reader::new(text);
    let root = r.root().ok()?;
    (root.ns == Ns::Soap && root.local() == "Envelope").then_some(())?;
    busy_in(&mut r, 0).ok().flatten()
}

/// Walks the document for a response message whose class is `Error` and code busy; response
/// messages sit a few levels down, so deeper elements are skipped unread.
fn busy_in(r: &mut Reader<'_>, depth: usize) -> Result<Option<EwsError>, WireError> {
    let mut ignore = |_: &mut Reader<'_>, _: &Elem<'_>, _: &mut ()| Ok(false);
    while let Some(e) = r.child()? {
        if e.ns == Ns::Messages && e.local().ends_with("ResponseMessage") {
            let m = message(r, &e, &mut ignore)?;
            if let Some(err) = m.error().filter(EwsError::is_busy) {
                return Ok(Some(err));
            }
        } else if depth >= 6 {
            r.skip()?;
        } else if let Some(found) = busy_in(r, depth + 1)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// A number, strictly.
pub(super) fn parse_num<N: std::str::FromStr>(s: &str, what: &str) -> Result<N, WireError> {
    s.trim()
        .parse()
        .map_err(|_| WireError::malformed(format!("`{what}` is not a number")))
}

/// `true`/`false`/`1`/`0`.
pub(super) fn parse_bool(s: &str, what: &str) -> Result<bool, WireError> {
    match s.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(WireError::malformed(format!("`{what}` is not a boolean"))),
    }
}

/// An `xs:dateTime` (`YYYY-MM-DDTHH:MM:SS[.fraction]` and `Z`, an offset `+01:00`, or none,
/// which EWS means as UTC), parsed by hand: strict and fast.
pub(super) fn parse_date_time(s: &str, what: &str) -> Result<OffsetDateTime, WireError> {
    date_time(s.trim().as_bytes())
        .ok_or_else(|| WireError::malformed(format!("`{what}` is not a date-time")))
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
}

fn date_time(b: &[u8]) -> Option<OffsetDateTime> {
    let year = digits(b.get(0..4)?)?;
    let month = digits(b.get(5..7)?)?;
    let day = digits(b.get(8..10)?)?;
    let hour = digits(b.get(11..13)?)?;
    let minute = digits(b.get(14..16)?)?;
    let second = digits(b.get(17..19)?)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let mut rest = b.get(19..)?;
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let kept = fraction.get(..n.min(9))?;
        nanos = digits(kept)? * 10u32.pow(9 - u32::try_from(kept.len()).ok()?);
        rest = fraction.get(n..)?;
    }
    let offset = match rest {
        b"" | b"Z" => time::UtcOffset::UTC,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = i8::try_from(digits(&[*h1, *h2])?).ok()?;
            let m = i8::try_from(digits(&[*m1, *m2])?).ok()?;
            let sign = if *sign == b'-' { -1 } else { 1 };
            time::UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
        _ => return None,
    };
    let date = time::Date::from_calendar_date(
        i32::try_from(year).ok()?,
        time::Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let time = time::Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, time).assume_offset(offset))
}

/// An `xs:date`, with or without a zone suffix (`2026-11-02`, `2026-11-02Z`,
/// `2026-11-02-08:00`): the calendar date.
pub(super) fn parse_date(s: &str, what: &str) -> Result<time::Date, WireError> {
    let s = s.trim();
    let day = s
        .get(..10)
        .ok_or_else(|| WireError::malformed(format!("`{what}` is not a date")))?;
    let rest = s.get(10..).unwrap_or_default();
    if !(rest.is_empty() || rest == "Z" || rest.len() == 6 && rest.starts_with(['+', '-'])) {
        return Err(WireError::malformed(format!("`{what}` is not a date")));
    }
    time::Date::parse(
        day,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| WireError::malformed(format!("`{what}` is not a date")))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn dates_are_read_in_every_form_ews_sends() {
        for (s, t) in [
            ("2026-11-23T09:00:00Z", datetime!(2026-11-23 09:00 UTC)),
            (
                "2026-11-23T09:00:00.123Z",
                datetime!(2026-11-23 09:00:00.123 UTC),
            ),
            ("2026-11-23T10:00:00+01:00", datetime!(2026-11-23 09:00 UTC)),
            ("2026-11-23T01:00:00-08:00", datetime!(2026-11-23 09:00 UTC)),
            ("2026-11-23T09:00:00", datetime!(2026-11-23 09:00 UTC)),
        ] {
            assert_eq!(parse_date_time(s, "t").unwrap(), t, "{s}");
        }
        assert_eq!(
            parse_date_time("2026-11-23T09:00:00.1234567Z", "t").unwrap(),
            datetime!(2026-11-23 09:00:00.1234567 UTC)
        );
        for s in [
            "2026-11-23T09:00:00.Z",
            "2026-11-23T09:00:00+01",
            "2026-13-23T09:00:00Z",
            "2026-02-30T09:00:00Z",
            "",
            "2026-11-23",
            "yesterday",
            "2026-11-23T25:00:00Z",
            "2026-11-23T09:00:00+xx:00",
        ] {
            assert!(parse_date_time(s, "t").is_err(), "{s}");
        }
        assert_eq!(
            parse_date("2026-11-02-08:00", "d").unwrap(),
            time::macros::date!(2026 - 11 - 02)
        );
        assert!(parse_date("2026-11-02T", "d").is_err());
        assert!(parse_date("2026-1", "d").is_err());
    }
}
