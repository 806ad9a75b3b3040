//! EWS: Exchange Web Services (SOAP over HTTPS) for Exchange Server on premises.

pub mod autodiscover;
