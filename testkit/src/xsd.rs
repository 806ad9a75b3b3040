//! Checks EWS SOAP documents against Microsoft's EWS schema with a real XSD validator.
//!
//! The schema ([`schema_dir`], Exchange 2016 level; see its README) is the one Microsoft
//! publishes. A SOAP envelope is not itself in that schema, so [`validate_soap`] checks the
//! envelope's shape and then validates each child of `soap:Header` and the one child of
//! `soap:Body` as documents of their own, carrying the namespace declarations they inherit.
//! Validation runs `xmllint` (Debian's libxml2-utils, which `cargo xtask ci` installs) once for
//! every document passed, since compiling the schema is the slow part.
//!
//! Core's tests validate the requests exgate sends; the testkit's tests validate the responses
//! the mock EWS sends. Neither may skip: a missing `xmllint` is an error that says how to fix it.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// SOAP 1.1's envelope namespace, the one EWS speaks.
pub const SOAP_ENVELOPE: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// The folder holding `messages.xsd`, `types.xsd` and `xml.xsd`.
pub fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ews-schema")
}

/// Why documents did not validate.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct XsdError(String);

/// Validates SOAP envelopes: each must be a SOAP 1.1 envelope whose header children and whose
/// one body element are valid EWS (`messages.xsd` and what it imports). A `soap:Fault` body is
/// checked for SOAP's required `faultcode` and `faultstring` instead: faults are not EWS types.
pub fn validate_soap<S: AsRef<str>>(envelopes: &[S]) -> Result<(), XsdError> {
    let mut parts = Vec::new();
    for (i, envelope) in envelopes.iter().enumerate() {
        let envelope = envelope.as_ref();
        let found = split_envelope(envelope).map_err(|why| {
            XsdError(format!(
                "document {i} is not a SOAP envelope: {why}\n{envelope}"
            ))
        })?;
        parts.extend(found.into_iter().map(|part| (i, part)));
    }
    let documents: Vec<(usize, String)> = parts
        .into_iter()
        .filter_map(|(i, part)| match part {
            Part::Element(xml) => Some((i, xml)),
            Part::Fault => None,
        })
        .collect();
    validate_elements(&documents)
}

/// Validates standalone XML documents whose root is a global element of the EWS schema
/// (`m:FindItem`, `t:RequestServerVersion`, …).
pub fn validate_documents<S: AsRef<str>>(documents: &[S]) -> Result<(), XsdError> {
    let documents: Vec<(usize, String)> = documents
        .iter()
        .enumerate()
        .map(|(i, d)| (i, d.as_ref().to_owned()))
        .collect();
    validate_elements(&documents)
}

fn validate_elements(documents: &[(usize, String)]) -> Result<(), XsdError> {
    if documents.is_empty() {
        return Ok(());
    }
    let dir = tempfile::tempdir()
        .map_err(|e| XsdError(format!("cannot make a temporary folder: {e}")))?;
    let mut files = Vec::with_capacity(documents.len());
    for (n, (_, xml)) in documents.iter().enumerate() {
        let file = dir.path().join(format!("doc{n}.xml"));
        std::fs::write(&file, xml)
            .map_err(|e| XsdError(format!("cannot write {}: {e}", file.display())))?;
        files.push(file);
    }
    let schema = schema_dir().join("messages.xsd");
    let output = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&schema)
        .args(&files)
        .output()
        .map_err(|e| {
            XsdError(format!(
                "cannot run xmllint ({e}): install Debian's libxml2-utils \
                 (`cargo xtask ci` does; by hand: apt-get install libxml2-utils)"
            ))
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut report = format!("xmllint refused EWS documents ({}):\n", output.status);
    for (n, (source, xml)) in documents.iter().enumerate() {
        let name = format!("doc{n}.xml");
        let complaints: Vec<&str> = stderr
            .lines()
            .filter(|line| {
                line.contains(&format!("/{name}:")) || line.contains(&format!("/{name} fails"))
            })
            .filter(|line| !line.ends_with(" validates"))
            .collect();
        if complaints.is_empty() {
            continue;
        }
        let _ = writeln!(report, "--- document {source}:\n{xml}");
        for line in complaints {
            let _ = writeln!(
                report,
                "  {}",
                line.rsplit_once(&name).map_or(line, |(_, rest)| rest)
            );
        }
    }
    if !report.contains("--- document") {
        let _ = write!(report, "{stderr}");
    }
    Err(XsdError(report))
}

enum Part {
    /// A header child or the body element, as a standalone document.
    Element(String),
    /// A well-formed `soap:Fault`.
    Fault,
}

/// Splits an envelope into its header children and its body element, each given the namespace
/// declarations of its ancestors.
fn split_envelope(xml: &str) -> Result<Vec<Part>, String> {
    let mut reader = NsReader::from_str(xml);
    // The ancestors' namespace declarations, outermost first.
    let mut inherited: Vec<Vec<(String, String)>> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut parts = Vec::new();
    let mut body_children = 0;
    let mut saw_body = false;
    loop {
        let before = reader.buffer_position() as usize;
        let (ns, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        let in_soap = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == SOAP_ENVELOPE);
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(start) | Event::Empty(start) if path.len() == 2 => {
                let local = start.local_name().as_ref().to_owned();
                let end = if empty {
                    reader.buffer_position() as usize
                } else {
                    let name = start.name().as_ref().to_owned();
                    reader
                        .read_to_end(quick_xml::name::QName(name.as_str()))
                        .map_err(|e| e.to_string())?;
                    reader.buffer_position() as usize
                };
                let text = &xml[before..end];
                if path[1] == "Body" {
                    body_children += 1;
                    if in_soap && local == "Fault" {
                        check_fault(text)?;
                        parts.push(Part::Fault);
                        continue;
                    }
                }
                parts.push(Part::Element(with_namespaces(text, &inherited)?));
            }
            Event::Start(start) => {
                let local = start.local_name().as_ref().to_owned();
                match path.len() {
                    0 if !(in_soap && local == "Envelope") => {
                        return Err(format!("the root is {local}, not soap:Envelope"));
                    }
                    1 if !(in_soap && (local == "Header" || local == "Body")) => {
                        return Err(format!("soap:Envelope holds {local}"));
                    }
                    1 if local == "Body" => saw_body = true,
                    _ => {}
                }
                inherited.push(declarations(&start)?);
                path.push(local);
            }
            Event::Empty(start) => {
                let local = start.local_name().as_ref().to_owned();
                if path.is_empty() {
                    return Err("an empty root element".into());
                }
                if path.len() == 1 && local == "Body" {
                    return Err("soap:Body is empty".into());
                }
            }
            Event::End(_) => {
                path.pop();
                inherited.pop();
            }
            Event::Text(text) if !path.is_empty() && !text.as_ref().trim().is_empty() => {
                return Err("text outside any EWS element".into());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_body || body_children != 1 {
        return Err(format!(
            "soap:Body must hold exactly one element, it holds {body_children}"
        ));
    }
    Ok(parts)
}

fn declarations(
    start: &quick_xml::events::BytesStart<'_>,
) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let key = attribute.key.as_ref().to_owned();
        if key == "xmlns" || key.starts_with("xmlns:") {
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?
                .into_owned();
            found.push((key, value));
        }
    }
    Ok(found)
}

/// Adds to the element's start tag each inherited declaration it does not make itself.
fn with_namespaces(text: &str, inherited: &[Vec<(String, String)>]) -> Result<String, String> {
    let name_end = text[1..]
        .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
        .map(|i| i + 1)
        .ok_or("an unterminated start tag")?;
    let tag_end = text.find('>').ok_or("an unterminated start tag")?;
    let own = &text[..tag_end];
    let mut added = String::new();
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in inherited.iter().rev().flatten() {
        if seen.contains(&key.as_str()) || own.contains(&format!("{key}=")) {
            continue;
        }
        seen.push(key);
        let value = value
            .replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;");
        let _ = write!(added, " {key}=\"{value}\"");
    }
    Ok(format!("{}{added}{}", &text[..name_end], &text[name_end..]))
}

/// A SOAP 1.1 fault must carry `faultcode` and `faultstring` (SOAP 1.1 §4.4).
fn check_fault(text: &str) -> Result<(), String> {
    let mut reader = NsReader::from_str(text);
    let (mut code, mut string, mut depth) = (false, false, 0);
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                depth += 1;
                if depth == 2 {
                    code |= e.local_name().as_ref() == "faultcode";
                    string |= e.local_name().as_ref() == "faultstring";
                }
            }
            Event::End(_) => depth -= 1,
            Event::Eof => break,
            _ => {}
        }
    }
    if code && string {
        Ok(())
    } else {
        Err("a soap:Fault without faultcode and faultstring".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIND_ITEM: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <soap:Header><t:RequestServerVersion Version="Exchange2013"/></soap:Header>
  <soap:Body>
    <m:FindItem Traversal="Shallow">
      <m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
      <m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/>
      <m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds>
    </m:FindItem>
  </soap:Body>
</soap:Envelope>"#;

    #[test]
    fn a_valid_request_passes_and_an_invalid_one_is_refused_with_the_reason() {
        validate_soap(&[FIND_ITEM]).unwrap();
        let bad = FIND_ITEM.replace("Traversal=\"Shallow\"", "Traversal=\"Sideways\"");
        let err = validate_soap(&[FIND_ITEM.to_owned(), bad])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--- document 1"), "{err}");
        assert!(!err.contains("--- document 0"), "{err}");
        assert!(err.contains("Traversal"), "{err}");
        let version = FIND_ITEM.replace("Exchange2013", "Exchange2099");
        assert!(validate_soap(&[version]).is_err());
    }

    #[test]
    fn envelopes_of_the_wrong_shape_are_refused() {
        let no_body = FIND_ITEM.replace("soap:Body", "soap:Bodyx");
        assert!(validate_soap(&[no_body]).is_err());
        let two = FIND_ITEM.replace(
            "</m:FindItem>",
            "</m:FindItem><m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape></m:GetFolder>",
        );
        let err = validate_soap(&[two]).unwrap_err().to_string();
        assert!(err.contains("exactly one"), "{err}");
        let soap12 = FIND_ITEM.replace(SOAP_ENVELOPE, "http://www.w3.org/2003/05/soap-envelope");
        assert!(validate_soap(&[soap12]).is_err());
    }

    #[test]
    fn a_fault_needs_its_code_and_string() {
        let fault = |inner: &str| {
            format!(
                r#"<s:Envelope xmlns:s="{SOAP_ENVELOPE}"><s:Body><s:Fault>{inner}</s:Fault></s:Body></s:Envelope>"#
            )
        };
        validate_soap(&[fault(
            "<faultcode>a:ErrorServerBusy</faultcode><faultstring>busy</faultstring>",
        )])
        .unwrap();
        assert!(validate_soap(&[fault("<faultstring>busy</faultstring>")]).is_err());
    }
}
