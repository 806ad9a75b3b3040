//! The mock IMAP, POP and SMTP servers with real clients (async-imap, lettre, and a line client
//! for what they do not cover) over real TCP and TLS on 127.0.0.1.

mod support;

mod imap;
mod pop;
mod smtp;
