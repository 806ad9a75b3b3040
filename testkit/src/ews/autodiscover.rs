//! Autodiscover: POX (`/autodiscover/autodiscover.xml`), SOAP (`/autodiscover/autodiscover.svc`,
//! GetUserSettings) and Exchange Online's JSON (`/autodiscover/autodiscover.json/v1.0/{address}`).
//! POX and SOAP need credentials as Exchange's do; JSON is anonymous. A switch makes every
//! answer a redirect (to another address, or to any URL, hostile ones included), and every
//! request is recorded with whether it carried an `Authorization` header.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth;
use super::switches::AutodiscoverRedirect;
use super::xml::{self, Xml};
use super::{AutodiscoverRequest, EwsState, MAX_BODY};

const POX_REQUEST: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
const POX_RESPONSE: &str = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
const POX_OUTLOOK: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
const SOAP_AUTODISCOVER: &str = "http://schemas.microsoft.com/exchange/2010/Autodiscover";

fn record(state: &EwsState, method: &str, uri: &str, headers: &HeaderMap) {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    state.own().autodiscover.push(AutodiscoverRequest {
        method: method.to_string(),
        uri: uri.to_string(),
        host,
        authorization: headers.contains_key(header::AUTHORIZATION),
    });
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, Body::from(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    r
}

fn denied(d: auth::Denied) -> Response {
    let mut r = (d.status, Body::from(d.body)).into_response();
    for (name, value) in d.headers {
        if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            r.headers_mut().append(n, v);
        }
    }
    r
}

/// Reads the body and authenticates; `Err` is the answer.
async fn prepare(state: &EwsState, request: Request) -> Result<(HeaderMap, String), Response> {
    let control = crate::conn::control(request.extensions());
    let uri = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().to_string(), ToString::to_string);
    record(state, request.method().as_str(), &uri, request.headers());
    let (parts, body) = request.into_parts();
    let now = state.clock.now();
    auth::authenticate(state, &parts.headers, control.map(|c| c.id()), now).map_err(denied)?;
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
    let text =
        String::from_utf8(bytes.to_vec()).map_err(|_| StatusCode::BAD_REQUEST.into_response())?;
    Ok((parts.headers, text))
}

/// The redirect to answer for `address`: the switch's, except that the address it redirects to
/// is answered normally (so a client following `redirectAddr` gets its settings).
fn effective_redirect(
    switches: &super::EwsSwitches,
    address: &str,
) -> Option<AutodiscoverRedirect> {
    match &switches.autodiscover_redirect {
        Some(AutodiscoverRedirect::Address { address: to })
            if to.eq_ignore_ascii_case(address.trim()) =>
        {
            None
        }
        other => other.clone(),
    }
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// `POST /autodiscover/autodiscover.xml`
pub(crate) async fn pox(State(state): State<EwsState>, request: Request) -> Response {
    let (_, text) = match prepare(&state, request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let address = xml::parse(&text).ok().and_then(|doc| {
        (doc.name == "Autodiscover" && doc.ns == POX_REQUEST)
            .then(|| {
                doc.text_at(&["Request", "EMailAddress"])
                    .map(str::to_string)
            })
            .flatten()
    });
    let now = crate::ews::items::fmt_time(state.clock.now());
    let mut x = Xml::new();
    x.raw("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    x.open("Autodiscover", &[("xmlns", POX_RESPONSE)]);
    let Some(address) = address else {
        x.open("Response", &[]);
        x.open("Error", &[("Time", &now), ("Id", "2477272013")]);
        x.leaf("ErrorCode", "600");
        x.leaf("Message", "Invalid Request");
        x.empty("DebugData", &[]);
        x.close("Error");
        x.close("Response");
        x.close("Autodiscover");
        return xml_response(StatusCode::OK, x.finish());
    };
    let switches = state.switches();
    let redirect = effective_redirect(&switches, &address);
    let dir = state.directory.read();
    x.open("Response", &[("xmlns", POX_OUTLOOK)]);
    match (&redirect, dir.recipient(&address)) {
        (Some(redirect), _) => {
            x.open("Account", &[]);
            x.leaf("AccountType", "email");
            match redirect {
                AutodiscoverRedirect::Address { address } => {
                    x.leaf("Action", "redirectAddr");
                    x.leaf("RedirectAddr", address);
                }
                AutodiscoverRedirect::Url { url } => {
                    x.leaf("Action", "redirectUrl");
                    x.leaf("RedirectUrl", url);
                }
            }
            x.close("Account");
        }
        (None, None) => {
            x.open("Error", &[("Time", &now), ("Id", "2477272013")]);
            x.leaf("ErrorCode", "500");
            x.leaf("Message", "The email address can't be found.");
            x.empty("DebugData", &[]);
            x.close("Error");
        }
        (None, Some(user)) => {
            let ews = state.ews_url();
            let host = host_of(&ews);
            x.open("User", &[]);
            x.leaf("DisplayName", &user.display_name);
            x.leaf(
                "LegacyDN",
                &format!("/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={}", user.object_id),
            );
            x.leaf("AutoDiscoverSMTPAddress", &user.address);
            x.leaf("DeploymentId", &user.object_id);
            x.close("User");
            x.open("Account", &[]);
            x.leaf("AccountType", "email");
            x.leaf("Action", "settings");
            x.leaf(
                "MicrosoftOnline",
                if switches.version == super::ServerVersion::Online {
                    "True"
                } else {
                    "False"
                },
            );
            for kind in ["EXCH", "EXPR"] {
                x.open("Protocol", &[]);
                x.leaf("Type", kind);
                x.leaf("Server", &host);
                x.leaf(
                    "SSL",
                    if ews.starts_with("https") {
                        "On"
                    } else {
                        "Off"
                    },
                );
                x.leaf(
                    "AuthPackage",
                    if kind == "EXPR" { "Ntlm" } else { "Negotiate" },
                );
                x.leaf("ASUrl", &ews);
                x.leaf("EwsUrl", &ews);
                x.leaf("EmwsUrl", &ews);
                x.leaf("OOFUrl", &ews);
                x.close("Protocol");
            }
            x.close("Account");
        }
    }
    x.close("Response");
    x.close("Autodiscover");
    xml_response(StatusCode::OK, x.finish())
}

/// `POST /autodiscover/autodiscover.svc`: GetUserSettings.
pub(crate) async fn soap(State(state): State<EwsState>, request: Request) -> Response {
    let (_, text) = match prepare(&state, request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(doc) = xml::parse(&text) else {
        return xml_response(StatusCode::BAD_REQUEST, String::new());
    };
    let mut found = Vec::new();
    doc.descendants("GetUserSettingsRequestMessage", &mut found);
    let Some(request) = found.first().copied().filter(|r| r.ns == SOAP_AUTODISCOVER) else {
        return xml_response(StatusCode::BAD_REQUEST, String::new());
    };
    let mut users = Vec::new();
    request.descendants("Mailbox", &mut users);
    let mut settings = Vec::new();
    request.descendants("Setting", &mut settings);
    let switches = state.switches();
    let dir = state.directory.read();
    let ews = state.ews_url();
    let (major, minor, build, minor_build, _) = switches.version.info();
    let mut x = Xml::new();
    x.raw("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    x.open(
        "s:Envelope",
        &[
            ("xmlns:s", super::soap::NS_SOAP),
            ("xmlns:a", "http://www.w3.org/2005/08/addressing"),
        ],
    );
    x.open("s:Header", &[]);
    x.leaf_with(
        "a:Action",
        &[("s:mustUnderstand", "1")],
        "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse",
    );
    x.open(
        "h:ServerVersionInfo",
        &[
            ("xmlns:h", SOAP_AUTODISCOVER),
            ("xmlns:i", "http://www.w3.org/2001/XMLSchema-instance"),
        ],
    );
    x.leaf("h:MajorVersion", &major.to_string());
    x.leaf("h:MinorVersion", &minor.to_string());
    x.leaf("h:MajorBuildNumber", &build.to_string());
    x.leaf("h:MinorBuildNumber", &minor_build.to_string());
    x.leaf("h:Version", "Exchange2015");
    x.close("h:ServerVersionInfo");
    x.close("s:Header");
    x.open("s:Body", &[]);
    x.open(
        "GetUserSettingsResponseMessage",
        &[("xmlns", SOAP_AUTODISCOVER)],
    );
    x.open(
        "Response",
        &[("xmlns:i", "http://www.w3.org/2001/XMLSchema-instance")],
    );
    x.leaf("ErrorCode", "NoError");
    x.empty("ErrorMessage", &[]);
    x.open("UserResponses", &[]);
    for user in users {
        let address = user.text.trim();
        x.open("UserResponse", &[]);
        match (
            &effective_redirect(&switches, address),
            dir.recipient(address),
        ) {
            (Some(AutodiscoverRedirect::Address { address }), _) => {
                x.leaf("ErrorCode", "RedirectAddress");
                x.leaf("ErrorMessage", "Redirection address.");
                x.leaf("RedirectTarget", address);
            }
            (Some(AutodiscoverRedirect::Url { url }), _) => {
                x.leaf("ErrorCode", "RedirectUrl");
                x.leaf("ErrorMessage", "Redirection URL.");
                x.leaf("RedirectTarget", url);
            }
            (None, None) => {
                x.leaf("ErrorCode", "InvalidUser");
                x.leaf("ErrorMessage", &format!("Invalid user: '{address}'"));
                x.empty("RedirectTarget", &[("i:nil", "true")]);
            }
            (None, Some(r)) => {
                x.leaf("ErrorCode", "NoError");
                x.leaf("ErrorMessage", "No error.");
                x.empty("RedirectTarget", &[("i:nil", "true")]);
                x.empty("UserSettingErrors", &[]);
                x.open("UserSettings", &[]);
                for s in &settings {
                    let name = s.text.trim();
                    let value = match name {
                        "UserDisplayName" => Some(r.display_name.clone()),
                        "UserDN" | "UserDeploymentId" => Some(r.object_id.clone()),
                        "ExternalEwsUrl" | "InternalEwsUrl" => Some(ews.clone()),
                        "EwsSupportedSchemas" => Some("Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1, Exchange2015, Exchange2016".into()),
                        "AutoDiscoverSMTPAddress" => Some(r.address.clone()),
                        "CasVersion" => Some(format!("{major}.{minor}.{build}.{minor_build}")),
                        _ => None,
                    };
                    if let Some(value) = value {
                        x.open("UserSetting", &[("i:type", "StringSetting")]);
                        x.leaf("Name", name);
                        x.leaf("Value", &value);
                        x.close("UserSetting");
                    }
                }
                x.close("UserSettings");
            }
        }
        x.close("UserResponse");
    }
    x.close("UserResponses");
    x.close("Response");
    x.close("GetUserSettingsResponseMessage");
    x.close("s:Body");
    x.close("s:Envelope");
    xml_response(StatusCode::OK, x.finish())
}

/// `GET /autodiscover/autodiscover.json/v1.0/{address}?Protocol=EWS` (anonymous, as in
/// Exchange Online).
pub(crate) async fn json(
    State(state): State<EwsState>,
    Path(address): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let uri = format!("/autodiscover/autodiscover.json/v1.0/{address}");
    record(&state, "GET", &uri, &headers);
    let protocol = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("protocol"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let json =
        |status: StatusCode, value: serde_json::Value| (status, axum::Json(value)).into_response();
    if !protocol.eq_ignore_ascii_case("EWS") && !protocol.eq_ignore_ascii_case("ActiveSync") {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"ErrorCode": "InvalidProtocol", "ErrorMessage": format!("The given protocol value '{protocol}' is invalid. Supported values are 'ActiveSync,EWS'")}),
        );
    }
    let switches = state.switches();
    match &effective_redirect(&switches, &address) {
        Some(AutodiscoverRedirect::Url { url }) => {
            let mut r = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(url) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        Some(AutodiscoverRedirect::Address { address }) => {
            let target = format!(
                "{}/autodiscover/autodiscover.json/v1.0/{}?Protocol={protocol}",
                state.base_url(),
                address
            );
            let mut r = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(&target) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        None => {}
    }
    if state.directory.read().recipient(&address).is_none() {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"ErrorCode": "UserNotFound", "ErrorMessage": "The user was not found."}),
        );
    }
    json(
        StatusCode::OK,
        serde_json::json!({"Protocol": "EWS", "Url": state.ews_url()}),
    )
}
