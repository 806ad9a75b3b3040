//! Test credentials shared by the mocks and by the tests of other crates.
//!
//! The app certificate is registered on the seeded daemon app
//! ([`crate::entra::seed::DAEMON_APP`]); tests sign client assertions with its key.

/// A self-signed certificate (CN=exgate-test-app, RSA 2048), PEM.
pub const APP_CERT_PEM: &str = include_str!("../fixtures/app.crt");

/// The PKCS#8 private key of [`APP_CERT_PEM`], PEM. A test key: it protects nothing.
pub const APP_KEY_PEM: &str = include_str!("../fixtures/app.key");
