//! Bearer tokens for Exchange Online (EWS, IMAP, POP, SMTP), checked as Exchange checks them:
//! the mock Entra's RS256 signature, the audience (`https://outlook.office365.com`, or Exchange
//! Online's application ID as v1 tokens carry it), the lifetime (with Entra's five minutes of
//! clock skew) and a tenant the directory knows. What a token may then do (scopes, roles,
//! mailbox rights) is each protocol mock's business.
//!
//! The EWS mock and the mail protocols share this one check, so a token Exchange would refuse
//! over one is refused over the others too.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::directory::DirectoryData;

/// Exchange Online's application ID: v1 tokens may carry it as `aud`.
pub(crate) const EXCHANGE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";

/// The claims the Exchange mocks read.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Claims {
    #[serde(default)]
    pub aud: Option<String>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub tid: Option<String>,
    #[serde(default)]
    pub oid: Option<String>,
    #[serde(default)]
    pub upn: Option<String>,
    #[serde(default)]
    pub scp: Option<String>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    #[serde(default)]
    pub appid: Option<String>,
    #[serde(default)]
    pub idtyp: Option<String>,
}

impl Claims {
    /// An app-only token: `idtyp=app`, or no `scp` at all.
    pub(crate) fn is_app_only(&self) -> bool {
        self.idtyp.as_deref() == Some("app") || self.scp.is_none()
    }

    /// Whether the delegated scopes (`scp`) hold `scope`, ignoring case.
    pub(crate) fn has_scope(&self, scope: &str) -> bool {
        self.scp
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .any(|s| s.eq_ignore_ascii_case(scope))
    }

    /// Whether the application roles hold `role`, ignoring case.
    pub(crate) fn has_role(&self, role: &str) -> bool {
        self.roles
            .iter()
            .flatten()
            .any(|r| r.eq_ignore_ascii_case(role))
    }

    /// The client ID of the app the token was issued to, lower case.
    pub(crate) fn app_id(&self) -> String {
        self.appid.clone().unwrap_or_default().to_ascii_lowercase()
    }
}

/// Why a token is not one Exchange Online accepts (Exchange never says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenProblem {
    #[error("the token is not a JWT signed by the mock Entra")]
    Signature,
    #[error("the token's audience is not Exchange Online")]
    Audience,
    #[error("the token has expired or is not valid yet")]
    Lifetime,
    #[error("the token's tenant is unknown")]
    Tenant,
}

/// The signature only: the claims of a token the mock Entra signed (nothing else checked).
pub(crate) fn decode(decoding: &DecodingKey, token: &str) -> Result<Claims, TokenProblem> {
    if token.split('.').count() != 3 {
        return Err(TokenProblem::Signature);
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Claims>(token, decoding, &validation)
        .map(|data| data.claims)
        .map_err(|_| TokenProblem::Signature)
}

/// The checks after the signature: audience, lifetime (`now` in Unix seconds) and tenant;
/// answers the tenant's index in the directory.
pub(crate) fn check(claims: &Claims, dir: &DirectoryData, now: i64) -> Result<usize, TokenProblem> {
    let aud = claims
        .aud
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/');
    if !aud.eq_ignore_ascii_case("https://outlook.office365.com")
        && !aud.eq_ignore_ascii_case("https://outlook.office.com")
        && !aud.eq_ignore_ascii_case(EXCHANGE_APP_ID)
    {
        return Err(TokenProblem::Audience);
    }
    if claims.exp.is_none_or(|exp| exp.saturating_add(300) <= now)
        || claims.nbf.is_some_and(|nbf| nbf.saturating_sub(300) > now)
    {
        return Err(TokenProblem::Lifetime);
    }
    claims
        .tid
        .as_deref()
        .and_then(|tid| dir.tenant_index_by_tid(tid))
        .ok_or(TokenProblem::Tenant)
}
