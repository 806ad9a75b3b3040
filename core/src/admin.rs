//! The gateway's admin credential. There is no default password: on first start the gateway
//! generates one, keeps only its argon2 hash, and shows it once; or the operator configures one,
//! which must not be short or a well-known default.

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::secret::{Secret, constant_time_eq, random_bytes};
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

/// Argon2's working memory for one verification is allocated with room for this many 1 KiB
/// blocks (32 MiB and one block), although only the blocks the hash's parameters ask for (19 MiB
/// by default) are touched. glibc's allocator serves an allocation this large with a mapping of its
/// own and unmaps it when freed, and never raises its dynamic mmap threshold for it; a 19 MiB one
/// would raise the threshold on its first free, and every later verification would leave 19 MiB
/// resident in a thread's arena for good.
const ARGON2_MAPPED_BLOCKS: usize = 32 * 1024 + 1;

/// Whether `password` matches the PHC `hash`. A malformed hash matches nothing. The memory the
/// verification uses is returned to the system when it ends (see [`ARGON2_MAPPED_BLOCKS`]).
pub fn verify_password(password: &Secret, hash: &str) -> bool {
    let Ok(phc) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(phc.algorithm.as_str()),
        Params::try_from(&phc),
    ) else {
        return false;
    };
    let version = match phc.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let count = params.block_count();
    let mut blocks: Vec<Block> = Vec::with_capacity(count.max(ARGON2_MAPPED_BLOCKS));
    blocks.resize(count, Block::new());
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.expose().as_bytes(),
        salt,
        &mut out,
        &mut blocks,
    );
    drop(blocks);
    computed.is_ok() && constant_time_eq(&out, expected.as_ref())
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

/// How many argon2 verifications run at once in the process; more wait their turn, so failed
/// guesses cannot take every core.
pub const ARGON2_CONCURRENCY: usize = 2;

/// The admin password check of a running gateway. A configured password is compared in constant
/// time. A stored one is verified with argon2 (at most [`ARGON2_CONCURRENCY`] at once, off the
/// async workers); the password verified last is remembered together with the stored hash it
/// matched, and the stored hash is read on every check, so `exgate-server admin reset` (a new
/// hash) takes effect at once.
#[derive(Debug)]
pub struct AdminCheck {
    store: Arc<dyn Store>,
    configured: Option<Secret>,
    argon2: tokio::sync::Semaphore,
    remembered: Mutex<Option<([u8; 32], String)>>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl AdminCheck {
    pub fn new(store: Arc<dyn Store>, configured: Option<Secret>) -> Self {
        Self {
            store,
            configured,
            argon2: tokio::sync::Semaphore::new(ARGON2_CONCURRENCY),
            remembered: Mutex::new(None),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Whether `candidate` is the admin password now.
    pub async fn verify(&self, candidate: &Secret) -> Result<bool, StoreError> {
        if let Some(c) = &self.configured {
            return Ok(c == candidate);
        }
        let Some(hash) = self.store.admin_password_hash().await? else {
            return Ok(false);
        };
        let digest: [u8; 32] = Sha256::digest(candidate.expose().as_bytes()).into();
        let known = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|(d, h)| constant_time_eq(d, &digest) && *h == hash);
        if known {
            return Ok(true);
        }
        let ok = {
            let _permit = self.argon2.acquire().await;
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let (c, h) = (candidate.clone(), hash.clone());
            let ok = tokio::task::spawn_blocking(move || verify_password(&c, &h))
                .await
                .unwrap_or(false);
            self.running.fetch_sub(1, Ordering::SeqCst);
            ok
        };
        if ok {
            *self
                .remembered
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some((digest, hash));
        }
        Ok(ok)
    }

    /// A digest of the admin password as it stands now (of the stored hash, or of the configured
    /// password): what a console session is bound to, so a reset or a changed configuration ends
    /// every session. `None` when there is no admin password yet.
    pub async fn binding(&self) -> Result<Option<[u8; 32]>, StoreError> {
        let mut h = Sha256::new();
        if let Some(c) = &self.configured {
            h.update(b"configured/");
            h.update(c.expose().as_bytes());
        } else {
            let Some(hash) = self.store.admin_password_hash().await? else {
                return Ok(None);
            };
            h.update(b"stored/");
            h.update(hash.as_bytes());
        }
        Ok(Some(h.finalize().into()))
    }

    /// The most argon2 verifications that ran at once so far.
    pub fn peak_argon2(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
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

    #[test]
    fn hashes_of_other_parameters_and_variants_verify_as_argon2_says() {
        // Hashes another tool (or an older exgate) may have written: other costs, argon2i and
        // argon2d, version 0x10; each must verify exactly as the argon2 crate's own verifier.
        use argon2::password_hash::PasswordVerifier;
        let password = Secret::new("correct horse battery staple");
        for (algorithm, version, m, t) in [
            (Algorithm::Argon2id, Version::V0x13, 8, 1),
            (Algorithm::Argon2i, Version::V0x13, 64, 3),
            (Algorithm::Argon2d, Version::V0x10, 32, 2),
        ] {
            let params = Params::new(m, t, 1, None).unwrap();
            let hash = Argon2::new(algorithm, version, params)
                .hash_password(password.expose().as_bytes())
                .unwrap()
                .to_string();
            let phc = PasswordHash::new(&hash).unwrap();
            assert!(
                Argon2::default()
                    .verify_password(password.expose().as_bytes(), &phc)
                    .is_ok()
            );
            assert!(verify_password(&password, &hash), "{hash}");
            assert!(!verify_password(&Secret::new("wrong"), &hash), "{hash}");
            // A changed digest or salt matches nothing.
            let (head, digest) = hash.rsplit_once('$').unwrap();
            let flipped = if digest.starts_with('A') { "B" } else { "A" };
            let tampered = format!("{head}${flipped}{}", &digest[1..]);
            assert!(!verify_password(&password, &tampered), "{tampered}");
        }
    }

    async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        let vault = Arc::new(crate::secret::Vault::open_or_create(&dir.path().join("k")).unwrap());
        Arc::new(
            crate::store::SqliteStore::open(&dir.path().join("db"), vault)
                .await
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn a_reset_takes_effect_at_once_although_the_old_password_was_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let clock = crate::clock::SystemClock;
        let old = reset_admin_credential(store.as_ref(), &clock)
            .await
            .unwrap();
        let check = AdminCheck::new(Arc::clone(&store), None);
        assert!(check.verify(&old).await.unwrap());
        assert!(check.verify(&old).await.unwrap(), "remembered");
        let new = reset_admin_credential(store.as_ref(), &clock)
            .await
            .unwrap();
        assert!(
            !check.verify(&old).await.unwrap(),
            "the old password stopped working"
        );
        assert!(check.verify(&new).await.unwrap());
        assert!(!check.verify(&Secret::new("wrong")).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn argon2_runs_at_most_a_few_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        reset_admin_credential(store.as_ref(), &crate::clock::SystemClock)
            .await
            .unwrap();
        let check = Arc::new(AdminCheck::new(store, None));
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let check = Arc::clone(&check);
                tokio::spawn(async move { check.verify(&Secret::new(format!("guess-{i}"))).await })
            })
            .collect();
        for task in tasks {
            assert!(!task.await.unwrap().unwrap());
        }
        let peak = check.peak_argon2();
        assert!((1..=ARGON2_CONCURRENCY).contains(&peak), "{peak}");
    }

    #[tokio::test]
    async fn the_binding_changes_with_a_reset_and_needs_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let check = AdminCheck::new(Arc::clone(&store), None);
        assert_eq!(check.binding().await.unwrap(), None, "no password yet");
        reset_admin_credential(store.as_ref(), &crate::clock::SystemClock)
            .await
            .unwrap();
        let first = check.binding().await.unwrap().unwrap();
        assert_eq!(check.binding().await.unwrap(), Some(first));
        reset_admin_credential(store.as_ref(), &crate::clock::SystemClock)
            .await
            .unwrap();
        assert_ne!(check.binding().await.unwrap(), Some(first));
        let configured = AdminCheck::new(store, Some(Secret::new("a configured one")));
        assert!(configured.binding().await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_configured_password_needs_no_store() {
        let dir = tempfile::tempdir().unwrap();
        let check = AdminCheck::new(store(&dir).await, Some(Secret::new("a configured one")));
        assert!(
            check
                .verify(&Secret::new("a configured one"))
                .await
                .unwrap()
        );
        assert!(!check.verify(&Secret::new("another")).await.unwrap());
        assert_eq!(check.peak_argon2(), 0);
    }
}
