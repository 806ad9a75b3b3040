//! The gateway's admin credential. There is no default password: on first start the gateway
//! generates one, keeps only its argon2 hash, and shows it once; or the operator configures one,
//! which must not be short or a well-known default.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clock::Clock;
use crate::secret::{Secret, random_bytes};
use crate::store::{Store, StoreError};

/// The shortest admin password accepted from configuration.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Passwords that appear in vendor manuals and breach lists; refused whatever their length.
const WELL_KNOWN: &[&str] = &[
    "admin",
    "administrator",
    "password",
    "passw0rd",
    "p@ssw0rd",
    "changeme",
    "change-me",
    "exgate",
    "mediagateway",
    "secret",
    "letmein",
    "welcome",
    "default",
    "qwerty",
    "123456",
    "12345678",
    "123456789",
    "1234567890",
    "000000000000",
    "password1234",
    "adminadmin12",
    "administrator1",
    "changemenow!",
    "exgate-admin",
];

/// Checks a configured admin password. The error says why, never what the password is.
pub fn check_configured_password(password: &Secret) -> Result<(), String> {
    let p = password.expose();
    let lower = p.to_ascii_lowercase();
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c == '!');
    if WELL_KNOWN.contains(&lower.as_str()) || WELL_KNOWN.contains(&stem) {
        return Err("the admin password is a well-known default; choose another, or remove it to have exgate-server generate one".into());
    }
    if p.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!(
            "the admin password is shorter than {MIN_PASSWORD_LEN} characters; choose a longer one, or remove it to have exgate-server generate one"
        ));
    }
    if p.chars().all(|c| p.starts_with(c)) {
        return Err("the admin password repeats one character; choose another".into());
    }
    Ok(())
}

/// A new random password: 24 characters of URL-safe base64 (144 bits).
pub fn generate_password() -> Secret {
    Secret::new(URL_SAFE_NO_PAD.encode(random_bytes::<18>()))
}

/// The argon2id PHC string for `password`, with a random salt.
pub fn hash_password(password: &Secret) -> String {
    #[allow(
        clippy::expect_used,
        reason = "argon2 with default parameters fails only for passwords over 4 GiB or a failing OS RNG"
    )]
    Argon2::default()
        .hash_password(password.expose().as_bytes())
        .expect("argon2 hashing failed")
        .to_string()
}

/// Whether `password` matches the PHC `hash`. A malformed hash matches nothing.
pub fn verify_password(password: &Secret, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.expose().as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// What start-up did about the admin credential.
#[derive(Debug)]
pub enum AdminCredential {
    /// The password comes from configuration.
    Configured,
    /// A generated password's hash is already in the store.
    Stored,
    /// A password was generated now; show it once, it is not kept.
    Generated(Secret),
}

/// Makes sure the gateway has an admin credential, generating one on first start.
pub async fn ensure_admin_credential(
    store: &dyn Store,
    configured: Option<&Secret>,
    clock: &dyn Clock,
) -> Result<AdminCredential, StoreError> {
    if configured.is_some() {
        return Ok(AdminCredential::Configured);
    }
    if store.admin_password_hash().await?.is_some() {
        return Ok(AdminCredential::Stored);
    }
    Ok(AdminCredential::Generated(
        reset_admin_credential(store, clock).await?,
    ))
}

/// Replaces the stored admin password with a new random one and returns it.
pub async fn reset_admin_credential(
    store: &dyn Store,
    clock: &dyn Clock,
) -> Result<Secret, StoreError> {
    let password = generate_password();
    store
        .set_admin_password_hash(&hash_password(&password), clock.now())
        .await?;
    tracing::info!("a new admin password was generated");
    Ok(password)
}

/// Checks an admin password against the configured one, else the stored hash.
pub async fn verify_admin(
    store: &dyn Store,
    configured: Option<&Secret>,
    candidate: &Secret,
) -> Result<bool, StoreError> {
    if let Some(c) = configured {
        return Ok(c == candidate);
    }
    Ok(store
        .admin_password_hash()
        .await?
        .is_some_and(|h| verify_password(candidate, &h)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_configured_passwords_are_refused() {
        for weak in [
            "admin",
            "Password1234",
            "changeme",
            "short-pw",
            "aaaaaaaaaaaaaa",
            "exgate-admin",
            "MediaGateway1",
        ] {
            assert!(
                check_configured_password(&Secret::new(weak)).is_err(),
                "{weak}"
            );
        }
        assert!(check_configured_password(&Secret::new("correct horse battery staple")).is_ok());
    }

    #[test]
    fn errors_do_not_echo_the_password() {
        let err = check_configured_password(&Secret::new("tiny-pass")).unwrap_err();
        assert!(!err.contains("tiny-pass"), "{err}");
    }

    #[test]
    fn generated_passwords_hash_and_verify() {
        let p = generate_password();
        assert_eq!(p.expose().len(), 24);
        assert_ne!(p.expose(), generate_password().expose());
        let hash = hash_password(&p);
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(p.expose()));
        assert!(verify_password(&p, &hash));
        assert!(!verify_password(&Secret::new("wrong"), &hash));
        assert!(!verify_password(&p, "not a hash"));
    }
}
