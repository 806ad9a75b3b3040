//! The API's routes, by area.

pub(crate) mod admin;
pub(crate) mod mailbox;
pub(crate) mod notify;
pub(crate) mod signin;
