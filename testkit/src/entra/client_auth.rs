//! Client authentication at the token endpoint: none (public clients), a client secret in the
//! body or in HTTP Basic, or a certificate-signed client assertion (`private_key_jwt`).

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use time::OffsetDateTime;

use super::error::{AadError, aadsts, entra_instant};
use super::params::Params;
use super::seed::AppSeed;
use super::state::Inner;
use crate::directory::cert::{thumbprint_bytes, thumbprint_hex};

pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest lifetime (exp − nbf/iat) a client assertion may have, in seconds, plus a
/// millisecond: float times (`time.time() + 600` − `time.time()`) may exceed 600 by rounding.
const MAX_ASSERTION_LIFETIME: f64 = 600.001;
/// Clock skew tolerated on `nbf`/`iat`, in seconds.
const SKEW: f64 = 300.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantKind {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    Password,
    DeviceCode,
}

/// The authenticated client and how (`azpacr`: 0 none, 1 secret, 2 certificate).
pub(crate) struct Authed {
    pub app: AppSeed,
    pub azpacr: u8,
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))` (client_secret_basic).
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, AadError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        aadsts::malformed_request("The Authorization header is not valid HTTP Basic credentials.")
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let text = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = text.split_once(':').ok_or_else(malformed)?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

fn form_decode(part: &str) -> String {
    url::form_urlencoded::parse(part.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

/// The client ID of a token request: from the body, or from HTTP Basic.
pub(crate) fn client_id(
    params: &Params,
    basic: Option<&(String, String)>,
) -> Result<String, AadError> {
    match (params.get("client_id"), basic) {
        (Some(body), Some((header, _))) if !body.eq_ignore_ascii_case(header) => {
            Err(aadsts::malformed_request(
                "The client_id in the request body and in the Authorization header differ.",
            ))
        }
        (Some(body), _) => Ok(body.to_string()),
        (None, Some((header, _))) if !header.is_empty() => Ok(header.clone()),
        _ => Err(aadsts::missing_parameter("client_id")),
    }
}

/// Authenticates the client of a token request in tenant `t`, reached as `tenant_segment`.
pub(crate) fn authenticate(
    inner: &mut Inner,
    t: usize,
    tenant_segment: &str,
    params: &Params,
    basic: Option<(String, String)>,
    grant: GrantKind,
) -> Result<Authed, AadError> {
    let client_id = client_id(params, basic.as_ref())?;
    let Some(tenant) = inner.tenant(t) else {
        return Err(aadsts::tenant_not_found(tenant_segment, "invalid_request"));
    };
    let Some(app) = inner.app(t, &client_id).cloned() else {
        return Err(aadsts::app_not_found(&client_id, &tenant.domain));
    };
    let secret = params
        .get("client_secret")
        .map(str::to_string)
        .or_else(|| basic.map(|(_, secret)| secret).filter(|s| !s.is_empty()));
    let assertion = params.get("client_assertion");
    if secret.is_some() && assertion.is_some() {
        return Err(aadsts::malformed_request(
            "Present either 'client_secret' or 'client_assertion', not both.",
        ));
    }
    if app.public_client && (secret.is_some() || assertion.is_some()) {
        return Err(aadsts::public_client_with_credential());
    }
    if let Some(secret) = secret {
        check_secret(inner, &app, &secret)?;
        return Ok(Authed { app, azpacr: 1 });
    }
    if let Some(assertion) = assertion {
        match params.get("client_assertion_type") {
            None => return Err(aadsts::missing_parameter("client_assertion_type")),
            Some(JWT_BEARER) => {}
            Some(other) => {
                return Err(aadsts::malformed_request(&format!(
                    "client_assertion_type '{other}' is not supported; use '{JWT_BEARER}'."
                )));
            }
        }
        check_assertion(inner, t, tenant_segment, &app, assertion)?;
        return Ok(Authed { app, azpacr: 2 });
    }
    let allowed = match grant {
        GrantKind::Password | GrantKind::DeviceCode => app.public_client_flows,
        GrantKind::AuthorizationCode | GrantKind::RefreshToken => {
            app.public_client || app.public_client_flows
        }
        GrantKind::ClientCredentials => false,
    };
    if allowed {
        Ok(Authed { app, azpacr: 0 })
    } else {
        Err(aadsts::credential_required())
    }
}

fn check_secret(inner: &Inner, app: &AppSeed, secret: &str) -> Result<(), AadError> {
    let now = inner.now();
    let switched = inner
        .secrets_expired
        .contains(&app.client_id.to_ascii_lowercase());
    let expired = |expires: OffsetDateTime| switched || expires <= now;
    match app.secrets.iter().find(|s| s.value == secret) {
        Some(s) if expired(s.expires) => Err(aadsts::secret_expired(&app.client_id)),
        Some(_) => Ok(()),
        None if !app.secrets.is_empty() && app.secrets.iter().all(|s| expired(s.expires)) => {
            Err(aadsts::secret_expired(&app.client_id))
        }
        None => Err(aadsts::invalid_secret(&app.client_id)),
    }
}

fn check_assertion(
    inner: &mut Inner,
    t: usize,
    tenant_segment: &str,
    app: &AppSeed,
    assertion: &str,
) -> Result<(), AadError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| {
        aadsts::assertion_malformed(&format!("The client assertion cannot be read: {e}."))
    })?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(aadsts::assertion_malformed(&format!(
            "The client assertion is signed with {:?}; use RS256 or PS256.",
            header.alg
        )));
    }
    let certs = inner.certs(&app.client_id);
    // Compared by the thumbprint's bytes: MSAL for Python pads its base64url, other clients
    // write standard base64.
    let same = |ours: &str, theirs: &str| {
        thumbprint_bytes(theirs).is_some_and(|b| thumbprint_bytes(ours) == Some(b))
    };
    let (cert, thumbprint) = if let Some(x5t_s256) = &header.x5t_s256 {
        (
            certs.iter().find(|c| same(&c.x5t_s256, x5t_s256)),
            thumbprint_hex(x5t_s256),
        )
    } else if let Some(x5t) = &header.x5t {
        (
            certs.iter().find(|c| same(&c.x5t, x5t)),
            thumbprint_hex(x5t),
        )
    } else {
        return Err(aadsts::assertion_signature(
            "The client assertion has neither an 'x5t#S256' nor an 'x5t' header, so no key can be found.",
            "",
            &app.client_id,
        ));
    };
    let Some(cert) = cert else {
        return Err(aadsts::assertion_signature(
            "The key was not found.",
            &thumbprint,
            &app.client_id,
        ));
    };
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = match jsonwebtoken::decode::<Value>(
        assertion,
        &DecodingKey::from_rsa_der(&cert.public_key),
        &validation,
    ) {
        Ok(data) => data.claims,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) | ErrorKind::Provider(_)
            ) =>
        {
            return Err(aadsts::assertion_signature(
                "Key was found, but use of the key to verify the signature failed.",
                &thumbprint,
                &app.client_id,
            ));
        }
        Err(e) => {
            return Err(aadsts::assertion_malformed(&format!(
                "The client assertion cannot be read: {e}."
            )));
        }
    };

    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !iss.eq_ignore_ascii_case(&app.client_id) {
        return Err(aadsts::assertion_issuer(&app.client_id));
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !sub.eq_ignore_ascii_case(iss) {
        return Err(aadsts::assertion_subject());
    }

    let tenant = inner
        .tenant(t)
        .ok_or_else(|| aadsts::tenant_not_found(tenant_segment, "invalid_request"))?;
    let endpoint = |segment: &str| format!("{}/{segment}/oauth2/v2.0/token", inner.base_url);
    let accepted = [
        endpoint(&tenant.id),
        endpoint(&tenant.domain),
        endpoint(tenant_segment),
    ];
    let matches_audience = |aud: &str| accepted.iter().any(|a| a.eq_ignore_ascii_case(aud));
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => matches_audience(aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(matches_audience),
        _ => false,
    };
    if !audience_ok {
        return Err(aadsts::assertion_audience(&endpoint(&tenant.id)));
    }

    // NumericDate is "a JSON numeric value" (RFC 7519 §2): MSAL for Python sends floats
    // (`time.time()`), most others integers.
    let now = inner.now().unix_timestamp_nanos() as f64 / 1e9;
    let numeric = |name: &str| claims.get(name).and_then(Value::as_f64);
    let Some(exp) = numeric("exp") else {
        return Err(aadsts::assertion_malformed(
            "The client assertion has no 'exp' claim.",
        ));
    };
    let start = numeric("nbf").or_else(|| numeric("iat"));
    let instant = |secs: f64| {
        OffsetDateTime::from_unix_timestamp(secs.floor() as i64)
            .map(entra_instant)
            .unwrap_or_else(|_| secs.to_string())
    };
    let time_error = |extra: &str| {
        aadsts::assertion_time(
            &instant(now),
            &instant(start.unwrap_or(0.0)),
            &instant(exp),
            extra,
        )
    };
    if exp <= now {
        return Err(time_error(""));
    }
    if let Some(start) = start {
        if start > now + SKEW {
            return Err(time_error(" The assertion is not valid yet."));
        }
        if exp - start > MAX_ASSERTION_LIFETIME {
            return Err(time_error(
                " An assertion may be valid for at most 10 minutes.",
            ));
        }
    } else if exp - now > MAX_ASSERTION_LIFETIME {
        return Err(time_error(
            " An assertion may be valid for at most 10 minutes.",
        ));
    }

    // Entra does not refuse an assertion it has seen before: MSAL signs one and reuses it,
    // with its `jti`, for as long as it is valid (up to 10 minutes); only the time range
    // above ends its use.
    claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or_else(|| aadsts::assertion_malformed("The client assertion has no 'jti' claim."))?;
    Ok(())
}
