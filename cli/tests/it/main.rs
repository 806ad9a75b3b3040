//! The `exgate` binary, end to end: one test binary, one module per area.

mod app_register;
mod autodiscover;
mod bridge;
mod connections;
mod diagnose;
mod ews;
mod ews_diagnose;
mod ews_server;
mod expiry;
mod mail_protocols;
mod mailbox;
mod pipeline;
mod signin;
mod terminal;
mod util;
mod watch;
