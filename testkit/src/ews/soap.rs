//! Writing SOAP 1.1 envelopes as Exchange does: `t:ServerVersionInfo` in the header, one
//! `m:…Response` in the body with a response message per request item; SOAP faults (HTTP 500)
//! for requests Exchange refuses as a whole.

use super::switches::ServerVersion;
use super::xml::{Xml, escape};

pub(crate) const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(crate) const NS_TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
pub(crate) const NS_MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
pub(crate) const NS_ERRORS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";

/// An error of one response message (`ResponseClass="Error"`), or of the whole request when
/// answered as a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EwsError {
    /// `ResponseCodeType`, e.g. `ErrorItemNotFound`.
    pub code: &'static str,
    pub text: String,
    /// The content of `m:MessageXml` (already written XML), if any.
    pub message_xml: Option<String>,
}

pub(crate) type EwsResult<T> = Result<T, EwsError>;

impl EwsError {
    pub(crate) fn new(code: &'static str, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
            message_xml: None,
        }
    }

    pub(crate) fn item_not_found() -> Self {
        Self::new(
            "ErrorItemNotFound",
            "The specified object was not found in the store., The process failed to get the correct properties.",
        )
    }

    pub(crate) fn folder_not_found() -> Self {
        Self::new(
            "ErrorFolderNotFound",
            "The specified folder could not be found in the store.",
        )
    }

    pub(crate) fn malformed_id() -> Self {
        Self::new("ErrorInvalidIdMalformed", "Id is malformed.")
    }

    pub(crate) fn access_denied() -> Self {
        Self::new(
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }

    pub(crate) fn non_existent_mailbox(address: &str) -> Self {
        Self::new(
            "ErrorNonExistentMailbox",
            format!("The SMTP address has no mailbox associated with it: {address}"),
        )
    }

    pub(crate) fn schema(text: impl Into<String>) -> Self {
        Self::new(
            "ErrorSchemaValidation",
            format!("The request failed schema validation: {}", text.into()),
        )
    }

    pub(crate) fn invalid_request(text: impl Into<String>) -> Self {
        Self::new("ErrorInvalidRequest", text)
    }

    /// `ErrorServerBusy` with the `BackOffMilliseconds` hint.
    pub(crate) fn server_busy(back_off_ms: u64) -> Self {
        Self {
            code: "ErrorServerBusy",
            text: "The server cannot service this request right now. Try again later.".into(),
            message_xml: Some(format!(
                "<t:Value Name=\"BackOffMilliseconds\">{back_off_ms}</t:Value>"
            )),
        }
    }
}

/// The envelope around a response body (one `m:…Response` element, already written).
pub(crate) fn envelope(version: ServerVersion, body: &str) -> String {
    let (major, minor, build, minor_build, name) = version.info();
    let mut x = Xml::new();
    x.raw("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    x.open(
        "s:Envelope",
        &[
            ("xmlns:s", NS_SOAP),
            ("xmlns:m", NS_MESSAGES),
            ("xmlns:t", NS_TYPES),
        ],
    );
    x.open("s:Header", &[]);
    x.empty(
        "t:ServerVersionInfo",
        &[
            ("MajorVersion", &major.to_string()),
            ("MinorVersion", &minor.to_string()),
            ("MajorBuildNumber", &build.to_string()),
            ("MinorBuildNumber", &minor_build.to_string()),
            ("Version", name),
        ],
    );
    x.close("s:Header");
    x.open("s:Body", &[]);
    x.raw(body);
    x.close("s:Body");
    x.close("s:Envelope");
    x.finish()
}

/// A SOAP fault as Exchange writes it (sent with HTTP 500): `faultcode` `a:Code` in the types
/// namespace, the code and message again in `detail`, with `MessageXml` when there is one.
pub(crate) fn fault(version: ServerVersion, error: &EwsError) -> String {
    let (major, minor, build, minor_build, name) = version.info();
    let mut x = Xml::new();
    x.raw("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    x.open("s:Envelope", &[("xmlns:s", NS_SOAP)]);
    x.open("s:Header", &[]);
    x.empty(
        "h:ServerVersionInfo",
        &[
            ("xmlns:h", NS_TYPES),
            ("MajorVersion", &major.to_string()),
            ("MinorVersion", &minor.to_string()),
            ("MajorBuildNumber", &build.to_string()),
            ("MinorBuildNumber", &minor_build.to_string()),
            ("Version", name),
        ],
    );
    x.close("s:Header");
    x.open("s:Body", &[]);
    x.open("s:Fault", &[]);
    x.leaf_with(
        "faultcode",
        &[("xmlns:a", NS_TYPES)],
        &format!("a:{}", error.code),
    );
    x.leaf_with("faultstring", &[("xml:lang", "en-US")], &error.text);
    x.open("detail", &[]);
    x.leaf_with("e:ResponseCode", &[("xmlns:e", NS_ERRORS)], error.code);
    x.leaf_with("e:Message", &[("xmlns:e", NS_ERRORS)], &error.text);
    if let Some(xml) = &error.message_xml {
        x.open("t:MessageXml", &[("xmlns:t", NS_TYPES)]);
        x.raw(xml);
        x.close("t:MessageXml");
    }
    x.close("detail");
    x.close("s:Fault");
    x.close("s:Body");
    x.close("s:Envelope");
    x.finish()
}

/// Writes one response message `m:{tag}` with its class and code, then `content` when it
/// succeeded.
pub(crate) fn message(x: &mut Xml, tag: &str, result: &EwsResult<String>) {
    let name = format!("m:{tag}");
    match result {
        Ok(content) => {
            x.open(&name, &[("ResponseClass", "Success")]);
            x.leaf("m:ResponseCode", "NoError");
            x.raw(content);
        }
        Err(e) => {
            x.open(&name, &[("ResponseClass", "Error")]);
            x.leaf("m:MessageText", &e.text);
            x.leaf("m:ResponseCode", e.code);
            x.leaf("m:DescriptiveLinkKey", "0");
            if let Some(xml) = &e.message_xml {
                x.raw("<m:MessageXml>").raw(xml).raw("</m:MessageXml>");
            }
            // What the schema requires even of an error message, as Exchange writes it.
            match tag {
                "GetItemResponseMessage"
                | "CreateItemResponseMessage"
                | "UpdateItemResponseMessage"
                | "MoveItemResponseMessage"
                | "CopyItemResponseMessage" => {
                    x.raw("<m:Items/>");
                }
                "GetAttachmentResponseMessage" | "CreateAttachmentResponseMessage" => {
                    x.raw("<m:Attachments/>");
                }
                _ => {}
            }
        }
    }
    x.close(&name);
}

/// `m:{op}Response` with `m:ResponseMessages` holding one `m:{op}ResponseMessage` per result
/// (`message_tag` overrides the message's name, e.g. `CreateItemResponseMessage`).
pub(crate) fn response(op: &str, message_tag: &str, results: &[EwsResult<String>]) -> String {
    let mut x = Xml::new();
    let name = format!("m:{op}Response");
    x.open(&name, &[]);
    x.open("m:ResponseMessages", &[]);
    for r in results {
        message(&mut x, message_tag, r);
    }
    x.close("m:ResponseMessages");
    x.close(&name);
    x.finish()
}

/// `<t:{tag} Id=… ChangeKey=…/>`
pub(crate) fn id_element(tag: &str, id: &str, change_key: &str) -> String {
    format!(
        "<t:{tag} Id=\"{}\" ChangeKey=\"{}\"/>",
        escape(id),
        escape(change_key)
    )
}
