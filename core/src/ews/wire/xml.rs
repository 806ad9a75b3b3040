//! The XML under the wire module: a writer whose element names are fixed strings and whose
//! text and attribute values are always escaped (so no value can change a document's
//! structure), and a pull reader over quick-xml's `NsReader` that tells elements apart by
//! namespace and local name, without building a tree.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::WireError;

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

fn ns_of(r: &ResolveResult<'_>) -> Ns {
    match r {
        ResolveResult::Bound(n) => match n.as_ref() {
            TYPES => Ns::Types,
            MESSAGES => Ns::Messages,
            SOAP => Ns::Soap,
            ERRORS => Ns::Errors,
            _ => Ns::Other,
        },
        ResolveResult::Unbound => Ns::None,
        ResolveResult::Unknown(_) => Ns::Other,
    }
}

/// An element's start as [`Reader::child`] returns it.
#[derive(Debug)]
pub(super) struct Elem<'a> {
    pub(super) ns: Ns,
    start: BytesStart<'a>,
    /// Where the local name starts in the qualified name (after `prefix:`).
    local_start: usize,
}

impl<'a> Elem<'a> {
    fn new(ns: Ns, start: BytesStart<'a>) -> Self {
        let local_start = start.name().0.find(':').map_or(0, |i| i + 1);
        Self {
            ns,
            start,
            local_start,
        }
    }

    pub(super) fn local(&self) -> &str {
        self.start
            .name()
            .0
            .get(self.local_start..)
            .unwrap_or_default()
    }

    /// `t:Name`
    pub(super) fn is_t(&self, name: &str) -> bool {
        self.ns == Ns::Types && self.local() == name
    }

    /// `m:Name`
    pub(super) fn is_m(&self, name: &str) -> bool {
        self.ns == Ns::Messages && self.local() == name
    }

    /// An unprefixed attribute's value, unescaped.
    pub(super) fn attr(&self, key: &str) -> Result<Option<String>, WireError> {
        for a in self.start.attributes() {
            let a = a.map_err(|e| WireError::malformed(format!("bad attribute: {e}")))?;
            if a.key.as_ref() == key {
                let v = a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map_err(|e| WireError::malformed(format!("bad attribute `{key}`: {e}")))?;
                return Ok(Some(v.into_owned()));
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

/// A pull reader. After [`Reader::child`] returns an element, the caller consumes it with
/// exactly one of [`Reader::text`], [`Reader::skip`], or [`Reader::child`] until `None`.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    inner: NsReader<&'a [u8]>,
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
        if self.one.is_none() && self.joined.is_none() {
            self.one = Some(piece);
        } else {
            self.joined().push_str(&piece);
        }
    }

    /// The buffer, once the text has more than one piece.
    fn joined(&mut self) -> &mut String {
        let one = self.one.take();
        self.joined
            .get_or_insert_with(|| one.map(Cow::into_owned).unwrap_or_default())
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

impl<'a> Reader<'a> {
    pub(super) fn new(xml: &'a str) -> Self {
        let xml = xml.strip_prefix('\u{FEFF}').unwrap_or(xml);
        let mut inner = NsReader::from_str(xml);
        let config = inner.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        Self {
            inner,
            pending_empty: false,
        }
    }

    fn depth_check(&self, depth: usize) -> Result<(), WireError> {
        if depth > MAX_DEPTH {
            Err(WireError::malformed("elements nest too deeply"))
        } else {
            Ok(())
        }
    }

    /// The next child element of the current one, or `None` at its end.
    pub(super) fn child(&mut self) -> Result<Option<Elem<'a>>, WireError> {
        if std::mem::take(&mut self.pending_empty) {
            return Ok(None);
        }
        loop {
            let (ns, event) = self.inner.read_resolved_event().map_err(WireError::xml)?;
            match event {
                Event::Start(start) => {
                    return Ok(Some(Elem::new(ns_of(&ns), start)));
                }
                Event::Empty(start) => {
                    self.pending_empty = true;
                    return Ok(Some(Elem::new(ns_of(&ns), start)));
                }
                Event::End(_) => return Ok(None),
                Event::Eof => return Err(WireError::malformed("the document ends early")),
                Event::DocType(_) => {
                    return Err(WireError::malformed("a document type declaration"));
                }
                Event::Text(_)
                | Event::CData(_)
                | Event::GeneralRef(_)
                | Event::Comment(_)
                | Event::Decl(_)
                | Event::PI(_) => {}
            }
        }
    }

    /// The root element.
    pub(super) fn root(&mut self) -> Result<Elem<'a>, WireError> {
        loop {
            let (ns, event) = self.inner.read_resolved_event().map_err(WireError::xml)?;
            match event {
                Event::Start(start) => return Ok(Elem::new(ns_of(&ns), start)),
                Event::Empty(_) | Event::Eof => {
                    return Err(WireError::malformed("the document has no content"));
                }
                Event::DocType(_) => {
                    return Err(WireError::malformed("a document type declaration"));
                }
                Event::Text(t) if !t.trim().is_empty() => {
                    return Err(WireError::malformed("text before the root element"));
                }
                _ => {}
            }
        }
    }

    /// The text content of the element just returned (entities resolved), up to its end.
    /// An element inside it is an error.
    pub(super) fn text(&mut self) -> Result<Cow<'a, str>, WireError> {
        if std::mem::take(&mut self.pending_empty) {
            return Ok(Cow::Borrowed(""));
        }
        // One piece of text (the usual case) is returned as it is; several are joined.
        let mut text = Text::default();
        loop {
            match self.inner.read_event().map_err(WireError::xml)? {
                Event::End(_) => return Ok(text.finish()),
                Event::Text(t) => text.push(t.xml10_content()),
                Event::CData(c) => text.push(c.into_inner()),
                Event::GeneralRef(r) => match r.resolve_char_ref() {
                    Ok(Some(c)) => text.joined().push(c),
                    Ok(None) => text.joined().push_str(
                        quick_xml::escape::resolve_predefined_entity(&r)
                            .ok_or_else(|| WireError::malformed("an unknown entity"))?,
                    ),
                    Err(_) => return Err(WireError::malformed("a bad character reference")),
                },
                Event::Comment(_) | Event::PI(_) => {}
                Event::Start(_) | Event::Empty(_) => {
                    return Err(WireError::malformed("an element where text was expected"));
                }
                Event::Eof => return Err(WireError::malformed("the document ends early")),
                Event::Decl(_) | Event::DocType(_) => {
                    return Err(WireError::malformed("a declaration inside an element"));
                }
            }
        }
    }

    /// Skips the element just returned, whatever it holds.
    pub(super) fn skip(&mut self) -> Result<(), WireError> {
        if std::mem::take(&mut self.pending_empty) {
            return Ok(());
        }
        let mut depth = 0usize;
        loop {
            match self.inner.read_event().map_err(WireError::xml)? {
                Event::Start(_) => {
                    depth += 1;
                    self.depth_check(depth)?;
                }
                Event::End(_) => {
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                Event::Eof => return Err(WireError::malformed("the document ends early")),
                Event::DocType(_) => {
                    return Err(WireError::malformed("a document type declaration"));
                }
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
