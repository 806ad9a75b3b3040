//! Where a mail protocol is served, written as a URL whose scheme says the protocol and how TLS
//! starts: `imaps://host:993`, `imap://host:143` (STARTTLS), `pop3s://host:995`, `pop3://host:110`
//! (STLS), `smtps://host:465`, `smtp://host:587` (STARTTLS). There is no plaintext mode: a plain
//! scheme means the connection is upgraded before any credential is sent.

use std::fmt;
use std::str::FromStr;

use crate::model::Cloud;

/// A mail protocol exgate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailProtocol {
    Imap,
    Pop,
    Smtp,
}

impl MailProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Imap => "IMAP",
            Self::Pop => "POP",
            Self::Smtp => "SMTP",
        }
    }

    /// The resource whose token the protocol takes (its delegated scope differs per protocol).
    pub fn resource(self) -> crate::model::Resource {
        match self {
            Self::Imap => crate::model::Resource::Imap,
            Self::Pop => crate::model::Resource::Pop,
            Self::Smtp => crate::model::Resource::Smtp,
        }
    }
}

impl fmt::Display for MailProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How TLS starts on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    /// TLS from the first byte (993, 995, 465).
    Tls,
    /// A plain greeting, then `STARTTLS` (`STLS` for POP) before anything else (143, 110, 587).
    StartTls,
}

/// A mail server's address: protocol, TLS mode, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailUrl {
    protocol: MailProtocol,
    security: Security,
    host: String,
    port: u16,
}

/// Why a mail URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{url}` is not a mail server URL: {why}")]
pub struct MailUrlError {
    url: String,
    why: String,
}

const SCHEMES: [(&str, MailProtocol, Security, u16); 6] = [
    ("imaps", MailProtocol::Imap, Security::Tls, 993),
    ("imap", MailProtocol::Imap, Security::StartTls, 143),
    ("pop3s", MailProtocol::Pop, Security::Tls, 995),
    ("pop3", MailProtocol::Pop, Security::StartTls, 110),
    ("smtps", MailProtocol::Smtp, Security::Tls, 465),
    ("smtp", MailProtocol::Smtp, Security::StartTls, 587),
];

impl MailUrl {
    /// Exchange Online's server for `protocol` in `cloud`: IMAP on 993 and POP on 995 with
    /// implicit TLS, SMTP submission on 587 with STARTTLS.
    pub fn exchange_online(protocol: MailProtocol, cloud: Cloud) -> MailUrl {
        let (mailbox_host, smtp_host) = match cloud {
            Cloud::Global => ("outlook.office365.com", "smtp.office365.com"),
            Cloud::UsGov => ("outlook.office365.us", "smtp.office365.us"),
            Cloud::China => ("partner.outlook.cn", "smtp.partner.outlook.cn"),
        };
        let (host, security, port) = match protocol {
            MailProtocol::Imap => (mailbox_host, Security::Tls, 993),
            MailProtocol::Pop => (mailbox_host, Security::Tls, 995),
            MailProtocol::Smtp => (smtp_host, Security::StartTls, 587),
        };
        MailUrl {
            protocol,
            security,
            host: host.to_owned(),
            port,
        }
    }

    pub fn protocol(&self) -> MailProtocol {
        self.protocol
    }

    pub fn security(&self) -> Security {
        self.security
    }

    /// The host name (or IP address, without brackets) the certificate must name.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn scheme(&self) -> &'static str {
        SCHEMES
            .iter()
            .find(|(_, p, s, _)| *p == self.protocol && *s == self.security)
            .map_or("", |(scheme, ..)| scheme)
    }
}

impl FromStr for MailUrl {
    type Err = MailUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refuse = |why: &str| MailUrlError {
            url: s.to_owned(),
            why: why.to_owned(),
        };
        let url = url::Url::parse(s.trim()).map_err(|e| refuse(&e.to_string()))?;
        let Some(&(_, protocol, security, default_port)) =
            SCHEMES.iter().find(|(scheme, ..)| *scheme == url.scheme())
        else {
            return Err(refuse(
                "the scheme must be imaps, imap, pop3s, pop3, smtps or smtp",
            ));
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse(
                "it must not carry a user name or password (exgate authenticates with OAuth2)",
            ));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(refuse("it must be only scheme, host and port"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(refuse("it names no host")),
        };
        Ok(MailUrl {
            protocol,
            security,
            host,
            port: url.port().unwrap_or(default_port),
        })
    }
}

impl fmt::Display for MailUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme(), self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme(), self.host, self.port)
        }
    }
}

impl serde::Serialize for MailUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MailUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_say_the_protocol_the_tls_mode_and_the_default_port() {
        let url: MailUrl = "imaps://outlook.office365.com".parse().unwrap();
        assert_eq!(
            (url.protocol(), url.security(), url.host(), url.port()),
            (
                MailProtocol::Imap,
                Security::Tls,
                "outlook.office365.com",
                993
            )
        );
        let url: MailUrl = "smtp://127.0.0.1:2525".parse().unwrap();
        assert_eq!(
            (url.protocol(), url.security(), url.port()),
            (MailProtocol::Smtp, Security::StartTls, 2525)
        );
        let url: MailUrl = "pop3://[::1]:1110/".parse().unwrap();
        assert_eq!(
            (url.host(), url.to_string().as_str()),
            ("::1", "pop3://[::1]:1110")
        );
        for (protocol, cloud, text) in [
            (
                MailProtocol::Imap,
                Cloud::Global,
                "imaps://outlook.office365.com:993",
            ),
            (
                MailProtocol::Pop,
                Cloud::UsGov,
                "pop3s://outlook.office365.us:995",
            ),
            (
                MailProtocol::Smtp,
                Cloud::China,
                "smtp://smtp.partner.outlook.cn:587",
            ),
        ] {
            let url = MailUrl::exchange_online(protocol, cloud);
            assert_eq!(url.to_string(), text);
            assert_eq!(text.parse::<MailUrl>().unwrap(), url);
        }
    }

    #[test]
    fn anything_but_scheme_host_and_port_is_refused() {
        for bad in [
            "https://outlook.office365.com",
            "imaps://user:pass@outlook.office365.com",
            "imaps://outlook.office365.com/INBOX",
            "imaps://outlook.office365.com?x=1",
            "imaps://",
            "outlook.office365.com:993",
            "",
        ] {
            let err = bad.parse::<MailUrl>().unwrap_err();
            assert!(
                err.to_string().contains("is not a mail server URL"),
                "{bad}: {err}"
            );
        }
    }
}
