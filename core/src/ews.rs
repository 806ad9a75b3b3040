//! The EWS backend (Exchange Web Services, SOAP over HTTPS): Exchange Server on premises, and
//! Exchange Online tenants allow-listed until EWS there is switched off (1 April 2027).
//!
//! [`wire`] is the pure part: typed requests that become SOAP envelopes, and strict decoders
//! of the answers into the neutral mailbox types. [`explain`] is [`EwsAnswers`], the
//! pipeline's reading of EWS's answers (`ErrorServerBusy` and its `BackOffMilliseconds`, SOAP
//! faults, 401, "EWS disabled"). [`autodiscover`] finds a mailbox's EWS URL from its address
//! without sending credentials where they do not belong. [`notify`] listens for changes
//! (streaming notifications, or pull subscriptions where streaming is not offered).

pub mod autodiscover;
mod client;
pub mod explain;
pub mod notify;
pub mod wire;

pub use client::EwsMailbox;
pub use explain::EwsAnswers;
pub use notify::EwsListen;
