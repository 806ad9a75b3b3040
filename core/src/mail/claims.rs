//! The pre-flight check of an access token before it is offered to IMAP, POP or SMTP: its
//! payload is decoded locally (no signature check: Exchange does that; this only catches the
//! mistakes Exchange would answer with a bare `AUTHENTICATE failed`), and a token for the wrong
//! audience, without the protocol's role or scope, or from another tenant is refused with the
//! fix before any connection is made. The token itself is never printed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::explain::MailFailure;
use super::url::MailProtocol;
use crate::model::{Cloud, Tenant};
use crate::secret::Secret;

/// Office 365 Exchange Online's application ID: a token's `aud` may be it instead of the URL.
pub const EXCHANGE_ONLINE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";

/// What exgate reads from an access token's payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenClaims {
    /// `aud`: one or more audiences.
    pub audiences: Vec<String>,
    /// `roles` (application permissions of an app-only token).
    pub roles: Vec<String>,
    /// `scp`, split on spaces (delegated permissions).
    pub scopes: Vec<String>,
    /// `tid`.
    pub tenant: Option<String>,
    /// `appid` (v1 tokens) or `azp` (v2): the app registration's Application (client) ID.
    pub app_id: Option<String>,
    /// `oid`: for an app-only token, the object ID of the app's service principal (the
    /// enterprise application) in the tenant — not the registration's object ID; for a
    /// delegated token, the user's.
    pub object_id: Option<String>,
    /// `upn`, `preferred_username` or `unique_name` of a delegated token.
    pub user: Option<String>,
    /// App-only: `idtyp = app`, or roles without scopes.
    pub app_only: bool,
}

impl TokenClaims {
    /// Decodes the payload of a JWT. `None` when the token is not a JWT (an opaque token:
    /// nothing can be checked locally).
    pub fn decode(token: &Secret) -> Option<TokenClaims> {
        let payload = token.expose().split('.').nth(1)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let audiences = match v.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let roles: Vec<String> = v
            .get("roles")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let scopes: Vec<String> = text("scp")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let app_only = text("idtyp").map_or(scopes.is_empty(), |t| t == "app");
        Some(TokenClaims {
            audiences,
            roles,
            scopes,
            tenant: text("tid"),
            app_id: text("appid").or_else(|| text("azp")),
            object_id: text("oid"),
            user: text("upn")
                .or_else(|| text("preferred_username"))
                .or_else(|| text("unique_name")),
            app_only,
        })
    }
}

/// The app-only role a protocol needs (an application permission of Office 365 Exchange Online).
pub fn app_role(protocol: MailProtocol) -> &'static str {
    match protocol {
        MailProtocol::Imap => "IMAP.AccessAsApp",
        MailProtocol::Pop => "POP.AccessAsApp",
        MailProtocol::Smtp => "SMTP.SendAsApp",
    }
}

/// The delegated scope a protocol needs.
pub fn delegated_scope(protocol: MailProtocol) -> &'static str {
    match protocol {
        MailProtocol::Imap => "IMAP.AccessAsUser.All",
        MailProtocol::Pop => "POP.AccessAsUser.All",
        MailProtocol::Smtp => "SMTP.Send",
    }
}

/// What the connection expects of its tokens.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub protocol: MailProtocol,
    pub cloud: Cloud,
    pub tenant: &'a Tenant,
    /// The connection is app-only (client credentials).
    pub app_only: bool,
}

/// Whether an audience is Exchange Online's in `cloud` (its URL, with or without a trailing
/// slash, or its application ID).
fn is_exchange_audience(aud: &str, cloud: Cloud) -> bool {
    let want = crate::model::Resource::Imap.identifier(cloud);
    aud.trim_end_matches('/').eq_ignore_ascii_case(want)
        || aud.eq_ignore_ascii_case(EXCHANGE_ONLINE_APP_ID)
}

/// Checks `claims` against what `expected` needs; the failure names the fix.
pub fn check(claims: &TokenClaims, expected: &Expected<'_>) -> Result<(), MailFailure> {
    let protocol = expected.protocol;
    let resource = crate::model::Resource::Imap.identifier(expected.cloud);
    if !claims
        .audiences
        .iter()
        .any(|a| is_exchange_audience(a, expected.cloud))
    {
        return Err(MailFailure::refused(
            "wrong_audience",
            protocol,
            format!(
                "the token is for {} but {protocol} needs a token for Office 365 Exchange Online ({resource})",
                if claims.audiences.is_empty() {
                    "no audience".to_owned()
                } else {
                    claims.audiences.join(", ")
                },
            ),
            format!(
                "ask for `{resource}/.default` (app-only) or `{resource}/{}` (delegated), not a \
                 Microsoft Graph scope: exgate does this for the connection's IMAP, POP and SMTP \
                 tokens; a token from elsewhere (`exgate token --resource {}`) must be for that resource",
                delegated_scope(protocol),
                protocol.as_str().to_ascii_lowercase()
            ),
        ));
    }
    if let (Tenant::Id(want), Some(tid)) = (expected.tenant, &claims.tenant)
        && !tid.eq_ignore_ascii_case(&want.to_string())
    {
        return Err(MailFailure::refused(
            "wrong_tenant",
            protocol,
            format!("the token was issued by tenant {tid}, not the connection's tenant {want}"),
            "sign in against the connection's tenant (check the connection's --tenant and the \
             account you signed in with: a guest account's home tenant is not the mailbox's)"
                .into(),
        ));
    }
    let app_id = claims.app_id.as_deref().unwrap_or("<client ID>");
    if expected.app_only || claims.app_only {
        let role = app_role(protocol);
        if !claims.roles.iter().any(|r| r == role) {
            return Err(MailFailure::refused(
                "missing_role",
                protocol,
                format!(
                    "the app-only token has no {role} role{}: Exchange would answer only \
                     `{}`",
                    if claims.roles.is_empty() {
                        " (it has no roles at all)".to_owned()
                    } else {
                        format!(" (it has {})", claims.roles.join(", "))
                    },
                    super::explain::bare_refusal(protocol)
                ),
                format!(
                    "in the Entra admin center, App registrations → the app ({app_id}) → API \
                     permissions → Add a permission → APIs my organization uses → \"Office 365 \
                     Exchange Online\" → Application permissions → {role}; then Grant admin \
                     consent. New roles reach new tokens only (exgate fetches one on the next try)"
                ),
            ));
        }
    } else {
        let scope = delegated_scope(protocol);
        if !claims.scopes.iter().any(|s| s.eq_ignore_ascii_case(scope)) {
            return Err(MailFailure::refused(
                "missing_scope",
                protocol,
                format!(
                    "the delegated token has no {scope} scope (it has {}): Exchange would answer \
                     only `{}`",
                    if claims.scopes.is_empty() {
                        "none".to_owned()
                    } else {
                        claims.scopes.join(" ")
                    },
                    super::explain::bare_refusal(protocol)
                ),
                format!(
                    "add the delegated permission \"Office 365 Exchange Online\" → {scope} to the \
                     app ({app_id}) under API permissions (grant consent if users may not), then \
                     sign in again with `exgate login` so the token carries {resource}/{scope}"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An unsigned JWT with `payload` (tests only).
    pub(crate) fn jwt(payload: &Value) -> Secret {
        let enc = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        Secret::new(format!(
            "{}.{}.sig",
            enc(br#"{"alg":"RS256","typ":"JWT"}"#),
            enc(payload.to_string().as_bytes())
        ))
    }

    const TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

    fn expected(protocol: MailProtocol, app_only: bool, tenant: &Tenant) -> Expected<'_> {
        Expected {
            protocol,
            cloud: Cloud::Global,
            tenant,
            app_only,
        }
    }

    #[test]
    fn an_app_only_token_needs_the_audience_the_role_and_the_tenant() {
        let tenant: Tenant = TENANT.parse().unwrap();
        let good = TokenClaims::decode(&jwt(&serde_json::json!({
            "aud": "https://outlook.office365.com", "tid": TENANT, "idtyp": "app",
            "appid": "11111111-2222-3333-4444-555555555555", "oid": "aaaaaaaa-0000-0000-0000-000000000001",
            "roles": ["IMAP.AccessAsApp", "SMTP.SendAsApp"]
        })))
        .unwrap();
        assert!(good.app_only);
        check(&good, &expected(MailProtocol::Imap, true, &tenant)).unwrap();
        check(&good, &expected(MailProtocol::Smtp, true, &tenant)).unwrap();
        let e = check(&good, &expected(MailProtocol::Pop, true, &tenant)).unwrap_err();
        assert_eq!(e.code, "missing_role");
        assert!(e.message.contains("POP.AccessAsApp"), "{e}");
        assert!(e.hint.contains("Office 365 Exchange Online"), "{}", e.hint);
        assert!(e.hint.contains("11111111-2222-3333-4444-555555555555"));

        let mut graph = good.clone();
        graph.audiences = vec!["https://graph.microsoft.com".into()];
        let e = check(&graph, &expected(MailProtocol::Imap, true, &tenant)).unwrap_err();
        assert_eq!(e.code, "wrong_audience");
        let mut by_id = good.clone();
        by_id.audiences = vec![EXCHANGE_ONLINE_APP_ID.into()];
        check(&by_id, &expected(MailProtocol::Imap, true, &tenant)).unwrap();

        let other: Tenant = "00000000-0000-0000-0000-0000000000aa".parse().unwrap();
        let e = check(&good, &expected(MailProtocol::Imap, true, &other)).unwrap_err();
        assert_eq!(e.code, "wrong_tenant");
        // A domain cannot be compared with a tenant ID locally.
        let domain: Tenant = "contoso.onmicrosoft.com".parse().unwrap();
        check(&good, &expected(MailProtocol::Imap, true, &domain)).unwrap();
    }

    #[test]
    fn a_delegated_token_needs_the_scope() {
        let tenant = Tenant::Organizations;
        let claims = TokenClaims::decode(&jwt(&serde_json::json!({
            "aud": "https://outlook.office365.com/", "tid": TENANT,
            "scp": "IMAP.AccessAsUser.All offline_access", "upn": "adele@contoso.com"
        })))
        .unwrap();
        assert!(!claims.app_only);
        check(&claims, &expected(MailProtocol::Imap, false, &tenant)).unwrap();
        let e = check(&claims, &expected(MailProtocol::Smtp, false, &tenant)).unwrap_err();
        assert_eq!(e.code, "missing_scope");
        assert!(e.message.contains("SMTP.Send"));
        assert!(!e.to_string().contains("eyJ"));
    }

    #[test]
    fn what_is_not_a_jwt_decodes_to_nothing() {
        for t in ["", "opaque", "a.!!!.c", "a.e30", "a.bm90IGpzb24.c"] {
            let c = TokenClaims::decode(&Secret::new(t));
            assert!(
                c.is_none() || c == Some(TokenClaims::default()) || t == "a.e30",
                "{t}"
            );
        }
    }
}
