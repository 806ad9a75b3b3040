//! A credential's expiry read from the app's own registration in Microsoft Graph, when the app
//! may read it: `GET /applications(appId='{client id}')?$select=passwordCredentials,
//! keyCredentials` with an app-only Graph token got by the connection's own credential (Graph's
//! "Get application": `Application.Read.All`, or `Application.ReadWrite.OwnedBy` with the app's
//! service principal an owner of the registration). The connection's secret is found by its
//! `hint` (the value's first three characters), its certificate by `customKeyIdentifier` (the
//! SHA-1 thumbprint); the answer is that credential's `endDateTime`, which is when Entra ID stops
//! taking it. A 403 is no error: the expiry stays as it was known, and the evidence names the
//! permission that would let exgate read it.

use base64::Engine;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::{OAuthClient, SignIn};
use crate::model::{Auth, ClientCredential, Connection, ConnectionSettings, Resource, Target};
use crate::net;

/// The fix when Graph refuses to show the app its own registration.
pub const READ_PERMISSION_FIX: &str = "to let exgate read the credential's expiry from Microsoft Graph, grant the app the Microsoft Graph application permission Application.Read.All (with admin consent), or Application.ReadWrite.OwnedBy with the app's service principal made an owner of its own registration; or give the date with `exgate connection edit NAME --credential-expires YYYY-MM-DD`";

/// What Graph said about a connection's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromGraph {
    /// The registration lists the credential: when it expires, and which one it is (`client
    /// secret abc…` or `certificate <SHA-1>`; never the secret beyond Graph's own hint).
    Found {
        expires: OffsetDateTime,
        credential: String,
    },
    /// The registration lists no credential matching the connection's (or several secrets
    /// with the same hint and different dates).
    NotListed(String),
    /// Graph answered 403: the app may not read its own registration.
    Denied,
    /// Nothing to read: no client credential, a custom authority or Exchange Server.
    NotApplicable(&'static str),
    /// Graph could not be asked (no token, network, an unexpected answer).
    Failed(String),
}

impl FromGraph {
    /// A line of evidence for the connection test and `connection show`.
    pub fn evidence(&self) -> String {
        match self {
            Self::Found {
                expires,
                credential,
            } => format!(
                "the {credential} expires {} (from Graph)",
                expires.format(&Rfc3339).unwrap_or_default()
            ),
            Self::NotListed(why) => format!("the credential's expiry was not read from Graph: {why}"),
            Self::Denied => "the credential's expiry was not read from Graph: the app may not read its own registration (403; it needs Application.Read.All, or Application.ReadWrite.OwnedBy as an owner of itself)".into(),
            Self::NotApplicable(why) => format!("the credential's expiry is not read from Graph: {why}"),
            Self::Failed(why) => format!("the credential's expiry could not be read from Graph: {why}"),
        }
    }

    /// The expiry, when found.
    pub fn expires(&self) -> Option<OffsetDateTime> {
        match self {
            Self::Found { expires, .. } => Some(*expires),
            _ => None,
        }
    }
}

/// The connection's client credential, when it has one.
fn credential(settings: &ConnectionSettings) -> Option<(String, &ClientCredential)> {
    match &settings.auth {
        Auth::OAuth2AppOnly(a) => Some((a.client_id.to_string(), &a.credential)),
        Auth::OAuth2Delegated(d) => d.credential.as_ref().map(|c| (d.client_id.to_string(), c)),
        Auth::Basic(_) | Auth::Ntlm(_) => None,
    }
}

/// SHA-1 of a PEM certificate's DER (upper-case hex), as Entra ID's `customKeyIdentifier`.
fn sha1_thumbprint(pem: &str) -> Option<[u8; 20]> {
    use sha1::Digest as _;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(sha1::Sha1::digest(&block.contents).into())
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Whether a `customKeyIdentifier` names the certificate with this SHA-1 thumbprint: as the hex
/// thumbprint (what the portal and Graph's own how-to write), or base64 of its 20 bytes or of
/// its hex text (Graph's `Edm.Binary` read either way).
fn names_thumbprint(custom: &str, sha1: &[u8; 20]) -> bool {
    let hex = hex_upper(sha1);
    if custom.trim().eq_ignore_ascii_case(&hex) {
        return true;
    }
    let engine = base64::engine::general_purpose::STANDARD;
    match engine.decode(custom.trim()) {
        Ok(bytes) => {
            bytes == sha1.as_slice()
                || std::str::from_utf8(&bytes).is_ok_and(|t| t.eq_ignore_ascii_case(&hex))
        }
        Err(_) => false,
    }
}

fn end_of(credential: &Value) -> Option<OffsetDateTime> {
    credential["endDateTime"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

/// Finds the connection's credential in Graph's `application` (its `passwordCredentials` and
/// `keyCredentials`).
pub fn find_credential(settings: &ConnectionSettings, application: &Value) -> FromGraph {
    let Some((_, credential)) = credential(settings) else {
        return FromGraph::NotApplicable("the connection has no client credential");
    };
    let listed = |name: &str| {
        application[name]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .to_vec()
    };
    match credential {
        ClientCredential::Secret(secret) => {
            let hint: String = secret.expose().chars().take(3).collect();
            let ends: Vec<OffsetDateTime> = listed("passwordCredentials")
                .iter()
                .filter(|p| p["hint"].as_str() == Some(hint.as_str()))
                .filter_map(end_of)
                .collect();
            match ends.as_slice() {
                [] => FromGraph::NotListed(format!(
                    "none of the app's client secrets starts with {hint} (the connection's secret may be a secret's ID rather than its value, or belong to another app)"
                )),
                [first, rest @ ..] if rest.iter().all(|e| e == first) => FromGraph::Found {
                    expires: *first,
                    credential: format!("client secret {hint}…"),
                },
                _ => FromGraph::NotListed(format!(
                    "{} of the app's client secrets start with {hint} and expire on different dates",
                    ends.len()
                )),
            }
        }
        ClientCredential::Certificate(c) => {
            let Some(sha1) = sha1_thumbprint(c.certificate_pem()) else {
                return FromGraph::Failed("the connection's certificate cannot be read".into());
            };
            let found = listed("keyCredentials").iter().find_map(|k| {
                k["customKeyIdentifier"]
                    .as_str()
                    .filter(|custom| names_thumbprint(custom, &sha1))
                    .and_then(|_| end_of(k))
            });
            match found {
                Some(expires) => FromGraph::Found {
                    expires,
                    credential: format!("certificate {}", hex_upper(&sha1)),
                },
                None => FromGraph::NotListed(format!(
                    "none of the app's certificates has the thumbprint {}",
                    hex_upper(&sha1)
                )),
            }
        }
    }
}

/// Reads the connection's credential's expiry from its app registration in Graph (see the
/// module documentation). Never fails: what went wrong is the answer.
pub async fn read(connection: &Connection, signin: &SignIn) -> FromGraph {
    let settings = &connection.settings;
    let Some((client_id, _)) = credential(settings) else {
        return FromGraph::NotApplicable("the connection has no client credential");
    };
    let cloud = match &settings.target {
        Target::Online { cloud, .. } if settings.authority.is_none() => *cloud,
        Target::Online { .. } => {
            return FromGraph::NotApplicable("the connection signs in at a custom authority");
        }
        Target::Server { .. } => {
            return FromGraph::NotApplicable("the connection is to Exchange Server");
        }
    };
    let network = signin.network();
    let http = match net::http_client(&network) {
        Ok(h) => h,
        Err(e) => return FromGraph::Failed(e.to_string()),
    };
    let token = async {
        let client =
            OAuthClient::for_connection(settings, &network, http.clone(), signin.clock()).await?;
        let scope = Resource::app_only_scope(&crate::auth::signin::resource_identifier(
            connection,
            Resource::Graph,
        ));
        client.client_credentials(&scope).await
    };
    let token = match token.await {
        Ok(t) => t,
        Err(e) => return FromGraph::Failed(format!("no app-only Graph token: {e}")),
    };
    let base = network.graph_url.as_ref().map_or_else(
        || crate::graph::default_base_url(cloud).to_owned(),
        ToString::to_string,
    );
    let url = format!(
        "{}/applications(appId='{client_id}')?$select=passwordCredentials,keyCredentials",
        base.trim_end_matches('/')
    );
    let response = match http
        .get(&url)
        .bearer_auth(token.access_token.expose())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return FromGraph::Failed(format!("GET {url}: {e}")),
    };
    let status = response.status();
    if status == reqwest::StatusCode::FORBIDDEN {
        return FromGraph::Denied;
    }
    if !status.is_success() {
        return FromGraph::Failed(format!("GET {url}: HTTP {status}"));
    }
    match response.json::<Value>().await {
        Ok(application) => find_credential(settings, &application),
        Err(e) => FromGraph::Failed(format!("GET {url}: the answer is not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thumbprint_is_matched_as_hex_or_base64() {
        let sha1: [u8; 20] = core::array::from_fn(|i| i as u8 * 13);
        let hex = hex_upper(&sha1);
        let b64 = base64::engine::general_purpose::STANDARD;
        assert!(names_thumbprint(&hex, &sha1));
        assert!(names_thumbprint(&hex.to_ascii_lowercase(), &sha1));
        assert!(names_thumbprint(&b64.encode(sha1), &sha1));
        assert!(names_thumbprint(&b64.encode(hex.as_bytes()), &sha1));
        let other: [u8; 20] = [7; 20];
        assert!(!names_thumbprint(&hex_upper(&other), &sha1));
        assert!(!names_thumbprint("not base64!", &sha1));
    }
}
