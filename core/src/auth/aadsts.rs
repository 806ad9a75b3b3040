//! The AADSTS catalogue: what an Entra ID error code means and what to do about it.
//! `docs/troubleshooting.md` is checked against this table by a test.

/// What a code means and how to fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aadsts {
    pub code: u32,
    /// What went wrong, in a sentence.
    pub meaning: &'static str,
    /// What to do, concretely.
    pub fix: &'static str,
    /// Whether only the user signing in again clears it (the account is marked "needs sign-in").
    pub needs_sign_in: bool,
}

const fn entry(code: u32, meaning: &'static str, fix: &'static str, needs_sign_in: bool) -> Aadsts {
    Aadsts {
        code,
        meaning,
        fix,
        needs_sign_in,
    }
}

/// Every code exgate explains, in ascending order.
pub const CATALOGUE: &[Aadsts] = &[
    entry(
        50011,
        "the redirect URI sent does not match any redirect URI registered for the app",
        "add the exact redirect URI (shown by `exgate connection show`) under Authentication > Platform configurations in the app registration, or set the connection's redirect_uri to one that is registered",
        false,
    ),
    entry(
        50034,
        "the user account does not exist in this tenant",
        "sign in with an account of this tenant, or add the user (as a guest) to the tenant; check the connection's tenant",
        true,
    ),
    entry(
        50076,
        "multi-factor authentication is required for this sign-in",
        "sign in again interactively (`exgate login`, browser or device code) so the user can complete MFA; the password flow cannot do MFA",
        true,
    ),
    entry(
        50126,
        "the user name or password is wrong",
        "check the user name (UPN) and password; if they are right, the account may be federated or need MFA — use the browser or device-code sign-in instead",
        true,
    ),
    entry(
        53003,
        "access was blocked by a Conditional Access policy",
        "ask the tenant's administrator which Conditional Access policy blocked the sign-in (Entra admin center > Sign-in logs, by correlation ID) and exempt or satisfy it",
        true,
    ),
    entry(
        54005,
        "the authorization code was already redeemed",
        "start the sign-in again; each code can be used once",
        false,
    ),
    entry(
        65001,
        "the user or an administrator has not consented to the permissions the app asks for",
        "grant admin consent under API permissions in the app registration (Grant admin consent for <tenant>), or sign in interactively so the user can consent; then sign in again",
        true,
    ),
    entry(
        65004,
        "the user declined to consent to the app's permissions",
        "sign in again and accept the consent prompt, or have an administrator grant admin consent",
        true,
    ),
    entry(
        70008,
        "the refresh token or authorization code has expired or was revoked",
        "sign in again; a password change or an administrator revoking sessions also causes this",
        true,
    ),
    entry(
        70011,
        "the requested scope is invalid (for example scopes of two resources in one request)",
        "request scopes of one resource at a time; check the connection's scopes",
        false,
    ),
    entry(
        70019,
        "the device code expired before the user completed sign-in",
        "run the device-code sign-in again and enter the code within 15 minutes",
        false,
    ),
    entry(
        70043,
        "the refresh token expired because of a Conditional Access sign-in frequency policy",
        "sign in again; the tenant's sign-in frequency policy decides how often this is needed",
        true,
    ),
    entry(
        90002,
        "the tenant was not found",
        "check the connection's tenant (Directory (tenant) ID or a verified domain) and its cloud (global, usgov, china)",
        false,
    ),
    entry(
        700016,
        "the application (client) ID was not found in this tenant",
        "check the connection's client ID and tenant: copy the Application (client) ID from the app registration's Overview page; a multi-tenant app must be consented in this tenant first",
        false,
    ),
    entry(
        700024,
        "the client assertion is not within its valid time range",
        "check this machine's clock (it must be within minutes of real time)",
        false,
    ),
    entry(
        700025,
        "a public client sent a client secret or assertion",
        "remove the credential from the connection (`exgate connection edit NAME --remove-credential`), or turn the app into a confidential (web) app in Entra",
        false,
    ),
    entry(
        700027,
        "the client assertion's signature could not be verified against the app's certificates",
        "upload the certificate (the public .cer/.pem) under Certificates & secrets in the app registration; check that the connection uses the matching private key",
        false,
    ),
    entry(
        700082,
        "the refresh token expired because it was not used for 90 days",
        "sign in again",
        true,
    ),
    entry(
        900144,
        "a required parameter is missing from the request",
        "this is a bug in exgate or a proxy that rewrites requests; please report it with the correlation ID",
        false,
    ),
    entry(
        1002012,
        "client credentials must ask for the resource's `/.default` scope",
        "this is set automatically for oauth2-app-only connections; report a bug with the correlation ID",
        false,
    ),
    entry(
        7000215,
        "the client secret sent is not a valid secret of this app (a mistyped or cut-off value, a secret of another app, or a secret's ID instead of its value)",
        "copy the secret's Value (not its Secret ID) from Certificates & secrets of this app's registration (shown only when it is created; create a new secret if it is lost), then `exgate connection edit NAME --client-secret-file FILE`",
        false,
    ),
    entry(
        7000218,
        "the app requires a client secret or certificate, or public client flows are disabled",
        "for device-code or password sign-in turn on Allow public client flows (Authentication > Advanced settings) in the app registration; otherwise give the connection a client secret or certificate",
        false,
    ),
    entry(
        7000222,
        "the client secret has expired",
        "create a new client secret under Certificates & secrets, then `exgate connection edit NAME --client-secret-file FILE`; consider a certificate instead",
        false,
    ),
];

/// The entry for `code`, if exgate knows it.
pub fn lookup(code: u32) -> Option<&'static Aadsts> {
    CATALOGUE
        .binary_search_by_key(&code, |e| e.code)
        .ok()
        .and_then(|i| CATALOGUE.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_sorted_and_covers_the_design_list() {
        assert!(CATALOGUE.windows(2).all(|w| w[0].code < w[1].code));
        for code in [
            7000215, 7000222, 700016, 90002, 65001, 50126, 50076, 53003, 70043, 700082, 70008,
            7000218, 700025, 50034, 900144,
        ] {
            assert!(lookup(code).is_some(), "{code} missing");
        }
        assert!(lookup(1).is_none());
        // exgate refuses a secret's ID when the connection is added, so Entra's 7000215 means
        // a wrong value: the fix must not claim the ID was sent.
        let wrong_secret = lookup(7000215).unwrap();
        assert!(!wrong_secret.fix.contains("this is the secret's ID"));
        assert!(
            wrong_secret
                .fix
                .starts_with("copy the secret's Value (not its Secret ID)")
        );
    }

    /// docs/troubleshooting.md lists every code with the catalogue's meaning and fix, and no
    /// code the catalogue does not know.
    #[test]
    fn the_troubleshooting_page_matches_the_catalogue() {
        let page = include_str!("../../../docs/troubleshooting.md");
        for e in CATALOGUE {
            let section = page
                .split(&format!("## AADSTS{}\n", e.code))
                .nth(1)
                .unwrap_or_else(|| {
                    panic!("AADSTS{} is missing from docs/troubleshooting.md", e.code)
                });
            let section = section.split("\n## ").next().unwrap_or_default();
            assert!(
                section.contains(&format!("**Meaning:** {}.", e.meaning)),
                "AADSTS{}: meaning differs",
                e.code
            );
            assert!(
                section.contains(&format!("**Fix:** {}.", e.fix)),
                "AADSTS{}: fix differs",
                e.code
            );
            assert_eq!(
                section.contains("**Needs sign-in.**"),
                e.needs_sign_in,
                "AADSTS{}: needs sign-in differs",
                e.code
            );
        }
        for heading in page.lines().filter_map(|l| l.strip_prefix("## AADSTS")) {
            let code: u32 = heading.trim().parse().unwrap();
            assert!(
                lookup(code).is_some(),
                "docs list AADSTS{code}, which the catalogue does not know"
            );
        }
    }
}
