//! exgate-core: the domain model, configuration, encrypted store and flows behind the `exgate`
//! CLI and the `exgate-server` gateway. Core holds all logic; it never prints, parses argv or
//! serves HTTP. It emits `tracing` events and leaves subscribing to the binaries.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod apikeys;
pub mod appreg;
pub mod auth;
pub mod bridge;
pub mod changes;
pub mod clock;
pub mod config;
pub mod connections;
pub mod diagnose;
mod error;
pub mod ews;
pub mod expiry;
pub mod export;
pub mod governor;
pub mod graph;
pub mod limiter;
pub mod mail;
pub mod mailbox;
pub mod mailboxes;
pub mod model;
pub mod net;
pub mod notify;
pub mod pipeline;
pub mod secret;
pub mod services;
pub mod setup;
pub mod store;
mod ttl;

pub use error::{Error, ErrorKind};

/// Log filter directives every binary adds after the operator's own, whatever level was asked:
/// async-imap logs every line it reads at trace level, message content included, and exgate
/// never logs message content.
pub const LOG_CAPS: &[&str] = &["async_imap=debug"];
