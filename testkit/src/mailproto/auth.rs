//! Who may open which mailbox over IMAP, POP and SMTP, decided as Exchange Online decides it.
//!
//! XOAUTH2 (`user=<mailbox>\x01auth=Bearer <token>\x01\x01`, base64): the token must be one
//! Exchange accepts ([`crate::exchange_token`]: signature, audience, lifetime, tenant), then
//! - app-only: the protocol's role (`IMAP.AccessAsApp`, `POP.AccessAsApp`, `SMTP.SendAsApp`),
//!   the app's service principal registered in Exchange (`New-ServicePrincipal`, matched by the
//!   token's `oid`), and FullAccess for it on the `user=` mailbox (`Add-MailboxPermission`);
//! - delegated: the protocol's scope (`IMAP.AccessAsUser.All`, `POP.AccessAsUser.All`,
//!   `SMTP.Send`), and the `user=` mailbox being the signed-in user's or one they have
//!   FullAccess on.
//!
//! A token that passes the token checks but names a mailbox the caller may not open is
//! accepted by IMAP's AUTHENTICATE and only the next command fails ("User is authenticated but
//! not connected."): [`Granted::connected`] is `false`. POP and SMTP refuse it at once.
//!
//! PLAIN/LOGIN (and IMAP `LOGIN`, POP `USER`/`PASS`) take a user's seeded password, as
//! Exchange Server on premises does: they exist for the tests of exgate's password bridge.
//! Exchange Online no longer accepts passwords for IMAP and POP.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{MailProtocol, MailState};
use crate::directory::{MailboxRight, TenantSeed};
use crate::exchange_token;

/// A refusal; each protocol words it as Exchange does (and Exchange never says more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Bad or unsuitable credentials, for whatever reason.
    Failed,
    /// SMTP AUTH disabled for the mailbox (`535 5.7.139 … for the Mailbox.`).
    SmtpDisabledMailbox,
    /// SMTP AUTH disabled for the organization (`535 5.7.139 … for the Tenant.`).
    SmtpDisabledTenant,
    /// Security defaults block SMTP AUTH with a password (`535 5.7.139 … security defaults`).
    SecurityDefaults,
}

impl Refusal {
    /// The outcome recorded in [`super::MailSession::outcome`].
    pub(crate) fn outcome(self) -> &'static str {
        match self {
            Refusal::Failed => "failed",
            Refusal::SmtpDisabledMailbox => "smtp_disabled_mailbox",
            Refusal::SmtpDisabledTenant => "smtp_disabled_tenant",
            Refusal::SecurityDefaults => "security_defaults",
        }
    }
}

/// An authenticated session's mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Granted {
    /// The mailbox's address as the directory spells it.
    pub mailbox: String,
    /// The signed-in user (UPN) of a delegated token or a password; `None` for app-only.
    pub user: Option<String>,
    /// The app-only token's service principal (object ID).
    pub service_principal: Option<String>,
    /// `false`: authenticated, but the mailbox may not be opened (IMAP answers the next
    /// command with `BAD User is authenticated but not connected.`).
    pub connected: bool,
}

impl Granted {
    pub(crate) fn app_only(&self) -> bool {
        self.user.is_none()
    }
}

/// The `user=` and token of an XOAUTH2 initial response (base64), or `None` when it is not
/// one.
pub(crate) fn decode_xoauth2(b64: &str) -> Option<(String, String)> {
    parse_xoauth2(&STANDARD.decode(b64.trim()).ok()?)
}

/// The `user=` and token of a decoded XOAUTH2 response.
pub(crate) fn parse_xoauth2(raw: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut user = None;
    let mut token = None;
    for field in text.split('\x01') {
        if let Some(u) = field.strip_prefix("user=") {
            user = Some(u.trim().to_string());
        } else if let Some(auth) = field.strip_prefix("auth=") {
            let (scheme, value) = auth.split_once(' ')?;
            if scheme.eq_ignore_ascii_case("bearer") {
                token = Some(value.trim().to_string());
            }
        }
    }
    Some((user?, token?))
}

/// `(authzid, authcid, password)` of a SASL PLAIN response (base64).
pub(crate) fn decode_plain(b64: &str) -> Option<(String, String, String)> {
    parse_plain(&STANDARD.decode(b64.trim()).ok()?)
}

/// `(authzid, authcid, password)` of a decoded SASL PLAIN response.
pub(crate) fn parse_plain(raw: &[u8]) -> Option<(String, String, String)> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = text.split('\0');
    let authz = parts.next()?.to_string();
    let authc = parts.next()?.to_string();
    let password = parts.next()?.to_string();
    if parts.next().is_some() {
        return None;
    }
    Some((authz, authc, password))
}

fn role(protocol: MailProtocol) -> &'static str {
    match protocol {
        MailProtocol::Imap => "IMAP.AccessAsApp",
        MailProtocol::Pop => "POP.AccessAsApp",
        MailProtocol::Smtp => "SMTP.SendAsApp",
    }
}

fn scope(protocol: MailProtocol) -> &'static str {
    match protocol {
        MailProtocol::Imap => "IMAP.AccessAsUser.All",
        MailProtocol::Pop => "POP.AccessAsUser.All",
        MailProtocol::Smtp => "SMTP.Send",
    }
}

/// XOAUTH2: the token for mailbox `user`.
pub(crate) fn authorize_bearer(
    state: &MailState,
    protocol: MailProtocol,
    user: &str,
    token: &str,
) -> Result<Granted, Refusal> {
    let claims = exchange_token::decode(&state.decoding, token).map_err(|_| Refusal::Failed)?;
    let dir = state.directory.read();
    let t = exchange_token::check(&claims, &dir, state.clock.now().unix_timestamp())
        .map_err(|_| Refusal::Failed)?;
    let tenant = dir.tenant(t).ok_or(Refusal::Failed)?;
    let target = tenant.entry(user).ok_or(Refusal::Failed)?;
    if target.object_id.eq_ignore_ascii_case(user.trim()) {
        // `user=` names a mailbox by address, not by object ID.
        return Err(Refusal::Failed);
    }
    let mut service_principal = None;
    let (signed_in, may_open) = if claims.is_app_only() {
        if !claims.has_role(role(protocol)) {
            return Err(Refusal::Failed);
        }
        let oid = claims.oid.as_deref().unwrap_or_default();
        let sp = tenant
            .exchange_service_principals
            .iter()
            .find(|sp| sp.registered && sp.object_id.eq_ignore_ascii_case(oid.trim()))
            .ok_or(Refusal::Failed)?;
        let may_open = sp
            .full_access
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&target.address));
        service_principal = Some(sp.object_id.clone());
        (None, may_open)
    } else {
        if !claims.has_scope(scope(protocol)) {
            return Err(Refusal::Failed);
        }
        let upn = match (&claims.upn, &claims.oid) {
            (Some(upn), _) => upn.clone(),
            (None, Some(oid)) => dir
                .user_by_oid(t, oid)
                .map(|u| u.upn.clone())
                .ok_or(Refusal::Failed)?,
            _ => return Err(Refusal::Failed),
        };
        let may_open = may_open_as_user(tenant, &upn, &target.address);
        (Some(upn), may_open)
    };
    protocol_allowed(tenant, protocol, target.exchange, false)?;
    let granted = Granted {
        mailbox: target.address,
        user: signed_in,
        service_principal,
        connected: may_open,
    };
    match (protocol, may_open) {
        (_, true) | (MailProtocol::Imap, false) => Ok(granted),
        _ => Err(Refusal::Failed),
    }
}

/// A password (PLAIN, LOGIN, IMAP `LOGIN`, POP `USER`/`PASS`): the user's seeded password;
/// `authzid` may name another mailbox the user has FullAccess on.
pub(crate) fn authorize_password(
    state: &MailState,
    protocol: MailProtocol,
    authzid: Option<&str>,
    user: &str,
    password: &str,
) -> Result<Granted, Refusal> {
    let dir = state.directory.read();
    let (tenant, seeded) = dir
        .tenants
        .iter()
        .find_map(|t| {
            t.users
                .iter()
                .find(|u| u.upn.eq_ignore_ascii_case(user.trim()))
                .map(|u| (t, u))
        })
        .ok_or(Refusal::Failed)?;
    if seeded.password != password {
        return Err(Refusal::Failed);
    }
    let wanted = authzid
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or(&seeded.upn);
    let target = tenant.entry(wanted).ok_or(Refusal::Failed)?;
    if !may_open_as_user(tenant, &seeded.upn, &target.address) {
        return Err(Refusal::Failed);
    }
    protocol_allowed(tenant, protocol, target.exchange, true)?;
    Ok(Granted {
        mailbox: target.address,
        user: Some(seeded.upn.clone()),
        service_principal: None,
        connected: true,
    })
}

/// Whether the session may send as `from`: its own mailbox, one its user holds SendAs or
/// FullAccess on, or one its service principal has FullAccess on.
pub(crate) fn may_send_as(state: &MailState, granted: &Granted, from: &str) -> bool {
    let from = from.trim();
    if from.eq_ignore_ascii_case(&granted.mailbox) {
        return true;
    }
    let dir = state.directory.read();
    dir.tenants
        .iter()
        .any(|t| match (&granted.user, &granted.service_principal) {
            (Some(upn), _) => {
                t.has_right(from, upn, MailboxRight::SendAs)
                    || t.has_right(from, upn, MailboxRight::FullAccess)
            }
            (None, Some(sp)) => t.exchange_service_principals.iter().any(|p| {
                p.registered
                    && p.object_id.eq_ignore_ascii_case(sp)
                    && p.full_access.iter().any(|m| m.eq_ignore_ascii_case(from))
            }),
            (None, None) => false,
        })
}

/// The user's own mailbox, or one they have FullAccess on.
fn may_open_as_user(tenant: &TenantSeed, upn: &str, mailbox: &str) -> bool {
    upn.eq_ignore_ascii_case(mailbox) || tenant.has_right(mailbox, upn, MailboxRight::FullAccess)
}

/// `Set-CASMailbox` and the organization's SMTP settings; security defaults block SMTP AUTH
/// with a password (they block legacy authentication, not OAuth).
fn protocol_allowed(
    tenant: &TenantSeed,
    protocol: MailProtocol,
    settings: crate::directory::ExchangeSettings,
    password: bool,
) -> Result<(), Refusal> {
    match protocol {
        MailProtocol::Imap if !settings.imap_enabled => Err(Refusal::Failed),
        MailProtocol::Pop if !settings.pop_enabled => Err(Refusal::Failed),
        MailProtocol::Smtp if password && tenant.organization.security_defaults => {
            Err(Refusal::SecurityDefaults)
        }
        MailProtocol::Smtp if !settings.smtp_client_auth_enabled => {
            Err(Refusal::SmtpDisabledMailbox)
        }
        MailProtocol::Smtp if !tenant.organization.smtp_client_auth_enabled => {
            Err(Refusal::SmtpDisabledTenant)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_responses_decode_and_garbage_does_not() {
        let b64 = STANDARD
            .encode("user=adele@contoso.onmicrosoft.com\x01auth=Bearer abc.def.ghi\x01\x01");
        assert_eq!(
            decode_xoauth2(&b64),
            Some(("adele@contoso.onmicrosoft.com".into(), "abc.def.ghi".into()))
        );
        assert_eq!(decode_xoauth2("!!!"), None);
        assert_eq!(decode_xoauth2(&STANDARD.encode("user=x\x01\x01")), None);
        let plain = STANDARD.encode("\0adele\0secret");
        assert_eq!(
            decode_plain(&plain),
            Some((String::new(), "adele".into(), "secret".into()))
        );
        assert_eq!(decode_plain(&STANDARD.encode("only")), None);
    }
}
