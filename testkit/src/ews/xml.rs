//! A small element tree read with quick-xml (namespaces resolved), and an XML writer that
//! escapes every text and attribute value it is given.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// Requests nested deeper than this are refused (no EWS request comes close).
const MAX_DEPTH: usize = 64;
/// Requests with more elements than this are refused.
const MAX_ELEMENTS: usize = 200_000;

/// One element: its namespace, local name, attributes (by local name), children and text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// The first child with this local name.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child with this local name.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The child at the end of a path of local names.
    pub(crate) fn path(&self, names: &[&str]) -> Option<&Element> {
        let mut at = self;
        for name in names {
            at = at.child(name)?;
        }
        Some(at)
    }

    /// The text of the child at the end of a path, trimmed.
    pub(crate) fn text_at(&self, names: &[&str]) -> Option<&str> {
        self.path(names).map(|e| e.text.trim())
    }

    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Descendants (depth first) with this local name.
    pub(crate) fn descendants<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.descendants(name, out);
        }
    }
}

/// Parses a document into its root element. `Err` says why it is not well-formed.
pub(crate) fn parse(text: &str) -> Result<Element, String> {
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut count = 0usize;
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("the request is not well-formed XML: {e}"))?;
        let ns = match ns {
            ResolveResult::Bound(ns) => ns.as_ref().to_string(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(prefix) => {
                return Err(format!("the namespace prefix `{prefix}` is not declared"));
            }
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                count += 1;
                if count > MAX_ELEMENTS || stack.len() >= MAX_DEPTH {
                    return Err("the request is too large or too deeply nested".into());
                }
                let mut element = Element {
                    ns,
                    name: start.local_name().as_ref().to_string(),
                    ..Element::default()
                };
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| format!("a malformed attribute: {e}"))?;
                    if attr.key.as_ref().starts_with("xmlns") {
                        continue;
                    }
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| format!("a malformed attribute value: {e}"))?;
                    element.attrs.push((
                        attr.key.local_name().as_ref().to_string(),
                        value.into_owned(),
                    ));
                }
                if matches!(event, Event::Empty(_)) {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => return Ok(element),
                    }
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err("an end tag without a start tag".into());
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(ch)) => ch,
                    Ok(None) => match r.xml10_content().as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("the entity `&{other};` is not defined")),
                    },
                    Err(e) => return Err(format!("a malformed character reference: {e}")),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push(ch);
                }
            }
            Event::DocType(_) => return Err("a DTD is not allowed in a request".into()),
            Event::Eof => return Err("the document ends before its root element does".into()),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
}

/// Escapes text for an element or an attribute value; characters XML 1.0 cannot carry are
/// dropped.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// An XML writer: elements opened and closed in order, every value escaped.
#[derive(Debug, Default)]
pub(crate) struct Xml {
    out: String,
}

impl Xml {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn start(&mut self, tag: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(tag);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&escape(v));
            self.out.push('"');
        }
    }

    /// `<tag a="v">`
    pub(crate) fn open(&mut self, tag: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.start(tag, attrs);
        self.out.push('>');
        self
    }

    /// `</tag>`
    pub(crate) fn close(&mut self, tag: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// `<tag a="v"/>`
    pub(crate) fn empty(&mut self, tag: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.start(tag, attrs);
        self.out.push_str("/>");
        self
    }

    /// `<tag>text</tag>`
    pub(crate) fn leaf(&mut self, tag: &str, text: &str) -> &mut Self {
        self.leaf_with(tag, &[], text)
    }

    /// `<tag a="v">text</tag>`
    pub(crate) fn leaf_with(&mut self, tag: &str, attrs: &[(&str, &str)], text: &str) -> &mut Self {
        self.start(tag, attrs);
        self.out.push('>');
        self.out.push_str(&escape(text));
        self.close(tag)
    }

    /// Appends XML written elsewhere (already escaped).
    pub(crate) fn raw(&mut self, xml: &str) -> &mut Self {
        self.out.push_str(xml);
        self
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaces_entities_and_refuses_garbage() {
        let doc = parse(
            r#"<?xml version="1.0"?><s:Envelope xmlns:s="urn:s" xmlns:t="urn:t"><s:Body><t:A Id="a&amp;b">x &lt; y&#65;<t:B/></t:A></s:Body></s:Envelope>"#,
        )
        .unwrap();
        assert_eq!(doc.name, "Envelope");
        assert_eq!(doc.ns, "urn:s");
        let a = doc.path(&["Body", "A"]).unwrap();
        assert_eq!(a.ns, "urn:t");
        assert_eq!(a.attr("Id"), Some("a&b"));
        assert_eq!(a.text, "x < yA");
        assert!(a.child("B").is_some());
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<x:a/>",
            "<a>&bogus;</a>",
            "<!DOCTYPE a><a/>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_escaped_values() {
        let mut x = Xml::new();
        x.open("t:A", &[("Id", "\"<&>'")])
            .leaf("t:B", "a<b & c\u{1}")
            .close("t:A");
        assert_eq!(
            x.finish(),
            "<t:A Id=\"&quot;&lt;&amp;&gt;&apos;\"><t:B>a&lt;b &amp; c</t:B></t:A>"
        );
    }
}
