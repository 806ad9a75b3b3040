//! The XML under the wire module: a writer whose element names are fixed strings and whose
//! text and attribute values are always escaped (so no value can change a document's
//! structure), and a pull reader over a strict tokenizer (`scan`) that tells elements apart by
//! namespace and local name, without building a tree.

use std::borrow::Cow;

use super::WireError;

mod scan;

/// SOAP 1.1's envelope namespace.
pub const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// EWS types (`t:`).
pub const TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// EWS messages (`m:`).
pub const MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
/// EWS fault details (`e:`).
pub const ERRORS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";

/// Appends `s` escaped for text or a quoted attribute value. Characters XML 1.0 cannot carry
/// at all (most C0 controls, unpaired surrogates cannot occur in `str`, U+FFFE/U+FFFF) become
/// U+FFFD, so every input gives a well-formed document.
pub(super) fn push_escaped(out: &mut String, s: &str) {
    let clean: Cow<'_, str> = if s.chars().all(allowed) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(
            s.chars()
                .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    };
    // `\r` would be read back as `\n` (end-of-line handling); keep it as a character reference.
    let escaped = quick_xml::escape::escape(clean.as_ref());
    if escaped.contains('\r') {
        out.push_str(&escaped.replace('\r', "&#13;"));
    } else {
        out.push_str(&escaped);
    }
}

fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Builds a document. Element and attribute names are `'static` strings written by this
/// module; only values come from callers, and they are escaped.
#[derive(Debug, Default)]
pub(super) struct Writer {
    out: String,
}

impl Writer {
    pub(super) fn with_capacity(n: usize) -> Self {
        Self {
            out: String::with_capacity(n),
        }
    }

    pub(super) fn raw(&mut self, fixed: &'static str) {
        self.out.push_str(fixed);
    }

    fn start_tag(&mut self, name: &'static str, attrs: &[(&'static str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            push_escaped(&mut self.out, value);
            self.out.push('"');
        }
    }

    /// `<name a="v">`
    pub(super) fn open(&mut self, name: &'static str, attrs: &[(&'static str, &str)]) {
        self.start_tag(name, attrs);
        self.out.push('>');
    }

    /// `</name>`
    pub(super) fn close(&mut self, name: &'static str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// `<name a="v"/>`
    pub(super) fn empty(&mut self, name: &'static str, attrs: &[(&'static str, &str)]) {
        self.start_tag(name, attrs);
        self.out.push_str("/>");
    }

    /// `<name>text</name>`
    pub(super) fn leaf(&mut self, name: &'static str, text: &str) {
        self.open(name, &[]);
        push_escaped(&mut self.out, text);
        self.close(name);
    }

    /// `<name>text</name>`, with attributes.
    pub(super) fn leaf_with(
        &mut self,
        name: &'static str,
        attrs: &[(&'static str, &str)],
        text: &str,
    ) {
        self.open(name, attrs);
        push_escaped(&mut self.out, text);
        self.close(name);
    }

    pub(super) fn finish(self) -> String {
        self.out
    }
}

/// Which namespace an element is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ns {
    Soap,
    Types,
    Messages,
    Errors,
    /// Unbound (SOAP fault children such as `faultcode` are unqualified).
    None,
    Other,
}

fn ns_named(uri: &str) -> Ns {
    match uri {
        TYPES => Ns::Types,
        MESSAGES => Ns::Messages,
        SOAP => Ns::Soap,
        ERRORS => Ns::Errors,
        "" => Ns::None,
        _ => Ns::Other,
    }
}

/// An element's start as [`Reader::child`] returns it.
#[derive(Debug)]
pub(super) struct Elem<'a> {
    pub(super) ns: Ns,
    /// The qualified name, `prefix:local`.
    name: &'a str,
    /// Where the local name starts in the qualified name (after `prefix:`).
    local_start: usize,
    /// The start tag's attributes, raw.
    attrs: &'a str,
}

impl<'a> Elem<'a> {
    pub(super) fn local(&self) -> &'a str {
        self.name.get(self.local_start..).unwrap_or_default()
    }

    /// `t:Name`
    pub(super) fn is_t(&self, name: &str) -> bool {
        self.ns == Ns::Types && self.local() == name
    }

    /// `m:Name`
    pub(super) fn is_m(&self, name: &str) -> bool {
        self.ns == Ns::Messages && self.local() == name
    }

    /// An unprefixed attribute's value, unescaped and normalized.
    pub(super) fn attr(&self, key: &str) -> Result<Option<String>, WireError> {
        for a in scan::attributes(self.attrs) {
            let (name, raw) = a?;
            if name == key {
                return Ok(Some(scan::unescape(raw, true)?.into_owned()));
            }
        }
        Ok(None)
    }

    /// A required attribute.
    pub(super) fn need_attr(&self, key: &str) -> Result<String, WireError> {
        self.attr(key)?.ok_or_else(|| {
            WireError::malformed(format!("`{}` has no `{key}` attribute", self.local()))
        })
    }
}

/// A namespace prefix bound by an `xmlns` attribute, in scope below the element that declared
/// it.
#[derive(Debug)]
struct Binding<'a> {
    /// `""` for the default namespace.
    prefix: &'a str,
    ns: Ns,
    /// How many elements were open, the declaring one included.
    depth: usize,
}

/// A pull reader. After [`Reader::child`] returns an element, the caller consumes it with
/// exactly one of [`Reader::text`], [`Reader::skip`], or [`Reader::child`] until `None`.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    scan: scan::Scanner<'a>,
    /// The qualified names of the open elements, innermost last: each end tag must match.
    open: Vec<&'a str>,
    bindings: Vec<Binding<'a>>,
    /// The element last returned was empty (`<x/>`): it has no children and no text.
    pending_empty: bool,
}

/// Text being read: one borrowed piece, or several joined in one buffer.
#[derive(Default)]
struct Text<'a> {
    one: Option<Cow<'a, str>>,
    joined: Option<String>,
}

impl<'a> Text<'a> {
    fn push(&mut self, piece: Cow<'a, str>) {
        match (&mut self.joined, &mut self.one) {
            (Some(joined), _) => joined.push_str(&piece),
            (None, None) => self.one = Some(piece),
            (None, Some(one)) => {
                let mut joined = std::mem::take(one).into_owned();
                joined.push_str(&piece);
                self.one = None;
                self.joined = Some(joined);
            }
        }
    }

    fn finish(self) -> Cow<'a, str> {
        match (self.joined, self.one) {
            (Some(s), _) => Cow::Owned(s),
            (None, Some(piece)) => piece,
            (None, None) => Cow::Borrowed(""),
        }
    }
}

/// How deep elements may nest before a document is refused.
const MAX_DEPTH: usize = 64;

/// What the scanner found, with namespaces resolved.
enum Step<'a> {
    Start(Elem<'a>),
    Empty(Elem<'a>),
    End,
    Text(&'a str),
    CData(&'a str),
    Eof,
}

impl<'a> Reader<'a> {
    pub(super) fn new(xml: &'a str) -> Self {
        let xml = xml.strip_prefix('\u{FEFF}').unwrap_or(xml);
        Self {
            scan: scan::Scanner::new(xml),
            open: Vec::with_capacity(16),
            bindings: Vec::with_capacity(8),
            pending_empty: false,
        }
    }

    /// The next token, with an element's namespace resolved and end tags checked.
    fn step(&mut self) -> Result<Step<'a>, WireError> {
        Ok(match self.scan.next_token()? {
            scan::Token::Start { name, attrs } => {
                if self.open.len() >= MAX_DEPTH {
                    return Err(WireError::malformed("elements nest too deeply"));
                }
                self.open.push(name);
                Step::Start(self.element(name, attrs)?)
            }
            scan::Token::Empty { name, attrs } => {
                self.open.push(name);
                let elem = self.element(name, attrs);
                self.close();
                Step::Empty(elem?)
            }
            scan::Token::End { name } => {
                if self.open.last() != Some(&name) {
                    return Err(WireError::malformed(
                        "an end tag that does not close the open element",
                    ));
                }
                self.close();
                Step::End
            }
            scan::Token::Text(t) => Step::Text(t),
            scan::Token::CData(c) => Step::CData(c),
            scan::Token::Eof => Step::Eof,
        })
    }

    /// Closes the innermost element: its namespace declarations go out of scope.
    fn close(&mut self) {
        let depth = self.open.len();
        while self.bindings.last().is_some_and(|b| b.depth >= depth) {
            self.bindings.pop();
        }
        self.open.pop();
    }

    /// The element just opened (already on `open`): its `xmlns` declarations, then its name
    /// resolved against them.
    fn element(&mut self, name: &'a str, attrs: &'a str) -> Result<Elem<'a>, WireError> {
        // Most tags declare nothing; only look at the attributes when one might.
        if attrs.contains("xmlns") {
            for a in scan::attributes(attrs) {
                let (key, raw) = a?;
                let prefix = match key.strip_prefix("xmlns") {
                    Some("") => "",
                    Some(p) => match p.strip_prefix(':') {
                        Some(p) => p,
                        None => continue,
                    },
                    None => continue,
                };
                let ns = ns_named(&scan::unescape(raw, true)?);
                if !prefix.is_empty() && ns == Ns::None {
                    return Err(WireError::malformed("a prefix bound to no namespace"));
                }
                self.bindings.push(Binding {
                    prefix,
                    ns,
                    depth: self.open.len(),
                });
            }
        }
        let (prefix, local_start) = match name.find(':') {
            Some(i) => (&name[..i], i + 1),
            None => ("", 0),
        };
        let ns = match self.bindings.iter().rev().find(|b| b.prefix == prefix) {
            Some(b) => b.ns,
            None if prefix.is_empty() => Ns::None,
            None => Ns::Other,
        };
        Ok(Elem {
            ns,
            name,
            local_start,
            attrs,
        })
    }

    /// The next child element of the current one, or `None` at its end.
    pub(super) fn child(&mut self) -> Result<Option<Elem<'a>>, WireError> {
        if std::mem::take(&mut self.pending_empty) {
            return Ok(None);
        }
        loop {
            match self.step()? {
                Step::Start(elem) => return Ok(Some(elem)),
                Step::Empty(elem) => {
                    self.pending_empty = true;
                    return Ok(Some(elem));
                }
                Step::End => return Ok(None),
                Step::Eof => return Err(WireError::malformed("the document ends early")),
                Step::Text(_) | Step::CData(_) => {}
            }
        }
    }

    /// The root element.
    pub(super) fn root(&mut self) -> Result<Elem<'a>, WireError> {
        loop {
            match self.step()? {
                Step::Start(elem) => return Ok(elem),
                Step::Empty(_) | Step::Eof => {
                    return Err(WireError::malformed("the document has no content"));
                }
                Step::End => return Err(WireError::malformed("an end tag before the root")),
                Step::Text(t) if !t.trim().is_empty() => {
                    return Err(WireError::malformed("text before the root element"));
                }
                Step::Text(_) => {}
                Step::CData(_) => {
                    return Err(WireError::malformed("text before the root element"));
                }
            }
        }
    }

    /// The text content of the element just returned (references resolved), up to its end.
    /// An element inside it is an error.
    pub(super) fn text(&mut self) -> Result<Cow<'a, str>, WireError> {
        if std::mem::take(&mut self.pending_empty) {
            return Ok(Cow::Borrowed(""));
        }
        // One piece of text (the usual case) is returned as it is; several are joined.
        let mut text = Text::default();
        loop {
            match self.step()? {
                Step::End => return Ok(text.finish()),
                Step::Text(t) => text.push(scan::unescape(t, false)?),
                Step::CData(c) => text.push(Cow::Borrowed(c)),
                Step::Start(_) | Step::Empty(_) => {
                    return Err(WireError::malformed("an element where text was expected"));
                }
                Step::Eof => return Err(WireError::malformed("the document ends early")),
            }
        }
    }

    /// Skips the element just returned, whatever it holds.
    pub(super) fn skip(&mut self) -> Result<(), WireError> {
        if std::mem::take(&mut self.pending_empty) {
            return Ok(());
        }
        let depth = self.open.len();
        loop {
            match self.step()? {
                Step::End if self.open.len() < depth => return Ok(()),
                Step::Eof => return Err(WireError::malformed("the document ends early")),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_never_change_the_structure() {
        let mut w = Writer::default();
        w.leaf_with("t:X", &[("Id", "a\"/><evil x=\"")], "</t:X><t:Y>&\u{1}\r");
        let s = w.finish();
        assert_eq!(
            s,
            "<t:X Id=\"a&quot;/&gt;&lt;evil x=&quot;\">&lt;/t:X&gt;&lt;t:Y&gt;&amp;\u{FFFD}&#13;</t:X>"
        );
    }

    #[test]
    fn text_is_read_with_entities_and_cdata() {
        let xml =
            format!("<a xmlns:t=\"{TYPES}\"><t:b>x &amp; y &#65;<![CDATA[<z>]]></t:b><t:c/></a>");
        let mut r = Reader::new(&xml);
        r.root().unwrap();
        let b = r.child().unwrap().unwrap();
        assert!(b.is_t("b"));
        assert_eq!(r.text().unwrap(), "x & y A<z>");
        let c = r.child().unwrap().unwrap();
        assert!(c.is_t("c"));
        assert!(r.child().unwrap().is_none());
        assert!(r.child().unwrap().is_none());
    }
}
