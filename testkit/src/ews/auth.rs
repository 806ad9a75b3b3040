//! Who is calling EWS: a bearer token of the mock Entra (audience Exchange Online), Basic with
//! a seeded password, or NTLMv2 over one connection ([`super::ntlm`]). A refusal is an HTTP
//! 401 offering the enabled schemes (`Basic realm=…`, `NTLM`, `Negotiate`, `Bearer …`) as
//! Exchange does, or a 403.

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

use super::switches::EwsSwitches;
use super::{EwsState, ntlm};
use crate::directory::{DirectoryData, UserSeed};

pub(crate) use crate::exchange_token::Claims;
use crate::exchange_token::{self, EXCHANGE_APP_ID};

/// NTLM state of one connection.
#[derive(Debug, Clone)]
pub(crate) enum NtlmConn {
    /// A CHALLENGE was sent with this server challenge.
    Challenged([u8; 8]),
    /// The connection is authenticated as this user (tenant index, UPN).
    Authenticated(usize, String),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub tenant: usize,
    /// The user (UPN as seeded); `None` for an app-only token.
    pub user: Option<String>,
    /// The app of a bearer token.
    pub app_id: Option<String>,
}

impl Principal {
    pub(crate) fn is_app_only(&self) -> bool {
        self.user.is_none()
    }
}

/// A refusal: the HTTP answer (no SOAP body, as Exchange sends 401s).
#[derive(Debug, Clone)]
pub(crate) struct Denied {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

fn unauthorized(switches: &EwsSwitches, base_url: &str, error: Option<&str>) -> Denied {
    let host = url::Url::parse(base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "127.0.0.1".into());
    let mut headers = Vec::new();
    if switches.ntlm {
        headers.push(("WWW-Authenticate".into(), "Negotiate".into()));
        headers.push(("WWW-Authenticate".into(), "NTLM".into()));
    }
    if switches.basic {
        headers.push(("WWW-Authenticate".into(), format!("Basic realm=\"{host}\"")));
    }
    if switches.bearer {
        let mut bearer = format!(
            "Bearer client_id=\"{EXCHANGE_APP_ID}\", trusted_issuers=\"00000001-0000-0000-c000-000000000000@*\", token_types=\"app_asserted_user_v1 service_asserted_app_v1\", authorization_uri=\"{base_url}/common/oauth2/authorize\""
        );
        if let Some(e) = error {
            bearer.push_str(&format!(", error=\"{e}\""));
        }
        headers.push(("WWW-Authenticate".into(), bearer));
    }
    Denied {
        status: StatusCode::UNAUTHORIZED,
        headers,
        body: String::new(),
    }
}

fn forbidden(text: &str) -> Denied {
    Denied {
        status: StatusCode::FORBIDDEN,
        headers: vec![("X-ErrorText".into(), text.into())],
        body: text.into(),
    }
}

/// The user a Basic or NTLM name means: a UPN, `DOMAIN\user` or a bare user name (matched
/// against the local part of the seeded UPNs).
pub(crate) fn find_user<'d>(
    dir: &'d DirectoryData,
    name: &str,
    domain: &str,
) -> Option<(usize, &'d UserSeed)> {
    let (domain, name) = match name.split_once('\\') {
        Some((d, n)) => (d, n),
        None => (domain, name),
    };
    let name = name.trim();
    dir.tenants.iter().enumerate().find_map(|(t, tenant)| {
        let domain_fits = domain.is_empty()
            || tenant.domain.eq_ignore_ascii_case(domain)
            || tenant
                .domain
                .split('.')
                .next()
                .is_some_and(|first| first.eq_ignore_ascii_case(domain));
        tenant
            .users
            .iter()
            .find(|u| {
                u.upn.eq_ignore_ascii_case(name)
                    || (domain_fits
                        && u.upn
                            .split_once('@')
                            .is_some_and(|(local, _)| local.eq_ignore_ascii_case(name)))
            })
            .map(|u| (t, u))
    })
}

/// The NetBIOS domain name the mock's NTLM challenge names: the first label of the first
/// tenant's domain, upper case (`CONTOSO`).
fn netbios_domain(dir: &DirectoryData) -> String {
    dir.tenants
        .first()
        .and_then(|t| t.domain.split('.').next())
        .unwrap_or("CONTOSO")
        .to_ascii_uppercase()
}

/// Authenticates the request on connection `conn` (NTLM's state lives per connection).
pub(crate) fn authenticate(
    state: &EwsState,
    headers: &HeaderMap,
    conn: Option<u64>,
    now: OffsetDateTime,
) -> Result<Principal, Denied> {
    let switches = state.switches();
    let base_url = state.base_url();
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "" => {
            // An NTLM-authenticated connection stays authenticated.
            if let Some(id) = conn
                && let Some(NtlmConn::Authenticated(tenant, upn)) = state.own().ntlm.get(&id)
            {
                return Ok(Principal {
                    tenant: *tenant,
                    user: Some(upn.clone()),
                    app_id: None,
                });
            }
            Err(unauthorized(&switches, &base_url, None))
        }
        "bearer" if switches.bearer => bearer(state, &switches, &base_url, value, now),
        "basic" if switches.basic => {
            let decoded = STANDARD
                .decode(value)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| unauthorized(&switches, &base_url, None))?;
            let (name, password) = decoded
                .split_once(':')
                .ok_or_else(|| unauthorized(&switches, &base_url, None))?;
            let dir = state.directory.read();
            match find_user(&dir, name, "") {
                Some((tenant, user)) if user.password == password => Ok(Principal {
                    tenant,
                    user: Some(user.upn.clone()),
                    app_id: None,
                }),
                _ => Err(unauthorized(&switches, &base_url, None)),
            }
        }
        "ntlm" | "negotiate" if switches.ntlm => {
            let Some(id) = conn else {
                return Err(unauthorized(&switches, &base_url, None));
            };
            let token = STANDARD
                .decode(value)
                .map_err(|_| unauthorized(&switches, &base_url, None))?;
            match ntlm::message_type(&token) {
                Some(1) => {
                    let mut challenge = [0u8; 8];
                    getrandom::fill(&mut challenge)
                        .map_err(|_| unauthorized(&switches, &base_url, None))?;
                    let dir = state.directory.read();
                    let filetime =
                        u64::try_from((now.unix_timestamp_nanos() / 100) + 116_444_736_000_000_000)
                            .unwrap_or(0);
                    let message =
                        ntlm::challenge_message(&token, challenge, &netbios_domain(&dir), filetime);
                    let mut own = state.own();
                    if own.ntlm.len() > 10_000 {
                        own.ntlm.clear();
                    }
                    own.ntlm.insert(id, NtlmConn::Challenged(challenge));
                    let word = if scheme == "negotiate" {
                        "Negotiate"
                    } else {
                        "NTLM"
                    };
                    Err(Denied {
                        status: StatusCode::UNAUTHORIZED,
                        headers: vec![(
                            "WWW-Authenticate".into(),
                            format!("{word} {}", STANDARD.encode(message)),
                        )],
                        body: String::new(),
                    })
                }
                Some(3) => {
                    let challenge = match state.own().ntlm.remove(&id) {
                        Some(NtlmConn::Challenged(c)) => c,
                        _ => return Err(unauthorized(&switches, &base_url, None)),
                    };
                    let auth = ntlm::parse_authenticate(&token)
                        .ok_or_else(|| unauthorized(&switches, &base_url, None))?;
                    let dir = state.directory.read();
                    let Some((tenant, user)) = find_user(&dir, &auth.user, &auth.domain) else {
                        return Err(unauthorized(&switches, &base_url, None));
                    };
                    if !auth.verify(&user.password, &challenge) {
                        return Err(unauthorized(&switches, &base_url, None));
                    }
                    let upn = user.upn.clone();
                    state
                        .own()
                        .ntlm
                        .insert(id, NtlmConn::Authenticated(tenant, upn.clone()));
                    Ok(Principal {
                        tenant,
                        user: Some(upn),
                        app_id: None,
                    })
                }
                _ => Err(unauthorized(&switches, &base_url, None)),
            }
        }
        _ => Err(unauthorized(&switches, &base_url, None)),
    }
}

fn bearer(
    state: &EwsState,
    switches: &EwsSwitches,
    base_url: &str,
    token: &str,
    now: OffsetDateTime,
) -> Result<Principal, Denied> {
    let invalid = || unauthorized(switches, base_url, Some("invalid_token"));
    let cached = state.own().tokens.get(token).cloned();
    let claims = match cached {
        Some(c) => c,
        None => {
            let claims = exchange_token::decode(&state.decoding, token).map_err(|_| invalid())?;
            let mut own = state.own();
            if own.tokens.len() > 10_000 {
                own.tokens.clear();
            }
            own.tokens.insert(token.to_string(), claims.clone());
            claims
        }
    };
    let dir = state.directory.read();
    let tenant =
        exchange_token::check(&claims, &dir, now.unix_timestamp()).map_err(|_| invalid())?;
    let app_id = claims.app_id();
    if switches.block_apps && !switches.allowed_apps.contains(&app_id) {
        return Err(forbidden(
            "EWS is blocked for this application in this organization: set EWSEnabled and allow-list the app.",
        ));
    }
    if claims.is_app_only() {
        if !claims.has_role("full_access_as_app") {
            return Err(forbidden(
                "The token does not hold the full_access_as_app application permission.",
            ));
        }
        return Ok(Principal {
            tenant,
            user: None,
            app_id: Some(app_id),
        });
    }
    if !claims.has_scope("EWS.AccessAsUser.All") {
        return Err(forbidden(
            "The token does not hold the EWS.AccessAsUser.All delegated permission.",
        ));
    }
    let upn = match (&claims.upn, &claims.oid) {
        (Some(upn), _) => upn.clone(),
        (None, Some(oid)) => dir
            .user_by_oid(tenant, oid)
            .map(|u| u.upn.clone())
            .ok_or_else(invalid)?,
        _ => return Err(invalid()),
    };
    Ok(Principal {
        tenant,
        user: Some(upn),
        app_id: Some(app_id),
    })
}
