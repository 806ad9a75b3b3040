//! A connection: which Exchange, through which API, signed in how.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::InvalidInput;
use super::ids::{
    ClientId, ConnectionId, ConnectionName, EndpointUrl, ParseError, ResourceIndicator, Tenant,
};
use crate::mail::url::{MailProtocol, MailUrl};
use crate::secret::Secret;

/// Declares a fieldless enum with its canonical spellings; `FromStr` lists them when it fails.
macro_rules! keyword_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text $(| $alias)* => Ok(Self::$variant),)+
                    _ => Err(ParseError(format!(
                        "`{}` is not {}; expected one of: {}",
                        s.trim(),
                        $what,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

keyword_enum!(
    /// The Microsoft cloud an Exchange Online tenant lives in.
    Cloud, "a Microsoft cloud" {
        /// login.microsoftonline.com, graph.microsoft.com
        Global = "global" | "public",
        /// login.microsoftonline.us (GCC High, DoD)
        UsGov = "usgov" | "us-gov",
        /// login.chinacloudapi.cn (operated by 21Vianet)
        China = "china",
    }
);

keyword_enum!(
    /// The Exchange Server release on premises.
    ServerVersion, "an Exchange Server version" {
        /// Exchange 2010 Service Pack 2 or later service packs (schema `Exchange2010_SP2`).
        Exchange2010Sp2 = "2010sp2" | "2010-sp2" | "2010",
        /// Exchange 2013 before Service Pack 1 (schema `Exchange2013`).
        Exchange2013 = "2013",
        /// Exchange 2013 Service Pack 1 or a later cumulative update (schema `Exchange2013_SP1`).
        Exchange2013Sp1 = "2013sp1" | "2013-sp1",
        Exchange2016 = "2016",
        Exchange2019 = "2019",
        SubscriptionEdition = "se" | "subscription-edition",
    }
);

keyword_enum!(
    /// Which API reads the mailboxes. `auto` picks Graph for Exchange Online and EWS for Exchange
    /// Server; `imap` and `pop` read Exchange Online over IMAP or POP3 with XOAUTH2 (and send
    /// over SMTP).
    Backend, "a backend" {
        Auto = "auto",
        Graph = "graph",
        Ews = "ews",
        /// IMAP4 with XOAUTH2 (Exchange Online): folders, flags, moves.
        Imap = "imap",
        /// POP3 with XOAUTH2 (Exchange Online): the Inbox only, no flags.
        Pop = "pop" | "pop3",
    }
);

impl Backend {
    /// Whether the backend reads over a mail protocol (IMAP or POP) and so cannot send itself.
    pub fn is_mail_protocol(self) -> bool {
        matches!(self, Self::Imap | Self::Pop)
    }
}

keyword_enum!(
    /// Which protocol sends mail. `auto` is the reading backend's own (Graph or EWS), SMTP for
    /// an IMAP or POP connection; `smtp` submits over SMTP with XOAUTH2 whatever reads.
    SendVia, "a sending protocol" {
        Auto = "auto",
        Graph = "graph",
        Ews = "ews",
        Smtp = "smtp",
    }
);

/// The mail servers of a connection, each `None` for Exchange Online's default in the
/// connection's cloud (or `[endpoints]`'s override).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailEndpoints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imap_url: Option<MailUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pop_url: Option<MailUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<MailUrl>,
}

impl MailEndpoints {
    pub fn is_empty(&self) -> bool {
        self.imap_url.is_none() && self.pop_url.is_none() && self.smtp_url.is_none()
    }

    /// The connection's own URL for `protocol`, if it set one.
    pub fn get(&self, protocol: MailProtocol) -> Option<&MailUrl> {
        match protocol {
            MailProtocol::Imap => self.imap_url.as_ref(),
            MailProtocol::Pop => self.pop_url.as_ref(),
            MailProtocol::Smtp => self.smtp_url.as_ref(),
        }
    }
}

keyword_enum!(
    /// How a connection authenticates.
    AuthKind, "an auth kind" {
        /// OAuth2 on behalf of a signed-in user.
        OAuth2Delegated = "oauth2-delegated",
        /// OAuth2 client credentials: the app acts on its own, with application permissions.
        OAuth2AppOnly = "oauth2-app-only",
        /// User name and password over TLS (Exchange Server only).
        Basic = "basic",
        /// NTLM over TLS (Exchange Server only).
        Ntlm = "ntlm",
    }
);

keyword_enum!(
    /// How users of a delegated connection sign in by default.
    DelegatedFlow, "a sign-in flow" {
        /// Authorization code with PKCE in a browser; works for public and confidential clients.
        AuthorizationCode = "authorization-code" | "auth-code",
        /// Device code (RFC 8628): a public-client flow.
        DeviceCode = "device-code",
        /// Resource-owner password: a legacy public-client flow that MFA and Conditional Access break.
        Password = "password" | "ropc",
    }
);

impl DelegatedFlow {
    /// Whether Entra treats the flow as a public-client flow, in which a client secret or
    /// assertion is refused (AADSTS700025) and "Allow public client flows" must be on.
    pub fn is_public_client_flow(self) -> bool {
        matches!(self, Self::DeviceCode | Self::Password)
    }
}

/// Where the mailboxes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Target {
    Online {
        cloud: Cloud,
        tenant: Tenant,
    },
    Server {
        version: ServerVersion,
        ews_url: EndpointUrl,
    },
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Online { .. } => "online",
            Self::Server { .. } => "server",
        }
    }
}

/// An app registration's certificate credential: the public certificate and its private key.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCertificate {
    certificate_pem: String,
    private_key_pem: Secret,
    thumbprint_sha256: String,
    /// The certificate's `notAfter`, when it can be read.
    not_after: Option<OffsetDateTime>,
}

impl ClientCertificate {
    /// Takes the first `CERTIFICATE` block of `certificate` and the first private key block of
    /// `private_key` (the two may come from the same file).
    pub fn from_pem(certificate: &str, private_key: &Secret) -> Result<Self, ParseError> {
        let cert = pem_block(certificate, &["CERTIFICATE"]).ok_or_else(|| {
            ParseError(
                "no `-----BEGIN CERTIFICATE-----` block found; give the certificate as PEM \
                 (the .cer/.crt you uploaded under Certificates & secrets, base64-encoded)"
                    .into(),
            )
        })?;
        let der = B64
            .decode(cert.body.split_whitespace().collect::<String>())
            .map_err(|_| ParseError("the CERTIFICATE block is not valid base64".into()))?;
        if pem_block(private_key.expose(), &["ENCRYPTED PRIVATE KEY"]).is_some() {
            return Err(ParseError(
                "the private key is encrypted; export it without a passphrase \
                 (`openssl pkey -in key.pem -out plain.pem`) and protect the file instead"
                    .into(),
            ));
        }
        let key = pem_block(private_key.expose(), &["PRIVATE KEY", "RSA PRIVATE KEY"])
            .ok_or_else(|| {
                ParseError(
                    "no `-----BEGIN PRIVATE KEY-----` or `-----BEGIN RSA PRIVATE KEY-----` block found in the private key"
                        .into(),
                )
            })?;
        let thumbprint_sha256 = Sha256::digest(&der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let not_after = x509_parser::parse_x509_certificate(&der)
            .ok()
            .map(|(_, c)| c.validity().not_after.to_datetime());
        Ok(Self {
            certificate_pem: cert.text.to_owned(),
            private_key_pem: Secret::new(key.text),
            thumbprint_sha256,
            not_after,
        })
    }

    /// When the certificate expires (its `notAfter`), when it can be read.
    pub fn not_after(&self) -> Option<OffsetDateTime> {
        self.not_after
    }

    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// Checks that the private key is an RSA key (what a client assertion is signed with) and
    /// the one of the certificate: the same modulus and exponent. A mismatch would otherwise
    /// surface only at token time, as Entra's AADSTS700027.
    pub fn check_key_matches(&self) -> Result<(), ParseError> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let text = self.private_key_pem.expose();
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(text)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(text))
            .map_err(|_| {
                ParseError(
                    "the private key is not an RSA key in PEM; Entra's certificate credential \
                     is signed with RS256, which needs one"
                        .into(),
                )
            })?;
        let body = pem_block(&self.certificate_pem, &["CERTIFICATE"])
            .map(|b| b.body.split_whitespace().collect::<String>())
            .unwrap_or_default();
        let der = B64
            .decode(body)
            .map_err(|_| ParseError("the CERTIFICATE block is not valid base64".into()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| ParseError(format!("the certificate cannot be read: {e}")))?;
        let Ok(x509_parser::public_key::PublicKey::RSA(public)) = cert.public_key().parsed() else {
            return Err(ParseError(
                "the certificate's key is not an RSA key; Entra's certificate credential is \
                 signed with RS256, which needs one"
                    .into(),
            ));
        };
        let same = rsa::BigUint::from_bytes_be(public.modulus) == *key.n()
            && rsa::BigUint::from_bytes_be(public.exponent) == *key.e();
        if same {
            Ok(())
        } else {
            Err(ParseError(
                "the private key does not belong to the certificate; give the key the \
                 certificate was made with (`openssl x509 -noout -pubkey -in CERT` and \
                 `openssl pkey -pubout -in KEY` must print the same key)"
                    .into(),
            ))
        }
    }

    pub fn private_key(&self) -> &Secret {
        &self.private_key_pem
    }

    /// SHA-256 of the DER certificate in upper-case hex (as shown to people).
    pub fn thumbprint_sha256(&self) -> &str {
        &self.thumbprint_sha256
    }

    /// SHA-256 of the DER certificate (the `x5t#S256` header of a client assertion).
    pub fn sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (byte, pair) in out
            .iter_mut()
            .zip(self.thumbprint_sha256.as_bytes().chunks(2))
        {
            let hex = std::str::from_utf8(pair).unwrap_or("00");
            *byte = u8::from_str_radix(hex, 16).unwrap_or(0);
        }
        out
    }
}

struct PemBlock<'a> {
    text: &'a str,
    body: &'a str,
}

fn pem_block<'a>(input: &'a str, labels: &[&str]) -> Option<PemBlock<'a>> {
    labels.iter().find_map(|label| {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let start = input.find(&begin)?;
        let body_start = start + begin.len();
        let body_len = input[body_start..].find(&end)?;
        let stop = body_start + body_len + end.len();
        Some(PemBlock {
            text: &input[start..stop],
            body: &input[body_start..body_start + body_len],
        })
    })
}

/// How an app registration proves its identity to Entra ID.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCredential {
    Secret(Secret),
    Certificate(ClientCertificate),
}

/// OAuth2 on behalf of signed-in users.
#[derive(Debug, Clone, PartialEq)]
pub struct DelegatedAuth {
    pub client_id: ClientId,
    pub flow: DelegatedFlow,
    /// `None` for a public client.
    pub credential: Option<ClientCredential>,
    /// `None` means the CLI's loopback redirect, `http://localhost`.
    pub redirect_uri: Option<EndpointUrl>,
    /// Empty means the defaults for the backend (DESIGN.md §2).
    pub scopes: Vec<String>,
    /// Where an application may send its user's browser after a gateway sign-in: a
    /// `return_url` must have the scheme, host and port of one of these and a path at or below
    /// its path. Empty: no return URL is accepted.
    pub return_urls: Vec<EndpointUrl>,
}

impl DelegatedAuth {
    /// `url` if the allow-list admits it (see [`Self::return_urls`]).
    pub fn check_return_url(&self, url: &str) -> Result<url::Url, InvalidInput> {
        let field = "return_url";
        let parsed = url
            .parse::<EndpointUrl>()
            .map_err(|e| InvalidInput::new(field, e.0))?;
        let candidate = parsed.as_url();
        let admitted = self.return_urls.iter().any(|allowed| {
            let allowed = allowed.as_url();
            let base = allowed.path();
            let path = candidate.path();
            allowed.scheme() == candidate.scheme()
                && allowed.host() == candidate.host()
                && allowed.port_or_known_default() == candidate.port_or_known_default()
                && (path == base
                    || path.starts_with(base)
                        && (base.ends_with('/') || path.as_bytes().get(base.len()) == Some(&b'/')))
        });
        if !admitted {
            return Err(InvalidInput::new(
                field,
                if self.return_urls.is_empty() {
                    "this connection accepts no return URL; an administrator lists the allowed ones \
                     with `exgate connection edit NAME --return-url URL`"
                        .to_owned()
                } else {
                    "the return URL is not at or below any of the connection's allowed return URLs"
                        .to_owned()
                },
            ));
        }
        Ok(candidate.clone())
    }
}

/// OAuth2 client credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct AppOnlyAuth {
    pub client_id: ClientId,
    pub credential: ClientCredential,
}

/// A user name and password for Basic or NTLM.
#[derive(Debug, Clone, PartialEq)]
pub struct PasswordAuth {
    /// `user@contoso.com`, `CONTOSO\user` or `user`.
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    OAuth2Delegated(DelegatedAuth),
    OAuth2AppOnly(AppOnlyAuth),
    Basic(PasswordAuth),
    Ntlm(PasswordAuth),
}

impl Auth {
    pub fn kind(&self) -> AuthKind {
        match self {
            Self::OAuth2Delegated(_) => AuthKind::OAuth2Delegated,
            Self::OAuth2AppOnly(_) => AuthKind::OAuth2AppOnly,
            Self::Basic(_) => AuthKind::Basic,
            Self::Ntlm(_) => AuthKind::Ntlm,
        }
    }

    /// The one secret this auth holds, if any, for sealing in the store.
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Self::OAuth2Delegated(d) => d.credential.as_ref().map(ClientCredential::secret),
            Self::OAuth2AppOnly(a) => Some(a.credential.secret()),
            Self::Basic(p) | Self::Ntlm(p) => Some(&p.password),
        }
    }
}

impl ClientCredential {
    /// The client secret, or the certificate's private key.
    pub fn secret(&self) -> &Secret {
        match self {
            Self::Secret(s) => s,
            Self::Certificate(c) => c.private_key(),
        }
    }
}

/// Everything about a connection but its identity and timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSettings {
    pub target: Target,
    pub backend: Backend,
    pub auth: Auth,
    /// A custom OIDC authority by its discovery URL (AD FS, Keycloak); `None` means Entra ID.
    pub authority: Option<EndpointUrl>,
    /// The RFC 8707 resource indicator sent to a custom authority with every authorization and
    /// token request (never to Entra ID, which takes the resource in the scope).
    pub resource: Option<ResourceIndicator>,
    /// Which protocol sends (see [`ConnectionSettings::sending`] for `auto`).
    pub send: SendVia,
    /// The IMAP, POP and SMTP servers, when not Exchange Online's defaults.
    pub mail: MailEndpoints,
    /// When the connection's credential (client secret, certificate or password) expires, as
    /// given at `connection add`/`edit` or by `app register`. For a certificate its own
    /// `notAfter` counts unless this is set (see [`ConnectionSettings::credential_expiry`]).
    pub credential_expires: Option<OffsetDateTime>,
}

/// Where a connection's credential expiry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpirySource {
    /// `credential_expires`, as given.
    Given,
    /// The certificate's `notAfter`.
    Certificate,
    /// The credential's `endDateTime` in the app's registration, read from Microsoft Graph
    /// (`expiry::graph`; never stored).
    Graph,
}

impl ExpirySource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Given => "given",
            Self::Certificate => "certificate",
            Self::Graph => "graph",
        }
    }
}

/// The protocol that actually sends for a connection: `send = auto` resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    Graph,
    Ews,
    Smtp,
}

impl ConnectionSettings {
    /// When the credential expires and how that is known: `credential_expires` when set, else
    /// a certificate's `notAfter`; `None` when neither is known (or there is no credential).
    pub fn credential_expiry(&self) -> Option<(OffsetDateTime, ExpirySource)> {
        if let Some(at) = self.credential_expires {
            return Some((at, ExpirySource::Given));
        }
        let credential = match &self.auth {
            Auth::OAuth2Delegated(d) => d.credential.as_ref(),
            Auth::OAuth2AppOnly(a) => Some(&a.credential),
            Auth::Basic(_) | Auth::Ntlm(_) => None,
        };
        match credential {
            Some(ClientCredential::Certificate(c)) => {
                c.not_after().map(|at| (at, ExpirySource::Certificate))
            }
            _ => None,
        }
    }

    /// Who sends: the `send` setting, or for `auto` the reading backend's own API (SMTP for
    /// IMAP and POP, which cannot send).
    pub fn sending(&self) -> Sender {
        match (self.send, self.backend, &self.target) {
            (SendVia::Smtp, ..) => Sender::Smtp,
            (SendVia::Graph, ..) => Sender::Graph,
            (SendVia::Ews, ..) => Sender::Ews,
            (SendVia::Auto, Backend::Imap | Backend::Pop, _) => Sender::Smtp,
            (SendVia::Auto, Backend::Ews, _) | (SendVia::Auto, _, Target::Server { .. }) => {
                Sender::Ews
            }
            (SendVia::Auto, Backend::Auto | Backend::Graph, Target::Online { .. }) => Sender::Graph,
        }
    }

    /// The mail protocols the connection uses, reading first: IMAP or POP when it reads over
    /// them, SMTP when it sends over it.
    pub fn mail_protocols(&self) -> Vec<MailProtocol> {
        let mut out = Vec::new();
        match self.backend {
            Backend::Imap => out.push(MailProtocol::Imap),
            Backend::Pop => out.push(MailProtocol::Pop),
            Backend::Auto | Backend::Graph | Backend::Ews => {}
        }
        if self.sending() == Sender::Smtp {
            out.push(MailProtocol::Smtp);
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: ConnectionId,
    pub name: ConnectionName,
    pub settings: ConnectionSettings,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A connection as a person writes it: every field optional and unparsed. The CLI builds one from
/// flags, the configuration file from a `[connections.NAME]` table, the API from JSON; all of them
/// are checked by [`ConnectionSpec::validate`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionSpec {
    pub target: Option<String>,
    pub cloud: Option<String>,
    pub tenant: Option<String>,
    pub server_version: Option<String>,
    pub ews_url: Option<String>,
    pub backend: Option<String>,
    pub auth: Option<String>,
    pub client_id: Option<String>,
    pub flow: Option<String>,
    pub redirect_uri: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub return_urls: Option<Vec<String>>,
    pub authority: Option<String>,
    pub resource: Option<String>,
    pub username: Option<String>,
    pub client_secret: Option<Secret>,
    pub certificate_pem: Option<String>,
    pub private_key_pem: Option<Secret>,
    pub password: Option<Secret>,
    pub send: Option<String>,
    pub imap_url: Option<String>,
    pub pop_url: Option<String>,
    pub smtp_url: Option<String>,
    /// When the credential expires: RFC 3339 or a date `YYYY-MM-DD` (the start of that day,
    /// UTC); `none` (or empty) for not known, which also clears it in an edit.
    pub credential_expires: Option<String>,
}

/// Parses a `credential_expires` value: RFC 3339, or a plain date taken as 00:00 UTC that day
/// (a warning a few hours early beats one a few hours late). `none` or empty is `None`.
pub fn parse_credential_expires(text: &str) -> Result<Option<OffsetDateTime>, InvalidInput> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    if let Ok(at) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Ok(Some(at.to_offset(time::UtcOffset::UTC)));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, &date_format) {
        return Ok(Some(date.midnight().assume_utc()));
    }
    Err(InvalidInput::new(
        "credential_expires",
        format!(
            "`{text}` is not a date; give the expiry as YYYY-MM-DD (as the portal shows it under \
             Certificates & secrets) or RFC 3339 (2027-06-30T12:00:00Z), or `none`"
        ),
    ))
}

fn parse_mail_url(
    field: &'static str,
    value: &Option<String>,
    protocol: MailProtocol,
) -> Result<Option<MailUrl>, InvalidInput> {
    let Some(text) = value.as_deref() else {
        return Ok(None);
    };
    let url: MailUrl = text
        .parse()
        .map_err(|e: crate::mail::url::MailUrlError| InvalidInput::new(field, e.to_string()))?;
    if url.protocol() != protocol {
        return Err(InvalidInput::new(
            field,
            format!(
                "`{url}` is an {} server; {field} takes a {protocol} URL ({})",
                url.protocol(),
                match protocol {
                    MailProtocol::Imap => "imaps://host:993 or imap://host:143 with STARTTLS",
                    MailProtocol::Pop => "pop3s://host:995 or pop3://host:110 with STLS",
                    MailProtocol::Smtp => "smtp://host:587 with STARTTLS or smtps://host:465",
                }
            ),
        ));
    }
    Ok(Some(url))
}

fn parse_field<T: FromStr<Err = ParseError>>(
    field: &'static str,
    value: &Option<String>,
) -> Result<Option<T>, InvalidInput> {
    value
        .as_deref()
        .map(|v| v.parse::<T>().map_err(|e| InvalidInput::new(field, e.0)))
        .transpose()
}

fn required<T>(field: &'static str, value: Option<T>, why: &str) -> Result<T, InvalidInput> {
    value.ok_or_else(|| InvalidInput::missing(field, why.to_owned()))
}

fn refuse(field: &'static str, present: bool, why: &str) -> Result<(), InvalidInput> {
    if present {
        Err(InvalidInput::new(field, why.to_owned()))
    } else {
        Ok(())
    }
}

/// A client secret value is a ~40-character string; the GUID beside it in Entra is the secret's ID
/// (`entra`: only Entra ID's secret IDs are known to be GUIDs; other providers may issue GUID
/// secrets).
fn check_client_secret(secret: &Secret, entra: bool) -> Result<(), InvalidInput> {
    if secret.expose().trim().is_empty() {
        return Err(InvalidInput::new(
            "client_secret",
            "the client secret is empty".into(),
        ));
    }
    if entra
        && secret
            .expose()
            .trim()
            .parse::<ClientId>()
            .is_ok_and(|c| c.is_guid())
    {
        return Err(InvalidInput::new(
            "client_secret",
            "this is the secret's ID (a GUID), not its value; copy the secret's Value from \
             Certificates & secrets (it is shown only once, right after you create the secret)"
                .into(),
        ));
    }
    Ok(())
}

impl ConnectionSpec {
    /// Checks every field and how they fit together, and builds the settings.
    pub fn validate(&self) -> Result<ConnectionSettings, InvalidInput> {
        let target_kind = match self
            .target
            .as_deref()
            .map(|t| t.trim().to_ascii_lowercase())
        {
            Some(t) if t == "online" => "online",
            Some(t) if t == "server" => "server",
            Some(t) => {
                return Err(InvalidInput::new(
                    "target",
                    format!(
                        "`{t}` is not a target; expected `online` (Exchange Online) or `server` (Exchange Server)"
                    ),
                ));
            }
            None if self.ews_url.is_some() => "server",
            None if self.tenant.is_some() => "online",
            None => {
                return Err(InvalidInput::missing(
                    "target",
                    "give a tenant for Exchange Online, or an EWS URL for Exchange Server".into(),
                ));
            }
        };

        let target = if target_kind == "online" {
            refuse(
                "ews_url",
                self.ews_url.is_some(),
                "an EWS URL is for Exchange Server; Exchange Online is reached through its tenant",
            )?;
            refuse(
                "server_version",
                self.server_version.is_some(),
                "a server version is for Exchange Server only",
            )?;
            Target::Online {
                cloud: parse_field("cloud", &self.cloud)?.unwrap_or(Cloud::Global),
                tenant: required(
                    "tenant",
                    parse_field("tenant", &self.tenant)?,
                    "Exchange Online needs the Directory (tenant) ID or a verified domain",
                )?,
            }
        } else {
            refuse(
                "tenant",
                self.tenant.is_some(),
                "a tenant is for Exchange Online; for Exchange Server give the EWS URL (and a custom authority for modern auth)",
            )?;
            refuse(
                "cloud",
                self.cloud.is_some(),
                "a cloud is for Exchange Online only",
            )?;
            Target::Server {
                version: parse_field("server_version", &self.server_version)?
                    .unwrap_or(ServerVersion::Exchange2019),
                ews_url: required(
                    "ews_url",
                    parse_field("ews_url", &self.ews_url)?,
                    "Exchange Server needs its EWS URL, such as https://mail.contoso.com/EWS/Exchange.asmx",
                )?,
            }
        };

        let backend: Backend = parse_field("backend", &self.backend)?.unwrap_or(Backend::Auto);
        if matches!(target, Target::Server { .. }) && backend == Backend::Graph {
            return Err(InvalidInput::new(
                "backend",
                "Exchange Server has no Microsoft Graph; use `ews` or `auto`".into(),
            ));
        }

        let kind: AuthKind = required(
            "auth",
            parse_field("auth", &self.auth)?,
            "choose oauth2-delegated, oauth2-app-only, basic or ntlm",
        )?;
        let authority = parse_field::<EndpointUrl>("authority", &self.authority)?;
        let auth = match kind {
            AuthKind::OAuth2Delegated | AuthKind::OAuth2AppOnly => {
                self.oauth2_auth(kind, authority.is_none())?
            }
            AuthKind::Basic | AuthKind::Ntlm => {
                if matches!(target, Target::Online { .. }) {
                    return Err(InvalidInput::new(
                        "auth",
                        format!(
                            "Exchange Online no longer accepts {kind} authentication; use oauth2-delegated or oauth2-app-only"
                        ),
                    ));
                }
                self.password_auth(kind)?
            }
        };

        refuse(
            "authority",
            authority.is_some()
                && !matches!(kind, AuthKind::OAuth2Delegated | AuthKind::OAuth2AppOnly),
            "a custom authority is for OAuth2 auth only",
        )?;
        if let (Target::Server { .. }, AuthKind::OAuth2Delegated | AuthKind::OAuth2AppOnly, None) =
            (&target, kind, &authority)
        {
            return Err(InvalidInput::missing(
                "authority",
                "OAuth2 against Exchange Server needs the discovery URL of its identity provider, \
                 such as https://adfs.contoso.com/adfs/.well-known/openid-configuration"
                    .into(),
            ));
        }

        let resource = parse_field::<ResourceIndicator>("resource", &self.resource)?;
        refuse(
            "resource",
            resource.is_some() && authority.is_none(),
            "a resource indicator (RFC 8707) is for a custom authority; Entra ID takes the \
             resource in the scope, so remove it or set the authority",
        )?;

        let send: SendVia = parse_field("send", &self.send)?.unwrap_or(SendVia::Auto);
        let mail = MailEndpoints {
            imap_url: parse_mail_url("imap_url", &self.imap_url, MailProtocol::Imap)?,
            pop_url: parse_mail_url("pop_url", &self.pop_url, MailProtocol::Pop)?,
            smtp_url: parse_mail_url("smtp_url", &self.smtp_url, MailProtocol::Smtp)?,
        };
        check_mail_protocols(&target, backend, send, kind, &mail)?;

        let credential_expires = self
            .credential_expires
            .as_deref()
            .map(parse_credential_expires)
            .transpose()?
            .flatten();
        refuse(
            "credential_expires",
            credential_expires.is_some() && auth.secret().is_none(),
            "a public client has no client secret or certificate that could expire; remove \
             credential_expires",
        )?;

        Ok(ConnectionSettings {
            target,
            backend,
            auth,
            authority,
            resource,
            send,
            mail,
            credential_expires,
        })
    }

    /// `entra`: the connection signs in with Entra ID, whose client IDs are GUIDs.
    fn oauth2_auth(&self, kind: AuthKind, entra: bool) -> Result<Auth, InvalidInput> {
        let what = kind.as_str();
        refuse(
            "username",
            self.username.is_some(),
            &format!("a user name is for basic or ntlm auth, not {what}"),
        )?;
        refuse(
            "password",
            self.password.is_some(),
            &format!(
                "a password is for basic or ntlm auth, not {what}; for a client secret use client_secret"
            ),
        )?;
        let client_id: ClientId = required(
            "client_id",
            parse_field("client_id", &self.client_id)?,
            "give the Application (client) ID from the app registration's Overview page",
        )?;
        if entra && let Some(problem) = client_id.entra_problem() {
            return Err(InvalidInput::new("client_id", problem));
        }
        let credential = self.client_credential(entra)?;
        if kind == AuthKind::OAuth2AppOnly {
            refuse(
                "flow",
                self.flow.is_some(),
                "a sign-in flow is for oauth2-delegated; oauth2-app-only always uses client credentials",
            )?;
            refuse(
                "redirect_uri",
                self.redirect_uri.is_some(),
                "a redirect URI is for oauth2-delegated; client credentials involve no browser",
            )?;
            refuse(
                "scopes",
                self.scopes.is_some(),
                "oauth2-app-only always asks for the resource's `.default` scope; grant application permissions to the app instead",
            )?;
            refuse(
                "return_urls",
                self.return_urls.is_some(),
                "return URLs are for oauth2-delegated browser sign-ins; client credentials involve no browser",
            )?;
            let credential = required(
                "client_secret",
                credential,
                "oauth2-app-only needs a client secret or a certificate",
            )?;
            return Ok(Auth::OAuth2AppOnly(AppOnlyAuth {
                client_id,
                credential,
            }));
        }
        let flow = parse_field("flow", &self.flow)?.unwrap_or(DelegatedFlow::AuthorizationCode);
        if flow.is_public_client_flow() && credential.is_some() {
            let field = if self.client_secret.is_some() {
                "client_secret"
            } else {
                "certificate"
            };
            return Err(InvalidInput::new(
                field,
                format!(
                    "the {flow} flow is a public-client flow: Entra ID refuses a client secret or certificate \
                     with it (AADSTS700025); remove the credential, or use the authorization-code flow"
                ),
            ));
        }
        let scopes = self.scopes.clone().unwrap_or_default();
        if let Some(bad) = scopes
            .iter()
            .find(|s| s.is_empty() || s.chars().any(char::is_whitespace))
        {
            return Err(InvalidInput::new(
                "scopes",
                format!("`{bad}` is not a scope; give one scope per value, such as Mail.ReadWrite"),
            ));
        }
        Ok(Auth::OAuth2Delegated(DelegatedAuth {
            client_id,
            flow,
            credential,
            redirect_uri: parse_field("redirect_uri", &self.redirect_uri)?,
            scopes,
            return_urls: self
                .return_urls
                .iter()
                .flatten()
                .map(|u| {
                    u.parse::<EndpointUrl>()
                        .map_err(|e| InvalidInput::new("return_urls", e.0))
                })
                .collect::<Result<_, _>>()?,
        }))
    }

    fn client_credential(&self, entra: bool) -> Result<Option<ClientCredential>, InvalidInput> {
        match (
            &self.client_secret,
            &self.certificate_pem,
            &self.private_key_pem,
        ) {
            (Some(_), Some(_), _) => Err(InvalidInput::new(
                "client_secret",
                "give either a client secret or a certificate, not both".into(),
            )),
            (Some(secret), None, None) => {
                check_client_secret(secret, entra)?;
                Ok(Some(ClientCredential::Secret(secret.clone())))
            }
            (Some(_), None, Some(_)) => Err(InvalidInput::new(
                "private_key",
                "a private key goes with a certificate, not with a client secret".into(),
            )),
            (None, Some(cert), key) => {
                let key = key.clone().unwrap_or_else(|| Secret::new(cert.clone()));
                ClientCertificate::from_pem(cert, &key)
                    .and_then(|c| c.check_key_matches().map(|()| c))
                    .map(|c| Some(ClientCredential::Certificate(c)))
                    .map_err(|e| InvalidInput::new("certificate", e.0))
            }
            (None, None, Some(_)) => Err(InvalidInput::missing(
                "certificate",
                "a private key was given without its certificate".into(),
            )),
            (None, None, None) => Ok(None),
        }
    }

    fn password_auth(&self, kind: AuthKind) -> Result<Auth, InvalidInput> {
        let what = kind.as_str();
        for (field, present) in [
            ("client_id", self.client_id.is_some()),
            ("client_secret", self.client_secret.is_some()),
            (
                "certificate",
                self.certificate_pem.is_some() || self.private_key_pem.is_some(),
            ),
            ("flow", self.flow.is_some()),
            ("redirect_uri", self.redirect_uri.is_some()),
            ("scopes", self.scopes.is_some()),
            ("return_urls", self.return_urls.is_some()),
        ] {
            refuse(
                field,
                present,
                &format!("{field} is for OAuth2 auth, not {what}"),
            )?;
        }
        let username = required(
            "username",
            self.username.clone(),
            &format!("{what} auth needs a user name"),
        )?;
        let username = username.trim().to_owned();
        if username.is_empty() || username.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "username",
                "the user name is empty or holds control characters".into(),
            ));
        }
        let password = required(
            "password",
            self.password.clone(),
            &format!("{what} auth needs a password"),
        )?;
        if password.is_empty() {
            return Err(InvalidInput::new(
                "password",
                "the password is empty".into(),
            ));
        }
        let auth = PasswordAuth { username, password };
        Ok(if kind == AuthKind::Basic {
            Auth::Basic(auth)
        } else {
            Auth::Ntlm(auth)
        })
    }

    /// Overlays the fields `other` sets onto `self`.
    pub fn overlay(&mut self, other: ConnectionSpec) {
        // A new credential of one kind replaces one of the other kind.
        if other.certificate_pem.is_some() && other.client_secret.is_none() {
            self.client_secret = None;
        } else if other.client_secret.is_some() && other.certificate_pem.is_none() {
            self.certificate_pem = None;
            self.private_key_pem = None;
        }
        macro_rules! take {
            ($($f:ident),+) => { $(if other.$f.is_some() { self.$f = other.$f; })+ };
        }
        take!(
            target,
            cloud,
            tenant,
            server_version,
            ews_url,
            backend,
            auth,
            client_id,
            flow,
            redirect_uri,
            scopes,
            return_urls,
            authority,
            resource,
            username,
            client_secret,
            certificate_pem,
            private_key_pem,
            password,
            send,
            imap_url,
            pop_url,
            smtp_url,
            credential_expires
        );
    }
}

/// IMAP, POP and SMTP are Exchange Online's with OAuth2 (XOAUTH2): Exchange Server's Basic or
/// NTLM over them is not supported. IMAP and POP cannot send, so their connections send over
/// SMTP; Graph sends only for Exchange Online.
fn check_mail_protocols(
    target: &Target,
    backend: Backend,
    send: SendVia,
    auth: AuthKind,
    mail: &MailEndpoints,
) -> Result<(), InvalidInput> {
    let online = matches!(target, Target::Online { .. });
    let oauth2 = matches!(auth, AuthKind::OAuth2Delegated | AuthKind::OAuth2AppOnly);
    if backend.is_mail_protocol() {
        if !online || !oauth2 {
            return Err(InvalidInput::new(
                "backend",
                format!(
                    "the {backend} backend reads Exchange Online with OAuth2 (XOAUTH2); Exchange Server \
                     over IMAP or POP with Basic or NTLM is not supported: use `ews`"
                ),
            ));
        }
        if matches!(send, SendVia::Graph | SendVia::Ews) {
            return Err(InvalidInput::new(
                "send",
                format!(
                    "a {backend} connection sends over SMTP (`send = smtp` or `auto`); to send with \
                     {send}, make a {send} connection"
                ),
            ));
        }
    }
    if send == SendVia::Smtp && (!online || !oauth2) {
        return Err(InvalidInput::new(
            "send",
            "SMTP submission with XOAUTH2 is for Exchange Online with OAuth2; Exchange Server sends \
             through EWS (`send = auto`)"
                .into(),
        ));
    }
    if send == SendVia::Graph && !online {
        return Err(InvalidInput::new(
            "send",
            "Exchange Server has no Microsoft Graph; use `auto` or `ews`".into(),
        ));
    }
    if !online && !mail.is_empty() {
        let field = if mail.imap_url.is_some() {
            "imap_url"
        } else if mail.pop_url.is_some() {
            "pop_url"
        } else {
            "smtp_url"
        };
        return Err(InvalidInput::new(
            field,
            "mail server URLs are for Exchange Online connections that read over IMAP/POP or send over SMTP".into(),
        ));
    }
    Ok(())
}

impl ConnectionSettings {
    /// The spec that validates back into these settings, secrets included.
    pub fn to_spec(&self) -> ConnectionSpec {
        let mut spec = ConnectionSpec {
            backend: Some(self.backend.to_string()),
            send: (self.send != SendVia::Auto).then(|| self.send.to_string()),
            imap_url: self.mail.imap_url.as_ref().map(ToString::to_string),
            pop_url: self.mail.pop_url.as_ref().map(ToString::to_string),
            smtp_url: self.mail.smtp_url.as_ref().map(ToString::to_string),
            authority: self.authority.as_ref().map(ToString::to_string),
            resource: self.resource.as_ref().map(ToString::to_string),
            auth: Some(self.auth.kind().to_string()),
            credential_expires: self.credential_expires.and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
            ..ConnectionSpec::default()
        };
        match &self.target {
            Target::Online { cloud, tenant } => {
                spec.target = Some("online".into());
                spec.cloud = Some(cloud.to_string());
                spec.tenant = Some(tenant.to_string());
            }
            Target::Server { version, ews_url } => {
                spec.target = Some("server".into());
                spec.server_version = Some(version.to_string());
                spec.ews_url = Some(ews_url.to_string());
            }
        }
        let mut credential = |c: &ClientCredential| match c {
            ClientCredential::Secret(s) => spec.client_secret = Some(s.clone()),
            ClientCredential::Certificate(c) => {
                spec.certificate_pem = Some(c.certificate_pem().to_owned());
                spec.private_key_pem = Some(c.private_key().clone());
            }
        };
        match &self.auth {
            Auth::OAuth2Delegated(d) => {
                if let Some(c) = &d.credential {
                    credential(c);
                }
                spec.client_id = Some(d.client_id.to_string());
                spec.flow = Some(d.flow.to_string());
                spec.redirect_uri = d.redirect_uri.as_ref().map(ToString::to_string);
                spec.scopes = (!d.scopes.is_empty()).then(|| d.scopes.clone());
                spec.return_urls = (!d.return_urls.is_empty())
                    .then(|| d.return_urls.iter().map(ToString::to_string).collect());
            }
            Auth::OAuth2AppOnly(a) => {
                credential(&a.credential);
                spec.client_id = Some(a.client_id.to_string());
            }
            Auth::Basic(p) | Auth::Ntlm(p) => {
                spec.username = Some(p.username.clone());
                spec.password = Some(p.password.clone());
            }
        }
        spec
    }

    /// The spec for an edit: these settings with what `change` sets on top. Fields of the old
    /// settings that the new target or auth kind does not use are dropped first, so an edit may
    /// switch kinds; fields that `change` itself sets are kept, so a misfit there is still an error.
    /// `clear_credential` removes the client secret or certificate (to make a public client).
    pub fn edited(&self, change: ConnectionSpec, clear_credential: bool) -> ConnectionSpec {
        let mut base = self.to_spec();
        if clear_credential {
            base.client_secret = None;
            base.certificate_pem = None;
            base.private_key_pem = None;
        }
        // A new or removed credential does not inherit the old one's expiry.
        let new_credential = change.client_secret.is_some()
            || change.certificate_pem.is_some()
            || change.password.is_some();
        if clear_credential || new_credential {
            base.credential_expires = None;
        }
        let new_target = change
            .target
            .as_deref()
            .map(|t| t.trim().to_ascii_lowercase());
        let target_changes = new_target.is_some_and(|t| t != self.target.kind())
            || (change.ews_url.is_some() && matches!(self.target, Target::Online { .. }))
            || (change.tenant.is_some() && matches!(self.target, Target::Server { .. }));
        if target_changes {
            base.target = None;
            base.cloud = None;
            base.tenant = None;
            base.server_version = None;
            base.ews_url = None;
            base.imap_url = None;
            base.pop_url = None;
            base.smtp_url = None;
        }
        // An unparsable kind is left for `validate` to report.
        let new_auth = change
            .auth
            .as_deref()
            .and_then(|a| a.parse::<AuthKind>().ok());
        if new_auth.is_some_and(|k| k != self.auth.kind()) {
            let keep_backend = base.backend.take();
            let keep_send = base.send.take();
            let (keep_imap, keep_pop, keep_smtp) = (
                base.imap_url.take(),
                base.pop_url.take(),
                base.smtp_url.take(),
            );
            let keep_authority = base.authority.take();
            let keep_resource = base.resource.take();
            base = ConnectionSpec {
                target: base.target,
                cloud: base.cloud,
                tenant: base.tenant,
                server_version: base.server_version,
                ews_url: base.ews_url,
                backend: keep_backend,
                send: keep_send,
                imap_url: keep_imap,
                pop_url: keep_pop,
                smtp_url: keep_smtp,
                authority: keep_authority,
                resource: keep_resource,
                // OAuth2 kinds share the client ID.
                client_id: base.client_id,
                ..ConnectionSpec::default()
            };
            if matches!(new_auth, Some(AuthKind::Basic | AuthKind::Ntlm)) {
                base.client_id = None;
                base.authority = None;
                base.resource = None;
            }
        }
        base.overlay(change);
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../../tests/fixtures/app.crt");
    const KEY: &str = include_str!("../../tests/fixtures/app.key");
    const CLIENT: &str = "11111111-2222-3333-4444-555555555555";

    fn online(auth: &str) -> ConnectionSpec {
        ConnectionSpec {
            tenant: Some("contoso.onmicrosoft.com".into()),
            auth: Some(auth.into()),
            client_id: Some(CLIENT.into()),
            ..ConnectionSpec::default()
        }
    }

    fn server(auth: &str) -> ConnectionSpec {
        ConnectionSpec {
            ews_url: Some("https://mail.contoso.com/EWS/Exchange.asmx".into()),
            auth: Some(auth.into()),
            username: Some("CONTOSO\\svc".into()),
            password: Some(Secret::new("pw")),
            ..ConnectionSpec::default()
        }
    }

    fn field_error(spec: &ConnectionSpec) -> (&'static str, String) {
        let e = spec.validate().unwrap_err();
        (e.field, e.message)
    }

    #[test]
    fn imap_and_pop_connections_send_over_smtp_and_take_their_own_servers() {
        let mut pop = online("oauth2-app-only");
        pop.client_secret = Some(Secret::new("abc8Q~secret-value-0123456789"));
        pop.backend = Some("pop".into());
        pop.pop_url = Some("pop3://127.0.0.1:1110".into());
        pop.smtp_url = Some("smtps://127.0.0.1:4650".into());
        let settings = pop.validate().unwrap();
        assert_eq!(settings.backend, Backend::Pop);
        assert_eq!(settings.sending(), Sender::Smtp);
        assert_eq!(
            settings.mail_protocols(),
            [MailProtocol::Pop, MailProtocol::Smtp]
        );
        assert_eq!(settings.to_spec().validate().unwrap(), settings);

        // Graph reading, SMTP sending.
        let mut graph = pop.clone();
        graph.backend = None;
        graph.send = Some("smtp".into());
        graph.pop_url = None;
        let settings = graph.validate().unwrap();
        assert_eq!(settings.mail_protocols(), [MailProtocol::Smtp]);
        graph.send = None;
        graph.smtp_url = None;
        assert_eq!(graph.validate().unwrap().sending(), Sender::Graph);

        let mut wrong = pop.clone();
        wrong.send = Some("graph".into());
        assert_eq!(field_error(&wrong).0, "send");
        let mut wrong = pop.clone();
        wrong.pop_url = Some("imaps://127.0.0.1:993".into());
        let (field, message) = field_error(&wrong);
        assert_eq!(field, "pop_url");
        assert!(message.contains("is an IMAP server"), "{message}");
        let mut wrong = server("ntlm");
        wrong.backend = Some("imap".into());
        let (field, message) = field_error(&wrong);
        assert_eq!(field, "backend");
        assert!(message.contains("use `ews`"), "{message}");
        let mut wrong = server("basic");
        wrong.send = Some("smtp".into());
        assert_eq!(field_error(&wrong).0, "send");
    }

    #[test]
    fn every_auth_kind_round_trips_through_its_spec() {
        let mut delegated = online("oauth2-delegated");
        delegated.cloud = Some("usgov".into());
        delegated.client_secret = Some(Secret::new("abc8Q~secret-value-0123456789"));
        delegated.redirect_uri = Some("https://portal.contoso.com/service/oauth2/authorize".into());
        delegated.scopes = Some(vec!["Mail.Read".into(), "offline_access".into()]);
        let mut app_cert = online("oauth2-app-only");
        app_cert.certificate_pem = Some(CERT.into());
        app_cert.private_key_pem = Some(Secret::new(KEY));
        let mut adfs = server("oauth2-delegated");
        adfs.username = None;
        adfs.password = None;
        adfs.client_id = Some(CLIENT.into());
        adfs.flow = Some("device-code".into());
        adfs.authority =
            Some("https://adfs.contoso.com/adfs/.well-known/openid-configuration".into());
        for spec in [delegated, app_cert, server("basic"), server("ntlm"), adfs] {
            let settings = spec.validate().unwrap();
            assert_eq!(settings.to_spec().validate().unwrap(), settings);
        }
    }

    #[test]
    fn a_custom_authority_takes_its_own_client_ids_and_a_resource() {
        let mut keycloak = online("oauth2-delegated");
        keycloak.client_id = Some("exgate-portal".into());
        keycloak.authority =
            Some("https://sso.contoso.com/realms/staff/.well-known/openid-configuration".into());
        keycloak.resource = Some("https://api.contoso.com".into());
        let settings = keycloak.validate().unwrap();
        assert_eq!(
            settings.resource.as_ref().unwrap().as_str(),
            "https://api.contoso.com"
        );
        assert_eq!(settings.to_spec().validate().unwrap(), settings);
        // A GUID-shaped secret is only Entra's secret ID; other providers may issue one.
        let mut app = keycloak.clone();
        app.auth = Some("oauth2-app-only".into());
        app.client_secret = Some(Secret::new(CLIENT));
        app.resource = None;
        assert!(app.validate().is_ok());

        // Entra ID: a GUID client ID, and no resource indicator.
        let entra = ConnectionSpec {
            authority: None,
            resource: None,
            ..keycloak.clone()
        };
        let (field, message) = field_error(&entra);
        assert_eq!(field, "client_id");
        assert!(message.contains("GUID"), "{message}");
        let entra = ConnectionSpec {
            authority: None,
            client_id: Some(CLIENT.into()),
            ..keycloak.clone()
        };
        assert_eq!(field_error(&entra).0, "resource");

        for bad in ["", "a\tb", "caf\u{e9}"] {
            let spec = ConnectionSpec {
                client_id: Some(bad.into()),
                ..keycloak.clone()
            };
            assert_eq!(field_error(&spec).0, "client_id", "{bad:?}");
        }
        for bad in ["not a uri", "https://api.contoso.com/#frag", "/relative"] {
            let spec = ConnectionSpec {
                resource: Some(bad.into()),
                ..keycloak.clone()
            };
            assert_eq!(field_error(&spec).0, "resource", "{bad:?}");
        }
        // Switching to basic auth drops the resource with the authority.
        let edited = settings.edited(
            ConnectionSpec {
                auth: Some("basic".into()),
                ..ConnectionSpec::default()
            },
            false,
        );
        assert_eq!(edited.resource, None);
    }

    #[test]
    fn certificate_thumbprint_is_sha256_of_der() {
        let c = ClientCertificate::from_pem(CERT, &Secret::new(KEY)).unwrap();
        assert_eq!(c.thumbprint_sha256().len(), 64);
        assert!(
            c.certificate_pem()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        // A combined PEM file carries both.
        let both = format!("{CERT}{KEY}");
        let c2 = ClientCertificate::from_pem(&both, &Secret::new(both.clone())).unwrap();
        assert_eq!(c.thumbprint_sha256(), c2.thumbprint_sha256());
        assert!(ClientCertificate::from_pem(KEY, &Secret::new(KEY)).is_err());
        assert!(ClientCertificate::from_pem(CERT, &Secret::new(CERT)).is_err());
    }

    #[test]
    fn a_private_key_that_is_not_the_certificates_is_refused() {
        const OTHER_KEY: &str = include_str!("../../tests/fixtures/other.key");
        let matching = ClientCertificate::from_pem(CERT, &Secret::new(KEY)).unwrap();
        matching.check_key_matches().unwrap();
        let other = ClientCertificate::from_pem(CERT, &Secret::new(OTHER_KEY)).unwrap();
        let err = other.check_key_matches().unwrap_err();
        assert!(
            err.0.contains("does not belong to the certificate"),
            "{}",
            err.0
        );

        // At validation, that is at `connection add` and for declared connections.
        let spec = ConnectionSpec {
            tenant: Some("contoso.onmicrosoft.com".into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some("11111111-2222-3333-4444-555555555555".into()),
            certificate_pem: Some(CERT.into()),
            private_key_pem: Some(Secret::new(OTHER_KEY)),
            ..ConnectionSpec::default()
        };
        let err = spec.validate().unwrap_err();
        assert_eq!(err.field, "certificate");
        assert!(err.message.contains("does not belong"), "{}", err.message);
        assert!(
            !err.message.contains("PRIVATE KEY-----\n"),
            "{}",
            err.message
        );
        let spec = ConnectionSpec {
            private_key_pem: Some(Secret::new(KEY)),
            ..spec
        };
        spec.validate().unwrap();
    }

    #[test]
    fn a_secret_for_a_public_client_flow_is_refused() {
        for flow in ["device-code", "password"] {
            let mut spec = online("oauth2-delegated");
            spec.flow = Some(flow.into());
            spec.client_secret = Some(Secret::new("abc8Q~secret-value-0123456789"));
            let (field, message) = field_error(&spec);
            assert_eq!(field, "client_secret");
            assert!(message.contains("public-client flow"), "{message}");
            assert!(message.contains("AADSTS700025"), "{message}");
        }
    }

    #[test]
    fn the_secret_id_is_recognised() {
        let mut spec = online("oauth2-app-only");
        spec.client_secret = Some(Secret::new("9b5d7c2e-1f0a-4d3b-8c6e-2a1b0c9d8e7f"));
        let (field, message) = field_error(&spec);
        assert_eq!(field, "client_secret");
        assert!(message.contains("the secret's ID"), "{message}");
        assert!(!message.contains("9b5d7c2e"), "{message}");
    }

    #[test]
    fn misfits_are_named() {
        let cases: Vec<(ConnectionSpec, &str, &str)> = vec![
            (
                online("oauth2-app-only"),
                "client_secret",
                "needs a client secret or a certificate",
            ),
            (
                ConnectionSpec {
                    auth: Some("basic".into()),
                    ..online("basic")
                },
                "auth",
                "no longer accepts basic",
            ),
            (
                ConnectionSpec {
                    backend: Some("graph".into()),
                    ..server("basic")
                },
                "backend",
                "no Microsoft Graph",
            ),
            (
                ConnectionSpec {
                    ews_url: Some("http://mail.contoso.com/EWS/Exchange.asmx".into()),
                    ..server("basic")
                },
                "ews_url",
                "clear text",
            ),
            (
                ConnectionSpec {
                    tenant: None,
                    ..online("oauth2-delegated")
                },
                "target",
                "give a tenant",
            ),
            (
                ConnectionSpec {
                    client_id: Some("secret-id".into()),
                    ..online("oauth2-delegated")
                },
                "client_id",
                "malformed client ID",
            ),
            (
                ConnectionSpec {
                    auth: Some("kerberos".into()),
                    ..online("oauth2-delegated")
                },
                "auth",
                "expected one of: oauth2-delegated",
            ),
            (
                ConnectionSpec {
                    password: Some(Secret::new("x")),
                    ..online("oauth2-delegated")
                },
                "password",
                "for basic or ntlm",
            ),
            (
                ConnectionSpec {
                    client_id: Some(CLIENT.into()),
                    password: None,
                    username: None,
                    ..server("oauth2-app-only")
                },
                "client_secret",
                "needs a client secret",
            ),
        ];
        for (spec, field, needle) in cases {
            let (f, m) = field_error(&spec);
            assert_eq!(f, field, "{m}");
            assert!(m.contains(needle), "{field}: {m}");
        }
    }

    #[test]
    fn edits_may_switch_kinds_and_drop_credentials() {
        let mut spec = online("oauth2-delegated");
        spec.client_secret = Some(Secret::new("abc8Q~secret-value-0123456789"));
        let settings = spec.validate().unwrap();

        // Switching to a public-client flow needs the secret removed.
        let change = ConnectionSpec {
            flow: Some("device-code".into()),
            ..ConnectionSpec::default()
        };
        assert!(settings.edited(change.clone(), false).validate().is_err());
        let public = settings.edited(change, true).validate().unwrap();
        let Auth::OAuth2Delegated(d) = &public.auth else {
            panic!("{public:?}")
        };
        assert!(d.credential.is_none());
        assert_eq!(d.flow, DelegatedFlow::DeviceCode);

        // Switching to Exchange Server with NTLM drops the tenant and the client ID.
        let change = ConnectionSpec {
            ews_url: Some("https://mail.contoso.com/EWS/Exchange.asmx".into()),
            ..server("ntlm")
        };
        let ntlm = settings.edited(change, false).validate().unwrap();
        // Naming the kind it already has, in any case, keeps the rest.
        let same = ConnectionSpec {
            auth: Some("OAuth2-Delegated".into()),
            ..ConnectionSpec::default()
        };
        assert_eq!(settings.edited(same, false).validate().unwrap(), settings);
        assert_eq!(ntlm.auth.kind(), AuthKind::Ntlm);
        assert!(matches!(ntlm.target, Target::Server { .. }));

        // A certificate replaces a secret.
        let change = ConnectionSpec {
            certificate_pem: Some(CERT.into()),
            private_key_pem: Some(Secret::new(KEY)),
            ..ConnectionSpec::default()
        };
        let cert = settings.edited(change, false).validate().unwrap();
        let Auth::OAuth2Delegated(d) = &cert.auth else {
            panic!()
        };
        assert!(matches!(
            d.credential,
            Some(ClientCredential::Certificate(_))
        ));
    }
}
