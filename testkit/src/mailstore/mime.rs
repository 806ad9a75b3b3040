//! Body conversions (HTML ⇄ text) and the RFC 5322 / MIME form of a message (Graph's `$value`,
//! EWS's `MimeContent`), shared by the protocol mocks.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::mailstore::content::{Address, BodyType};
use crate::mailstore::mailbox::{Body, Message};

/// The text of an HTML body: tags stripped, block ends as line breaks, entities decoded.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..open]));
        let after = &rest[open..];
        let Some(close) = after.find('>') else {
            rest = "";
            break;
        };
        let tag = after[1..close].trim().to_ascii_lowercase();
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        rest = &after[close + 1..];
        // Skip the content of head, style and script elements.
        if !tag.starts_with('/') && matches!(name.as_str(), "head" | "style" | "script" | "title") {
            let end = format!("</{name}");
            match rest.to_ascii_lowercase().find(&end) {
                Some(i) => {
                    rest = &rest[i..];
                    if let Some(gt) = rest.find('>') {
                        rest = &rest[gt + 1..];
                    }
                }
                None => rest = "",
            }
            continue;
        }
        let block_end = tag.starts_with('/')
            && matches!(
                name.as_str(),
                "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "table" | "blockquote"
            );
        if name == "br" || block_end {
            out.push_str("\r\n");
        }
    }
    out.push_str(&decode_entities(rest));
    // Lines without trailing blanks, no more than one empty line in a row.
    let mut text = String::with_capacity(out.len());
    let mut empty = 0;
    for line in out.replace("\r\n", "\n").lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            empty += 1;
            if empty > 1 || text.is_empty() {
                continue;
            }
        } else {
            empty = 0;
        }
        text.push_str(line.trim_start_matches(['\u{a0}']));
        text.push_str("\r\n");
    }
    text.trim_end().to_string()
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.replace(['\r', '\n'], " ");
    }
    s.replace(['\r', '\n'], " ")
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

pub(crate) fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// How Exchange turns a text body into HTML.
pub(crate) fn text_to_html(text: &str) -> String {
    let lines: Vec<String> = text.lines().map(escape_html).collect();
    format!(
        "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n<div>{}</div>\r\n</body>\r\n</html>\r\n",
        lines.join("<br>\r\n")
    )
}

impl Body {
    pub(crate) fn text(&self) -> String {
        match self.kind {
            BodyType::Text => self.content.clone(),
            BodyType::Html => html_to_text(&self.content),
        }
    }

    pub(crate) fn as_kind(&self, kind: BodyType) -> Body {
        let content = match (self.kind, kind) {
            (BodyType::Html, BodyType::Text) => html_to_text(&self.content),
            (BodyType::Text, BodyType::Html) => text_to_html(&self.content),
            _ => self.content.clone(),
        };
        Body { kind, content }
    }

    /// `bodyPreview`: the first 255 characters of the text, whitespace collapsed.
    pub(crate) fn preview(&self) -> String {
        let text = self.text();
        let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
        collapsed.chars().take(255).collect()
    }
}

/// `Mon, 02 Nov 2026 09:00:00 +0000`
pub(crate) fn rfc5322_date(t: OffsetDateTime) -> String {
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] +0000"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_default()
}

/// An RFC 2047 encoded word when the text is not plain ASCII.
fn encode_header(text: &str) -> String {
    if text.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        text.to_string()
    } else {
        format!("=?utf-8?B?{}?=", STANDARD.encode(text.as_bytes()))
    }
}

pub(crate) fn mailbox_header(a: &Address) -> String {
    if a.name.is_empty() || a.name == a.address {
        a.address.clone()
    } else if a
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ')
    {
        format!("{} <{}>", a.name, a.address)
    } else if a.name.is_ascii() {
        format!("\"{}\" <{}>", a.name.replace(['"', '\\'], ""), a.address)
    } else {
        format!("{} <{}>", encode_header(&a.name), a.address)
    }
}

pub(crate) fn address_list(list: &[Address]) -> String {
    list.iter()
        .map(mailbox_header)
        .collect::<Vec<_>>()
        .join(",\r\n ")
}

/// The internet headers Exchange would show for the message (`internetMessageHeaders`).
pub(crate) fn headers(m: &Message) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    if !m.is_draft {
        headers.push((
            "Received".to_string(),
            format!(
                "from exgate-mock.prod.outlook.com by exgate-mock.prod.outlook.com with HTTPS; {}",
                rfc5322_date(m.received)
            ),
        ));
    }
    if let Some(from) = &m.from {
        headers.push(("From".into(), mailbox_header(from)));
    }
    if !m.to.is_empty() {
        headers.push(("To".into(), address_list(&m.to)));
    }
    if !m.cc.is_empty() {
        headers.push(("Cc".into(), address_list(&m.cc)));
    }
    headers.push(("Subject".into(), encode_header(&m.subject)));
    headers.push(("Date".into(), rfc5322_date(m.sent.unwrap_or(m.created))));
    headers.push(("Message-ID".into(), m.internet_message_id.clone()));
    if let Some(parent) = &m.in_reply_to {
        headers.push(("In-Reply-To".into(), parent.clone()));
        headers.push(("References".into(), parent.clone()));
    }
    if !m.reply_to.is_empty() {
        headers.push(("Reply-To".into(), address_list(&m.reply_to)));
    }
    headers.push(("MIME-Version".into(), "1.0".into()));
    for (name, value) in &m.extra_headers {
        headers.push((name.clone(), value.clone()));
    }
    headers
}

/// An address as mail-builder takes it (the display name only when there is one).
fn builder_address(a: &Address) -> mail_builder::headers::address::Address<'_> {
    let name = (!a.name.is_empty() && a.name != a.address).then_some(a.name.as_str());
    mail_builder::headers::address::Address::new_address(name, a.address.as_str())
}

fn builder_list(list: &[Address]) -> mail_builder::headers::address::Address<'_> {
    mail_builder::headers::address::Address::new_list(list.iter().map(builder_address).collect())
}

/// A MIME boundary for an item: hex of a hash of its internet message ID.
fn boundary_of(internet_message_id: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(internet_message_id.as_bytes())
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The message as RFC 5322 bytes, built by mail-builder: headers, then the body part alone or
/// a `multipart/mixed` with one part per attachment (`Content-ID` for inline ones).
pub(crate) fn render(m: &Message) -> Vec<u8> {
    use mail_builder::MessageBuilder;
    use mail_builder::headers::raw::Raw;
    use mail_builder::mime::MimePart;

    let bare = |id: &str| {
        id.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string()
    };
    let mut b = MessageBuilder::new();
    if !m.is_draft {
        b = b.header(
            "Received",
            Raw::new(format!(
                "from exgate-mock.prod.outlook.com by exgate-mock.prod.outlook.com with HTTPS; {}",
                rfc5322_date(m.received)
            )),
        );
    }
    if let Some(from) = &m.from {
        b = b.from(builder_address(from));
    }
    if !m.to.is_empty() {
        b = b.to(builder_list(&m.to));
    }
    if !m.cc.is_empty() {
        b = b.cc(builder_list(&m.cc));
    }
    if !m.reply_to.is_empty() {
        b = b.reply_to(builder_list(&m.reply_to));
    }
    b = b
        .subject(m.subject.as_str())
        .date(m.sent.unwrap_or(m.created).unix_timestamp())
        .message_id(bare(&m.internet_message_id));
    if let Some(parent) = &m.in_reply_to {
        b = b.in_reply_to(bare(parent)).references(bare(parent));
    }
    for (name, value) in &m.extra_headers {
        b = b.header(name.as_str(), Raw::new(value.as_str()));
    }
    let body = match m.body.kind {
        BodyType::Html => MimePart::new("text/html", m.body.content.as_str()),
        BodyType::Text => MimePart::new("text/plain", m.body.content.as_str()),
    };
    let body = if m.attachments.is_empty() {
        body
    } else {
        let mut parts = vec![body];
        for a in &m.attachments {
            let name = a.name.replace(['"', '\r', '\n'], "");
            let content_type =
                mail_builder::headers::content_type::ContentType::new(a.content_type.as_str())
                    .attribute("name", name.clone());
            let part = MimePart::new(content_type, &a.bytes[..]);
            parts.push(match &a.content_id {
                Some(cid) if a.is_inline => {
                    part.inline().cid(cid.trim_matches(['<', '>']).to_string())
                }
                _ => part.attachment(name),
            });
        }
        // The same item gives the same bytes every time, as Exchange's MIME does: the boundary
        // comes from the item, not from mail-builder's clock-based generator.
        let boundary = format!("_exgate_mock_{}", boundary_of(&m.internet_message_id));
        MimePart::new(
            mail_builder::headers::content_type::ContentType::new("multipart/mixed")
                .attribute("boundary", boundary),
            parts,
        )
    };
    b.body(body).write_to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_readable_text() {
        let html = "<html><head><style>p{}</style><title>x</title></head><body><p>Hello&nbsp;<b>Adele</b>,</p><div>a &amp; b &lt;ok&gt;<br>next</div></body></html>";
        assert_eq!(html_to_text(html), "Hello Adele,\r\na & b <ok>\r\nnext");
        assert_eq!(html_to_text("plain"), "plain");
        assert_eq!(html_to_text("broken <b"), "broken");
    }
}
