//! The tokenizer under the EWS reader: one pass over a UTF-8 document, no copies, no
//! allocation for the common case (a name, a run of text without references).
//!
//! It reads the XML 1.0 an EWS server sends and refuses what could hide a trick: a document
//! type declaration (no entity expansion, ever), an unknown entity, a character reference to a
//! character XML cannot carry, `<` in an attribute value, an end tag that does not close the
//! open element, elements nested too deeply. Comments, processing instructions and the XML
//! declaration are skipped. Namespace prefixes are resolved by the reader above it.
//!
//! quick-xml's general reader did this at about half the speed: per event it validated UTF-8
//! again and resolved namespaces through a generic resolver, and EWS answers are thousands of
//! small elements.

use std::borrow::Cow;

use memchr::{memchr, memchr2, memmem};

use super::super::WireError;

/// A token. Element names and attribute regions borrow from the document.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Token<'a> {
    /// `<name attrs>`: `attrs` is everything between the name and `>`.
    Start {
        name: &'a str,
        attrs: &'a str,
    },
    /// `<name attrs/>`
    Empty {
        name: &'a str,
        attrs: &'a str,
    },
    /// `</name>`
    End {
        name: &'a str,
    },
    /// Character data as written: references not yet resolved, line ends not yet normalized.
    Text(&'a str),
    /// The content of `<![CDATA[...]]>`, literal.
    CData(&'a str),
    Eof,
}

/// A cursor over a document.
#[derive(Debug)]
pub(super) struct Scanner<'a> {
    src: &'a str,
    pos: usize,
}

fn malformed(why: &str) -> WireError {
    WireError::malformed(why.to_owned())
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A byte that ends a name.
fn ends_name(b: u8) -> bool {
    is_space(b) || matches!(b, b'/' | b'>' | b'=')
}

/// A byte XML reserves for markup, never part of a name.
fn bad_in_name(b: u8) -> bool {
    matches!(b, b'<' | b'&' | b'"' | b'\'' | b'!' | b'?' | b';')
}

/// The name starting at `at`: up to white space, `/`, `>` or `=`. It must not be empty, start
/// with a digit, `-`, `.` or `:`, or hold a character XML reserves for markup.
fn name_at(s: &str, at: usize) -> Result<(&str, usize), WireError> {
    let bytes = s.as_bytes();
    let mut end = at;
    while let Some(&b) = bytes.get(end) {
        if ends_name(b) {
            break;
        }
        if bad_in_name(b) {
            return Err(malformed("a malformed name"));
        }
        end += 1;
    }
    match bytes.get(at) {
        Some(b) if end > at && !(b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':')) => {
            Ok((&s[at..end], end))
        }
        _ => Err(malformed("a malformed name")),
    }
}

impl<'a> Scanner<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    /// The next token.
    pub(super) fn next_token(&mut self) -> Result<Token<'a>, WireError> {
        loop {
            let rest = self.rest();
            let bytes = rest.as_bytes();
            let Some(&first) = bytes.first() else {
                return Ok(Token::Eof);
            };
            if first != b'<' {
                let end = memchr(b'<', bytes).unwrap_or(bytes.len());
                self.pos += end;
                return Ok(Token::Text(&rest[..end]));
            }
            match bytes.get(1) {
                Some(b'/') => return self.end_tag(rest),
                Some(b'!') => {
                    if let Some(body) = rest.strip_prefix("<!--") {
                        let end = memmem::find(body.as_bytes(), b"-->")
                            .ok_or_else(|| malformed("a comment that never ends"))?;
                        self.pos += 4 + end + 3;
                    } else if let Some(body) = rest.strip_prefix("<![CDATA[") {
                        let end = memmem::find(body.as_bytes(), b"]]>")
                            .ok_or_else(|| malformed("a CDATA section that never ends"))?;
                        self.pos += 9 + end + 3;
                        return Ok(Token::CData(&body[..end]));
                    } else {
                        return Err(malformed("a document type declaration"));
                    }
                }
                Some(b'?') => {
                    let end = memmem::find(bytes, b"?>")
                        .ok_or_else(|| malformed("a processing instruction that never ends"))?;
                    self.pos += end + 2;
                }
                _ => return self.start_tag(rest),
            }
        }
    }

    fn end_tag(&mut self, rest: &'a str) -> Result<Token<'a>, WireError> {
        let bytes = rest.as_bytes();
        let (name, mut i) = name_at(rest, 2)?;
        while bytes.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        if bytes.get(i) != Some(&b'>') {
            return Err(malformed("a malformed end tag"));
        }
        self.pos += i + 1;
        Ok(Token::End { name })
    }

    fn start_tag(&mut self, rest: &'a str) -> Result<Token<'a>, WireError> {
        let bytes = rest.as_bytes();
        let (name, name_end) = name_at(rest, 1)?;
        // Walk the attributes: a `>` inside a quoted value does not end the tag.
        let mut i = name_end;
        loop {
            while bytes.get(i).copied().is_some_and(is_space) {
                i += 1;
            }
            match bytes.get(i) {
                None => return Err(malformed("a start tag that never ends")),
                Some(b'>') => {
                    self.pos += i + 1;
                    return Ok(Token::Start {
                        name,
                        attrs: &rest[name_end..i],
                    });
                }
                Some(b'/') => {
                    if bytes.get(i + 1) != Some(&b'>') {
                        return Err(malformed("a `/` inside a start tag"));
                    }
                    self.pos += i + 2;
                    return Ok(Token::Empty {
                        name,
                        attrs: &rest[name_end..i],
                    });
                }
                Some(_) => {
                    if i == name_end {
                        return Err(malformed("an attribute not separated from the name"));
                    }
                    let (_, _, next) = attribute(rest, i)?;
                    i = next;
                    // Attributes must be separated by white space.
                    if !bytes
                        .get(i)
                        .copied()
                        .is_some_and(|b| is_space(b) || b == b'>' || b == b'/')
                    {
                        return Err(malformed("attributes not separated by white space"));
                    }
                }
            }
        }
    }
}

/// The attribute starting at `at` in `s`: its name, its raw value, and where it ends.
fn attribute(s: &str, at: usize) -> Result<(&str, &str, usize), WireError> {
    let bytes = s.as_bytes();
    let (name, mut i) = name_at(s, at)?;
    while bytes.get(i).copied().is_some_and(is_space) {
        i += 1;
    }
    if bytes.get(i) != Some(&b'=') {
        return Err(malformed("an attribute without a value"));
    }
    i += 1;
    while bytes.get(i).copied().is_some_and(is_space) {
        i += 1;
    }
    let quote = match bytes.get(i) {
        Some(&q @ (b'"' | b'\'')) => q,
        _ => return Err(malformed("an attribute value without quotes")),
    };
    let value_start = i + 1;
    let tail = bytes.get(value_start..).unwrap_or_default();
    let len = memchr2(quote, b'<', tail)
        .ok_or_else(|| malformed("an attribute value that never ends"))?;
    if tail[len] == b'<' {
        return Err(malformed("a `<` inside an attribute value"));
    }
    let value = &s[value_start..value_start + len];
    Ok((name, value, value_start + len + 1))
}

/// The attributes of a tag's attribute region, in order, values raw.
pub(super) fn attributes(region: &str) -> impl Iterator<Item = Result<(&str, &str), WireError>> {
    let mut i = 0;
    std::iter::from_fn(move || {
        let bytes = region.as_bytes();
        while bytes.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        Some(attribute(region, i).map(|(name, value, next)| {
            i = next;
            (name, value)
        }))
    })
}

/// Whether a character may appear in an XML 1.0 document.
fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Text with references resolved and line ends normalized (XML 1.0 §2.11, §4.6); in an
/// attribute value (`attribute`), white space characters also become spaces (§3.3.3).
pub(super) fn unescape(raw: &str, attribute: bool) -> Result<Cow<'_, str>, WireError> {
    let special = |b: u8| b == b'&' || b == b'\r' || (attribute && (b == b'\n' || b == b'\t'));
    let plain = if attribute {
        !raw.bytes().any(special)
    } else {
        memchr2(b'&', b'\r', raw.as_bytes()).is_none()
    };
    if plain {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.bytes().position(special) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match tail.as_bytes()[0] {
            b'&' => {
                let end = memchr(b';', tail.as_bytes())
                    .ok_or_else(|| malformed("a reference without `;`"))?;
                out.push(reference(&tail[1..end])?);
                rest = &tail[end + 1..];
            }
            b'\r' => {
                out.push(if attribute { ' ' } else { '\n' });
                rest = tail.strip_prefix("\r\n").unwrap_or(&tail[1..]);
            }
            _ => {
                out.push(' ');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The character a reference (between `&` and `;`) stands for.
fn reference(name: &str) -> Result<char, WireError> {
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()
            } else if let Some(dec) = name.strip_prefix('#') {
                dec.parse::<u32>().ok()
            } else {
                return Err(malformed("an unknown entity"));
            };
            // `from_str_radix` takes a sign; a reference does not.
            let digits_only = name.trim_start_matches("#x").trim_start_matches('#');
            code.filter(|_| digits_only.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(char::from_u32)
                .filter(|&c| allowed(c))
                .ok_or_else(|| malformed("a bad character reference"))?
        }
    };
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(xml: &str) -> Result<Vec<Token<'_>>, WireError> {
        let mut s = Scanner::new(xml);
        let mut out = Vec::new();
        loop {
            let t = s.next_token()?;
            if t == Token::Eof {
                return Ok(out);
            }
            out.push(t);
        }
    }

    #[test]
    fn tags_text_and_cdata() {
        let got = tokens(
            "<?xml version=\"1.0\"?><!-- c --><a x=\"1 > 0\" y='2'><b/>t &amp; u<![CDATA[<z>]]></a >",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                Token::Start {
                    name: "a",
                    attrs: " x=\"1 > 0\" y='2'"
                },
                Token::Empty {
                    name: "b",
                    attrs: ""
                },
                Token::Text("t &amp; u"),
                Token::CData("<z>"),
                Token::End { name: "a" },
            ]
        );
        let attrs: Vec<_> = attributes(" x=\"1 > 0\" y = '2' ")
            .map(Result::unwrap)
            .collect();
        assert_eq!(attrs, vec![("x", "1 > 0"), ("y", "2")]);
    }

    #[test]
    fn references_and_line_ends() {
        assert_eq!(
            unescape("a &amp; &#65;&#x42; &lt;c&gt;", false).unwrap(),
            "a & AB <c>"
        );
        assert_eq!(unescape("l1\r\nl2\rl3", false).unwrap(), "l1\nl2\nl3");
        assert_eq!(unescape("a\tb\nc&#10;", true).unwrap(), "a b c\n");
        assert!(matches!(
            unescape("plain", false).unwrap(),
            Cow::Borrowed(_)
        ));
        for bad in [
            "&foo;", "&#0;", "&#xD800;", "&#x-1;", "&#+65;", "&amp", "&#xFFFE;",
        ] {
            assert!(unescape(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn markup_that_could_hide_a_trick_is_refused() {
        for bad in [
            "<!DOCTYPE x [<!ENTITY a \"b\">]><x/>",
            "<a b=\"<\"/>",
            "<a b=c/>",
            "<a b/>",
            "<a b=\"1\"c=\"2\"/>",
            "<a",
            "<a b=\"1",
            "<!-- never",
            "<![CDATA[ never",
            "<1a/>",
            "< a/>",
            "<a/ >",
        ] {
            assert!(tokens(bad).is_err(), "{bad}");
        }
    }
}
