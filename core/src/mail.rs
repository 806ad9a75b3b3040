//! IMAP, POP3 and SMTP with SASL XOAUTH2 (DESIGN.md §2): the mail protocols Exchange Online
//! still serves to software that reads and sends mail without Graph or EWS.
//!
//! - [`url`]: where a protocol is served (`imaps://`, `imap://` + STARTTLS, `pop3s://`, `pop3://` +
//!   STLS, `smtps://`, `smtp://` + STARTTLS) and the defaults of each Microsoft cloud;
//! - [`stream`]: TCP with implicit TLS or a STARTTLS upgrade, trusting the system's roots plus
//!   `tls.ca_file`, as the HTTP client does;
//! - [`xoauth2`]: the SASL XOAUTH2 initial response.
//!
//! Authentication is never sent in the clear: a plain URL means STARTTLS (STLS for POP) before
//! anything else.

pub mod claims;
pub mod compose;
pub mod composed;
pub mod explain;
pub mod explained;
pub mod imap;
pub mod parse;
pub mod pop;
pub mod smtp;
pub mod stream;
pub mod url;
pub mod xoauth2;

pub use explain::{FailureKind, MailFailure};

pub use stream::{MailConnector, MailStream};
pub use url::{MailProtocol, MailUrl, Security};
