//! The **sign-in** step of a delegated connection: whether users can sign in by the
//! connection's flow, found without anyone signing in.
//!
//! - Authorization code: for each redirect URI exgate uses (the connection's, else the CLI's
//!   loopback `http://localhost`; and the gateway's `<public URL>/service/oauth2/authorize`
//!   when the gateway runs the test), a real authorization request with `prompt=none` and
//!   that `redirect_uri`. An identity provider sends the browser back to a registered redirect
//!   URI (here with `login_required` or `consent_required`, since nobody is signed in); for one
//!   not registered it shows an error page instead (Entra: AADSTS50011), as it must never
//!   redirect to an address the app did not register.
//! - Device code and password: a device code sign-in is started and its token endpoint polled
//!   once. `authorization_pending` means the provider takes this client's public-client grant;
//!   Entra refuses it with AADSTS7000218 when "Allow public client flows" is off, the setting
//!   that governs the password grant too. The code lapses unused; nobody is asked to sign in.

use url::Url;

use super::{SIGN_IN, Steps, chain};
use crate::auth::signin::{delegated_scopes, primary_resource};
use crate::auth::{AuthError, OAuthClient, SignIn, aadsts};
use crate::model::{Connection, DelegatedAuth, DelegatedFlow};
use crate::net;

/// The CLI's loopback redirect URI when the connection names none (RFC 8252; Entra ignores the
/// port of a loopback redirect URI).
pub(super) const CLI_LOOPBACK: &str = "http://localhost";

/// Runs the sign-in step (see the module documentation).
pub(super) async fn step(
    steps: &mut Steps,
    connection: &Connection,
    delegated: &DelegatedAuth,
    signin: &SignIn,
    gateway_redirect: Option<&str>,
) {
    let network = signin.network();
    let made = async {
        let http = net::http_client(&network).map_err(|e| AuthError::Unsupported(e.to_string()))?;
        let client = OAuthClient::for_connection(
            &connection.settings,
            &network,
            http.clone(),
            signin.clock(),
        )
        .await?;
        Ok::<_, AuthError>((http, client))
    }
    .await;
    let (http, client) = match made {
        Ok(made) => made,
        Err(e) => {
            steps.failed(SIGN_IN, e.to_string(), e.fix().map(str::to_owned));
            return;
        }
    };
    let scopes = delegated_scopes(connection, primary_resource(connection));
    let entra = connection.settings.authority.is_none();
    match delegated.flow {
        DelegatedFlow::AuthorizationCode => {
            let mut uris = vec![match &delegated.redirect_uri {
                Some(uri) => (uri.to_string(), "the connection's"),
                None => (CLI_LOOPBACK.to_owned(), "the CLI's loopback"),
            }];
            if let Some(gateway) = gateway_redirect
                && !uris.iter().any(|(u, _)| u == gateway)
            {
                uris.push((gateway.to_owned(), "the gateway's"));
            }
            redirect_uris(steps, &http, &client, &scopes, &uris, delegated, entra).await;
        }
        DelegatedFlow::DeviceCode | DelegatedFlow::Password => {
            public_client_flows(steps, &client, &scopes, delegated, entra).await;
        }
    }
}

async fn redirect_uris(
    steps: &mut Steps,
    http: &reqwest::Client,
    client: &OAuthClient,
    scopes: &[String],
    uris: &[(String, &str)],
    delegated: &DelegatedAuth,
    entra: bool,
) {
    let mut seen = Vec::new();
    for (uri, whose) in uris {
        let request = match client.authorization_request(uri, scopes, None) {
            Ok(r) => r,
            Err(e) => {
                steps.failed(SIGN_IN, e.to_string(), e.fix().map(str::to_owned));
                return;
            }
        };
        let mut url = request.url;
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "prompt")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("prompt", "none");
        let endpoint = format!("{}{}", url.origin().ascii_serialization(), url.path());
        let asked = format!("GET {endpoint} with redirect_uri={uri} ({whose}) and prompt=none");
        let resp = match http.get(url).send().await {
            Ok(r) => r,
            Err(e) => {
                steps.failed(
                    SIGN_IN,
                    format!("{asked}: {}", chain(&e)),
                    Some("check that this machine reaches the identity provider's authorization endpoint (DNS, firewall, proxy, tls.ca_file)".into()),
                );
                return;
            }
        };
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if (300..400).contains(&status)
            && let Some(to) = location.as_deref()
            && sends_back_to(to, uri)
        {
            seen.push(format!("{uri} ({whose}; HTTP {status}, back to it)"));
            continue;
        }
        let body = net::read_body(resp).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let code = aadsts_in(&text);
        let what = match (code, &location) {
            (Some(c), _) => match aadsts::lookup(c) {
                Some(entry) => format!("an error page, AADSTS{c}: {}", entry.meaning),
                None => format!("an error page, AADSTS{c}"),
            },
            (None, Some(to)) => format!(
                "a redirect elsewhere ({}), not back to the redirect URI",
                to.split('?').next().unwrap_or_default()
            ),
            (None, None) => "no redirect back to the redirect URI".to_owned(),
        };
        let fix = match code {
            Some(50011) | None if entra => register_redirect_fix(uri, delegated),
            Some(c) => aadsts::lookup(c).map_or_else(
                || "see the identity provider's error page for the cause".to_owned(),
                |e| e.fix.to_owned(),
            ),
            None => format!(
                "register `{uri}` as a redirect URI of the client `{}` at the identity provider, or have the connection use one that is registered: `exgate connection edit NAME --redirect-uri URI`",
                delegated.client_id
            ),
        };
        let fine = if seen.is_empty() {
            String::new()
        } else {
            format!("; sent back to {}", seen.join("; "))
        };
        steps.failed(
            SIGN_IN,
            format!("{asked}: HTTP {status}, {what}{fine}"),
            Some(fix),
        );
        return;
    }
    steps.passed(
        SIGN_IN,
        format!(
            "the identity provider sends the browser back to each redirect URI exgate uses (nobody was signed in): {}",
            seen.join("; ")
        ),
    );
}

/// The fix for a redirect URI Entra does not have, with the app's client ID and the platform
/// the URI belongs on.
fn register_redirect_fix(uri: &str, delegated: &DelegatedAuth) -> String {
    let id = &delegated.client_id;
    let (platform, flag) = if is_loopback(uri) && delegated.credential.is_none() {
        (
            "Mobile and desktop applications",
            "--public-client-redirect-uris",
        )
    } else {
        ("Web", "--web-redirect-uris")
    };
    format!(
        "register `{uri}` as a redirect URI of the app {id}: in the Entra admin center, App registrations > the app > Authentication > Add a platform > {platform}; or with the Azure CLI `az ad app update --id {id} {flag} {uri}` (this sets the platform's whole list: name the URIs already there too); or have the connection use a redirect URI that is registered: `exgate connection edit NAME --redirect-uri URI`"
    )
}

fn is_loopback(uri: &str) -> bool {
    Url::parse(uri)
        .ok()
        .is_some_and(|u| matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")))
}

/// Whether a `Location` goes back to `uri`: same scheme, host and path (the port too, except
/// for a loopback host, whose port Entra ignores).
fn sends_back_to(location: &str, uri: &str) -> bool {
    let (Ok(to), Ok(uri)) = (Url::parse(location), Url::parse(uri)) else {
        return false;
    };
    to.scheme() == uri.scheme()
        && to.host_str() == uri.host_str()
        && to.path() == uri.path()
        && (is_loopback(uri.as_str()) || to.port_or_known_default() == uri.port_or_known_default())
}

/// The first `AADSTSnnnn` code in a page.
fn aadsts_in(text: &str) -> Option<u32> {
    let at = text.find("AADSTS")?;
    let digits: String = text[at + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    digits.parse().ok()
}

async fn public_client_flows(
    steps: &mut Steps,
    client: &OAuthClient,
    scopes: &[String],
    delegated: &DelegatedAuth,
    entra: bool,
) {
    let flow = delegated.flow;
    let endpoint = client
        .endpoints()
        .device_authorization
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let device = match client.device_authorization(scopes).await {
        Ok(d) => d,
        Err(AuthError::Unsupported(why)) => {
            steps.skipped(SIGN_IN, format!("skipped: {why}"), None);
            return;
        }
        Err(e) => {
            let fix = e.fix().map(str::to_owned);
            steps.failed(SIGN_IN, e.to_string(), fix);
            return;
        }
    };
    match client.poll_device_once(&device).await {
        Ok(_) => steps.passed(
            SIGN_IN,
            format!(
                "started a device code sign-in at {endpoint} and polled the token endpoint once: the sign-in is pending, so the identity provider takes this client's public-client grants ({flow} sign-in); nobody was asked to sign in and the code lapses unused"
            ),
        ),
        Err(e) => {
            let code = match &e {
                AuthError::Refused { body, .. } => body.code(),
                _ => None,
            };
            let fix = match code {
                Some(7000218) if entra => {
                    let id = &delegated.client_id;
                    format!(
                        "turn on \"Allow public client flows\" for the app {id}, which {flow} sign-in needs: in the Entra admin center, App registrations > the app > Authentication > Advanced settings > Allow public client flows: Yes; or with the Azure CLI `az ad app update --id {id} --is-fallback-public-client true`; or sign users in through the browser instead: `exgate connection edit NAME --flow authorization-code`"
                    )
                }
                _ => e
                    .fix()
                    .map_or_else(|| "see the identity provider's answer for the cause".to_owned(), str::to_owned),
            };
            steps.failed(
                SIGN_IN,
                format!(
                    "started a device code sign-in at {endpoint} and polled the token endpoint once: {e}"
                ),
                Some(fix),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_back_is_matched_by_scheme_host_and_path() {
        assert!(sends_back_to(
            "http://localhost/?error=login_required&state=x",
            "http://localhost"
        ));
        assert!(sends_back_to(
            "http://localhost:8400/?error=login_required",
            "http://localhost"
        ));
        assert!(sends_back_to(
            "https://exgate.contoso.com/service/oauth2/authorize?error=login_required",
            "https://exgate.contoso.com/service/oauth2/authorize"
        ));
        assert!(!sends_back_to(
            "https://exgate.contoso.com:8443/service/oauth2/authorize?error=x",
            "https://exgate.contoso.com/service/oauth2/authorize"
        ));
        assert!(!sends_back_to(
            "https://login.microsoftonline.com/error",
            "https://exgate.contoso.com/service/oauth2/authorize"
        ));
        assert!(!sends_back_to("not a url", "http://localhost"));
    }

    #[test]
    fn the_first_aadsts_code_of_a_page_is_read() {
        assert_eq!(
            aadsts_in("<p>AADSTS50011: The redirect URI 'x' …</p>"),
            Some(50011)
        );
        assert_eq!(aadsts_in("no code"), None);
        assert_eq!(aadsts_in("AADSTS"), None);
        assert_eq!(aadsts_in("AADSTS99999999999999"), Some(999_999_999));
    }
}
