//! What Exchange Online's refusals over IMAP, POP and SMTP mean, and how to fix them with the
//! app's real IDs. Exchange says almost nothing: IMAP `NO AUTHENTICATE failed.`, POP `-ERR
//! Authentication failure: unknown user name or bad password.`, SMTP `535 5.7.3 Authentication
//! unsuccessful` for every missing step. When the token's claims are right (checked before
//! connecting, [`super::claims`]), the remaining causes of an app-only refusal are in Exchange:
//! the app's service principal is not registered (`New-ServicePrincipal`), or it has no right
//! on the mailbox (`Add-MailboxPermission`), or the protocol is off for the mailbox
//! (`Set-CASMailbox`). The IDs come from the token: `appid`/`azp` is the registration's client
//! ID and an app-only token's `oid` is the object ID of the enterprise application (the service
//! principal) — the ID `New-ServicePrincipal -ObjectId` needs, not the registration's.

use std::fmt;

use super::claims::TokenClaims;
use super::url::MailProtocol;

/// How a failure should be treated by frontends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Exchange (or the pre-flight check) refused: a permission, right or setting is missing.
    Refused,
    /// Worth retrying later (4xx replies, connection trouble).
    Transient,
    /// Anything else that failed, including a send whose outcome is unknown.
    Failed,
}

/// A failure of IMAP, POP or SMTP explained: a stable `code`, what happened (`message`), and
/// the fix (`hint`). Holds no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MailFailure {
    /// A stable, machine-readable name: `sp_not_registered`, `smtp_auth_disabled_mailbox`, …
    pub code: &'static str,
    pub protocol: MailProtocol,
    pub message: String,
    pub hint: String,
    pub kind: FailureKind,
}

impl fmt::Display for MailFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]: {}", self.protocol, self.code, self.message)
    }
}

impl MailFailure {
    pub fn refused(
        code: &'static str,
        protocol: MailProtocol,
        message: String,
        hint: String,
    ) -> Self {
        Self {
            code,
            protocol,
            message,
            hint,
            kind: FailureKind::Refused,
        }
    }

    pub fn failed(
        code: &'static str,
        protocol: MailProtocol,
        message: String,
        hint: String,
    ) -> Self {
        Self {
            code,
            protocol,
            message,
            hint,
            kind: FailureKind::Failed,
        }
    }

    pub fn transient(
        code: &'static str,
        protocol: MailProtocol,
        message: String,
        hint: String,
    ) -> Self {
        Self {
            code,
            protocol,
            message,
            hint,
            kind: FailureKind::Transient,
        }
    }
}

/// The answer Exchange gives to every authentication refusal of `protocol`.
pub fn bare_refusal(protocol: MailProtocol) -> &'static str {
    match protocol {
        MailProtocol::Imap => "NO AUTHENTICATE failed.",
        MailProtocol::Pop => "-ERR Authentication failure: unknown user name or bad password.",
        MailProtocol::Smtp => "535 5.7.3 Authentication unsuccessful",
    }
}

/// What an explanation knows: the protocol, the mailbox (`user=`), and the token's claims.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    pub protocol: MailProtocol,
    pub mailbox: &'a str,
    pub claims: Option<&'a TokenClaims>,
}

impl Situation<'_> {
    fn app_id(&self) -> &str {
        self.claims
            .and_then(|c| c.app_id.as_deref())
            .unwrap_or("<Application (client) ID>")
    }

    fn sp_object_id(&self) -> &str {
        self.claims
            .filter(|c| c.app_only)
            .and_then(|c| c.object_id.as_deref())
            .unwrap_or("<Object ID of the Enterprise application>")
    }

    fn app_only(&self) -> bool {
        self.claims.is_some_and(|c| c.app_only)
    }

    /// FullAccess for the app's service principal (app-only) or the signed-in user.
    fn mailbox_permission(&self) -> String {
        let who = if self.app_only() {
            self.sp_object_id()
        } else {
            self.claims
                .and_then(|c| c.user.as_deref())
                .unwrap_or("<the user>")
        };
        format!(
            "Add-MailboxPermission -Identity {} -User {who} -AccessRights FullAccess",
            self.mailbox
        )
    }

    fn new_service_principal(&self) -> String {
        format!(
            "New-ServicePrincipal -AppId {} -ObjectId {}",
            self.app_id(),
            self.sp_object_id()
        )
    }

    fn protocol_switch(&self) -> String {
        match self.protocol {
            MailProtocol::Imap => format!(
                "Set-CASMailbox -Identity {} -ImapEnabled $true",
                self.mailbox
            ),
            MailProtocol::Pop => format!(
                "Set-CASMailbox -Identity {} -PopEnabled $true",
                self.mailbox
            ),
            MailProtocol::Smtp => format!(
                "Set-CASMailbox -Identity {} -SmtpClientAuthenticationDisabled $false",
                self.mailbox
            ),
        }
    }
}

/// The server refused XOAUTH2 (IMAP `NO AUTHENTICATE failed.`, POP `-ERR Authentication
/// failure…`, SMTP `535 5.7.3`) with a token whose claims passed the pre-flight check.
pub fn authentication_refused(s: &Situation<'_>, reply: &str) -> MailFailure {
    let p = s.protocol;
    let said = reply.trim();
    if s.app_only() {
        let mut hint = format!(
            "in Exchange Online PowerShell (Connect-ExchangeOnline), register the app's service \
             principal with the Enterprise application's object ID (Entra admin center → \
             Enterprise applications → the app → Object ID; the token's `oid`), not the app \
             registration's: `{}`; then give it the mailbox: `{}`",
            s.new_service_principal(),
            s.mailbox_permission()
        );
        if p == MailProtocol::Pop || p == MailProtocol::Imap {
            // IMAP and POP answer the same for every refusal, the protocol switched off for
            // the mailbox included.
            hint.push_str(&format!(
                "; if both are done, {p} may be off for the mailbox: `{}`",
                s.protocol_switch()
            ));
        }
        if p == MailProtocol::Smtp {
            hint.push_str(&format!(
                "; SMTP AUTH must also be on for the mailbox: `{}`",
                s.protocol_switch()
            ));
        }
        return MailFailure::refused(
            "sp_not_registered",
            p,
            format!(
                "Exchange refused the app-only token for {} (`{said}`): the token's audience, \
                 role and tenant are right, so Exchange does not know the app ({}) as a service \
                 principal, or the service principal has no right on the mailbox",
                s.mailbox,
                s.app_id()
            ),
            hint,
        );
    }
    let user = s
        .claims
        .and_then(|c| c.user.as_deref())
        .unwrap_or(s.mailbox);
    MailFailure::refused(
        "user_refused",
        p,
        format!(
            "Exchange refused the delegated token of {user} for {} (`{said}`)",
            s.mailbox
        ),
        format!(
            "check that {user} may open {} (its own mailbox, or FullAccess on a shared one); that \
             {p} is on for it (`{}`); that no Conditional Access policy or MFA requirement blocks \
             {p} for the user (Entra admin center → Sign-in logs shows the refusal); then sign \
             in again with `exgate login`",
            s.mailbox,
            s.protocol_switch()
        ),
    )
}

/// IMAP: `AUTHENTICATE` succeeded, then `BAD User is authenticated but not connected.` — the
/// service principal (or user) has no right on the mailbox, or IMAP is off for it.
pub fn not_connected(s: &Situation<'_>, reply: &str) -> MailFailure {
    MailFailure::refused(
        "no_mailbox_permission",
        s.protocol,
        format!(
            "Exchange accepted the token but cannot open {} (`{}`): the {} has no right on the \
             mailbox, or {} is off for it",
            s.mailbox,
            reply.trim(),
            if s.app_only() {
                "app's service principal"
            } else {
                "user"
            },
            s.protocol
        ),
        format!(
            "in Exchange Online PowerShell: `{}`; and if {} is off for the mailbox: `{}`",
            s.mailbox_permission(),
            s.protocol,
            s.protocol_switch()
        ),
    )
}

/// A protocol the server says is off for the mailbox (IMAP/POP `…disabled…` answers).
pub fn protocol_disabled(s: &Situation<'_>, reply: &str) -> MailFailure {
    MailFailure::refused(
        match s.protocol {
            MailProtocol::Imap => "imap_disabled",
            MailProtocol::Pop => "pop_disabled",
            MailProtocol::Smtp => "smtp_auth_disabled_mailbox",
        },
        s.protocol,
        format!(
            "{} is off for the mailbox {} (`{}`)",
            s.protocol,
            s.mailbox,
            reply.trim()
        ),
        format!(
            "in Exchange Online PowerShell: `{}` (or Microsoft 365 admin center → Users → \
             the user → Mail → Manage email apps)",
            s.protocol_switch()
        ),
    )
}

/// An SMTP reply, split: `code`, enhanced status (`5.7.139`) if any, text.
fn enhanced(text: &str) -> Option<&str> {
    let first = text.split_whitespace().next()?;
    let parts: Vec<&str> = first.split('.').collect();
    (parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
    .then_some(first)
}

/// Explains an SMTP failure reply (`code` 4xx or 5xx, `text` the reply's lines joined) at any
/// stage: AUTH, MAIL FROM, RCPT TO, DATA.
pub fn smtp_reply(s: &Situation<'_>, code: u16, text: &str) -> MailFailure {
    let p = MailProtocol::Smtp;
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let status = enhanced(text).unwrap_or("");
    let said = format!("{code} {text}");
    if status == "5.7.139" || lower.contains("smtpclientauthentication is disabled") {
        if lower.contains("disabled for the tenant") {
            return MailFailure::refused(
                "smtp_auth_disabled_tenant",
                p,
                format!("SMTP AUTH is turned off for the whole organization (`{said}`)"),
                "in Exchange Online PowerShell: `Set-TransportConfig -SmtpClientAuthenticationDisabled $false` \
                 (or Exchange admin center → Settings → Mail flow → uncheck \"Turn off SMTP AUTH protocol for your organization\"); \
                 a mailbox's own setting (`Set-CASMailbox -SmtpClientAuthenticationDisabled $false`) also overrides it"
                    .into(),
            );
        }
        if lower.contains("disabled for the mailbox") {
            return MailFailure::refused(
                "smtp_auth_disabled_mailbox",
                p,
                format!(
                    "SMTP AUTH is turned off for the mailbox {} (`{said}`)",
                    s.mailbox
                ),
                format!(
                    "in Exchange Online PowerShell: `Set-CASMailbox -Identity {} -SmtpClientAuthenticationDisabled $false` \
                     (or Microsoft 365 admin center → Users → the user → Mail → Manage email apps → Authenticated SMTP)",
                    s.mailbox
                ),
            );
        }
        if lower.contains("security defaults") {
            return MailFailure::refused(
                "security_defaults",
                p,
                format!("the tenant's security defaults block SMTP AUTH (`{said}`)"),
                "turn security defaults off (Entra admin center → Identity → Overview → Properties → \
                 Manage security defaults → Disabled) and protect sign-ins with Conditional Access \
                 policies instead, which can allow SMTP AUTH for this sender"
                    .into(),
            );
        }
        if lower.contains("did not meet the criteria") || lower.contains("conditional access") {
            return MailFailure::refused(
                "conditional_access",
                p,
                format!("a Conditional Access policy blocked SMTP AUTH (`{said}`)"),
                "Entra admin center → Protection → Conditional Access: exclude this sender (or the \
                 app) from the policy that blocks it; the Sign-in logs name the policy"
                    .into(),
            );
        }
        return MailFailure::refused(
            "smtp_auth_refused",
            p,
            format!("Exchange refused SMTP AUTH (`{said}`)"),
            format!(
                "check that SMTP AUTH is on for the organization and the mailbox \
                 (`Set-CASMailbox -Identity {} -SmtpClientAuthenticationDisabled $false`), and that \
                 security defaults or Conditional Access do not block it",
                s.mailbox
            ),
        );
    }
    if status == "5.7.3" || (code == 535 && status.is_empty()) {
        return authentication_refused(s, &said);
    }
    if status == "5.7.57" {
        return MailFailure::refused(
            "not_authenticated",
            p,
            format!("the server took the message as unauthenticated (`{said}`)"),
            "AUTH XOAUTH2 was not done or not accepted before MAIL FROM: the submission port \
             (587, STARTTLS) needs it; check the connection's smtp_url and that the token was \
             accepted"
                .into(),
        );
    }
    if status == "5.2.252" || lower.contains("sendasdenied") {
        return MailFailure::refused(
            "send_as_denied",
            p,
            format!(
                "the sender may not send as the From address (`{said}`); the envelope sender was {}",
                s.mailbox
            ),
            format!(
                "send from the mailbox the token is for, or grant the right: \
                 `Add-RecipientPermission -Identity <From mailbox> -Trustee {} -AccessRights SendAs` \
                 (or FullAccess with `Add-MailboxPermission` for an app's service principal)",
                if s.app_only() {
                    s.sp_object_id().to_owned()
                } else {
                    s.mailbox.to_owned()
                }
            ),
        );
    }
    if status == "5.7.60" || lower.contains("does not have permissions to send as this sender") {
        return MailFailure::refused(
            "send_as_sender_denied",
            p,
            format!("the client may not send as this sender (`{said}`)"),
            format!(
                "the envelope sender and From must be {} (the XOAUTH2 user), or that mailbox needs \
                 Send As on the other: `Add-RecipientPermission -Identity <sender> -Trustee {} -AccessRights SendAs`",
                s.mailbox, s.mailbox
            ),
        );
    }
    if (400..500).contains(&code) {
        return MailFailure::transient(
            "smtp_transient",
            p,
            format!("the SMTP server refused for now (`{said}`)"),
            "try again later; Exchange Online also limits a mailbox to 30 messages a minute".into(),
        );
    }
    MailFailure::failed(
        "smtp_rejected",
        p,
        format!("the SMTP server refused (`{said}`)"),
        "the reply's enhanced status code (5.x.y) says what it refused; check the recipients and the message"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> TokenClaims {
        TokenClaims {
            audiences: vec!["https://outlook.office365.com".into()],
            roles: vec!["SMTP.SendAsApp".into()],
            tenant: Some("9188040d-6c67-4c5b-b112-36a304b66dad".into()),
            app_id: Some("11111111-2222-3333-4444-555555555555".into()),
            object_id: Some("aaaaaaaa-bbbb-cccc-dddd-000000000001".into()),
            app_only: true,
            ..TokenClaims::default()
        }
    }

    #[test]
    fn an_app_only_refusal_names_the_service_principal_with_the_real_ids() {
        let claims = app();
        for protocol in [MailProtocol::Imap, MailProtocol::Pop, MailProtocol::Smtp] {
            let s = Situation {
                protocol,
                mailbox: "sales@contoso.com",
                claims: Some(&claims),
            };
            let e = authentication_refused(&s, bare_refusal(protocol));
            assert_eq!(e.code, "sp_not_registered");
            assert_eq!(e.kind, FailureKind::Refused);
            assert!(
                e.hint.contains(
                    "New-ServicePrincipal -AppId 11111111-2222-3333-4444-555555555555 -ObjectId aaaaaaaa-bbbb-cccc-dddd-000000000001"
                ),
                "{}",
                e.hint
            );
            assert!(e.hint.contains("Add-MailboxPermission -Identity sales@contoso.com -User aaaaaaaa-bbbb-cccc-dddd-000000000001 -AccessRights FullAccess"));
        }
        let s = Situation {
            protocol: MailProtocol::Imap,
            mailbox: "sales@contoso.com",
            claims: Some(&claims),
        };
        let e = not_connected(&s, "BAD User is authenticated but not connected.");
        assert_eq!(e.code, "no_mailbox_permission");
        assert!(e.hint.contains("-ImapEnabled $true"));
    }

    #[test]
    fn smtp_codes_map_to_their_causes() {
        let claims = app();
        let s = Situation {
            protocol: MailProtocol::Smtp,
            mailbox: "sales@contoso.com",
            claims: Some(&claims),
        };
        for (code, text, want) in [
            (
                535,
                "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
                "smtp_auth_disabled_tenant",
            ),
            (
                535,
                "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
                "smtp_auth_disabled_mailbox",
            ),
            (
                535,
                "5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator.",
                "security_defaults",
            ),
            (
                535,
                "5.7.3 Authentication unsuccessful",
                "sp_not_registered",
            ),
            (
                530,
                "5.7.57 Client not authenticated to send mail.",
                "not_authenticated",
            ),
            (
                554,
                "5.2.252 SendAsDenied; sales@contoso.com not allowed to send as ceo@contoso.com",
                "send_as_denied",
            ),
            (
                550,
                "5.7.60 SMTP; Client does not have permissions to send as this sender",
                "send_as_sender_denied",
            ),
            (
                451,
                "4.7.500 Server busy. Please try again later",
                "smtp_transient",
            ),
            (
                550,
                "5.1.10 RESOLVER.ADR.RecipientNotFound",
                "smtp_rejected",
            ),
        ] {
            let e = smtp_reply(&s, code, text);
            assert_eq!(e.code, want, "{text}");
            assert!(!e.hint.is_empty());
        }
        let e = smtp_reply(
            &s,
            535,
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
        );
        assert!(
            e.hint
                .contains("Set-TransportConfig -SmtpClientAuthenticationDisabled $false")
        );
        let e = smtp_reply(
            &s,
            535,
            "5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy.",
        );
        assert!(e.hint.contains("Entra admin center"));
    }
}
