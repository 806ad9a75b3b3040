//! Secrets in memory and at rest.
//!
//! - [`Secret`] wraps every secret value in memory: its `Debug` prints `[redacted]`, it has no
//!   `Display`, and it is only read through [`Secret::expose`].
//! - [`SecretRef`] is how a configuration file names a secret without holding it (`file:` or `env:`).
//! - [`Vault`] seals secrets for the store with AES-256-GCM under a 256-bit master key kept in a
//!   0600 key file. The associated data names the row a ciphertext belongs to, so a ciphertext
//!   copied to another row fails to open.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretString};

/// A secret value: a client secret, a password, a private key, a token.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret's value. Call this only where the value leaves the process on purpose
    /// (a request to the identity provider, the vault).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.expose().as_bytes(), other.expose().as_bytes())
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fills a buffer from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    #[allow(
        clippy::expect_used,
        reason = "the OS random source failing is not recoverable; there is no safe fallback"
    )]
    getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
    buf
}

/// Where a configuration file says a secret is: `file:/run/secrets/x` or `env:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    File(PathBuf),
    Env(String),
}

/// Why a secret reference could not be read. Never holds the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretRefError {
    #[error(
        "expected a reference `file:/path/to/secret` or `env:VARIABLE`; secrets are not written inline in configuration files"
    )]
    NotAReference,
    #[error("the secret file {path} cannot be read: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the environment variable {name} is not set")]
    EnvMissing { name: String },
    #[error("the secret at {0} is empty")]
    Empty(String),
}

impl SecretRef {
    pub fn parse(value: &str) -> Result<Self, SecretRefError> {
        match value.split_once(':') {
            Some(("file", path)) if !path.is_empty() => Ok(Self::File(PathBuf::from(path))),
            Some(("env", name)) if !name.is_empty() => Ok(Self::Env(name.to_owned())),
            _ => Err(SecretRefError::NotAReference),
        }
    }

    /// Reads the secret: a file's contents without the final line break, or a variable's value.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, SecretRefError> {
        let (value, place) = match self {
            Self::File(path) => {
                let text = fs::read_to_string(path).map_err(|source| SecretRefError::File {
                    path: path.clone(),
                    source,
                })?;
                (
                    text.trim_end_matches(['\n', '\r']).to_owned(),
                    path.display().to_string(),
                )
            }
            Self::Env(name) => (
                env(name).ok_or_else(|| SecretRefError::EnvMissing { name: name.clone() })?,
                format!("env:{name}"),
            ),
        };
        if value.is_empty() {
            return Err(SecretRefError::Empty(place));
        }
        Ok(Secret::new(value))
    }
}

/// Errors of the vault and its key file.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "the master key file {path} is readable by others (mode {mode:04o}); run `chmod 600 {path}`",
        path = .path.display()
    )]
    LoosePermissions { path: PathBuf, mode: u32 },
    #[error("the master key file {path} cannot be {action}: {source}", path = .path.display())]
    KeyFileIo {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error(
        "the master key file {path} is malformed: expected one line of base64 holding 32 bytes; restore it from your backup",
        path = .path.display()
    )]
    MalformedKey { path: PathBuf },
    #[error(
        "a stored secret could not be decrypted: it was sealed under another master key or for another row ({context})"
    )]
    Open { context: String },
    #[error("a sealed secret is truncated or of an unknown format ({context})")]
    Format { context: String },
}

const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// Envelope encryption of stored secrets under the master key.
pub struct Vault {
    cipher: Aes256Gcm,
    /// The base of [`Vault::derive_key`]: a hash of the master key, never the key itself.
    derive_base: [u8; 32],
    key_file: PathBuf,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Opens the key file, creating it (mode 0600, its folder 0700) with a fresh random key if it
    /// does not exist. A key file that group or others may read is refused.
    pub fn open_or_create(path: &Path) -> Result<Self, VaultError> {
        let io = |action: &'static str| {
            let path = path.to_path_buf();
            move |source| VaultError::KeyFileIo {
                path,
                action,
                source,
            }
        };
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir).map_err(io("created (its folder)"))?;
            }
            let key = random_bytes::<32>();
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io("created"))?;
            file.write_all(format!("{}\n", B64.encode(key)).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io("written"))?;
            tracing::info!(path = %path.display(), "created a new master key file");
        }
        let meta = fs::metadata(path).map_err(io("read"))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(VaultError::LoosePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = fs::read_to_string(path).map_err(io("read"))?;
        let malformed = || VaultError::MalformedKey {
            path: path.to_path_buf(),
        };
        let key = B64.decode(text.trim()).map_err(|_| malformed())?;
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| malformed())?;
        let derive_base = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(b"exgate/v1/derive-key/");
            h.update(&key);
            h.finalize().into()
        };
        Ok(Self {
            cipher,
            derive_base,
            key_file: path.to_path_buf(),
        })
    }

    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    /// A 256-bit key for `purpose` (for example `console-session`), derived from the master key:
    /// every gateway with the same key file derives the same key, and no derived key reveals the
    /// master key or another purpose's key.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.derive_base);
        h.update(purpose.as_bytes());
        h.finalize().into()
    }

    /// Seals `plaintext` for the row named by `context` (for example `connections/<id>/secret`).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let nonce = Nonce::from(nonce_bytes);
        let aad = aad(context);
        #[allow(
            clippy::expect_used,
            reason = "encryption fails only for inputs beyond AES-GCM's 64 GiB limit"
        )]
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a stored secret failed");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens what [`Vault::seal`] sealed for the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        let format = || VaultError::Format {
            context: context.to_owned(),
        };
        let (&version, rest) = sealed.split_first().ok_or_else(format)?;
        if version != SEAL_VERSION || rest.len() < NONCE_LEN + 16 {
            return Err(format());
        }
        let (nonce_bytes, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce_array: [u8; NONCE_LEN] = nonce_bytes.try_into().map_err(|_| format())?;
        let aad = aad(context);
        self.cipher
            .decrypt(
                &Nonce::from(nonce_array),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Open {
                context: context.to_owned(),
            })
    }

    pub fn seal_secret(&self, context: &str, secret: &Secret) -> Vec<u8> {
        self.seal(context, secret.expose().as_bytes())
    }

    pub fn open_secret(&self, context: &str, sealed: &[u8]) -> Result<Secret, VaultError> {
        let bytes = self.open(context, sealed)?;
        String::from_utf8(bytes)
            .map(Secret::new)
            .map_err(|_| VaultError::Format {
                context: context.to_owned(),
            })
    }
}

fn aad(context: &str) -> Vec<u8> {
    format!("exgate/v{SEAL_VERSION}/{context}").into_bytes()
}

/// Creates a folder (and its parents) that only the owner may enter.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(dir: &tempfile::TempDir) -> Vault {
        Vault::open_or_create(&dir.path().join("keys/master.key")).unwrap()
    }

    #[test]
    fn derived_keys_are_stable_per_key_file_and_apart_per_purpose() {
        let dir = tempfile::tempdir().unwrap();
        let a = vault(&dir);
        let again = vault(&dir);
        assert_eq!(
            a.derive_key("console-session"),
            again.derive_key("console-session")
        );
        assert_ne!(a.derive_key("console-session"), a.derive_key("other"));
        let other_dir = tempfile::tempdir().unwrap();
        assert_ne!(
            a.derive_key("console-session"),
            vault(&other_dir).derive_key("console-session")
        );
        let raw = B64
            .decode(fs::read_to_string(a.key_file()).unwrap().trim())
            .unwrap();
        assert_ne!(
            a.derive_key("").as_slice(),
            raw.as_slice(),
            "not the master key"
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s)), "Some([redacted])");
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let first = Vault::open_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let sealed = first.seal("t/1", b"value");
        let second = Vault::open_or_create(&path).unwrap();
        assert_eq!(second.open("t/1", &sealed).unwrap(), b"value");
    }

    #[test]
    fn loose_key_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        Vault::open_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Vault::open_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("mode 0644"), "{err}");
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
    }

    #[test]
    fn malformed_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, "not base64 at all!\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = Vault::open_or_create(&path).unwrap_err();
        assert!(matches!(err, VaultError::MalformedKey { .. }), "{err}");
    }

    #[test]
    fn ciphertext_is_bound_to_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(&dir);
        let sealed = v.seal("connections/a/secret", b"s3cr3t");
        assert!(!sealed.windows(6).any(|w| w == b"s3cr3t"));
        assert_eq!(v.open("connections/a/secret", &sealed).unwrap(), b"s3cr3t");
        let err = v.open("connections/b/secret", &sealed).unwrap_err();
        assert!(matches!(err, VaultError::Open { .. }), "{err}");
    }

    #[test]
    fn tampered_or_truncated_ciphertext_fails() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(&dir);
        let mut sealed = v.seal("x", b"value");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(v.open("x", &sealed), Err(VaultError::Open { .. })));
        assert!(matches!(
            v.open("x", &[1, 2]),
            Err(VaultError::Format { .. })
        ));
        assert!(matches!(v.open("x", &[]), Err(VaultError::Format { .. })));
    }

    #[test]
    fn another_key_cannot_open() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let sealed = vault(&a).seal("x", b"value");
        assert!(matches!(
            vault(&b).open("x", &sealed),
            Err(VaultError::Open { .. })
        ));
    }

    #[test]
    fn secret_refs_parse_and_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        fs::write(&file, "from-file\n").unwrap();
        let no_env = |_: &str| None;
        let r = SecretRef::parse(&format!("file:{}", file.display())).unwrap();
        assert_eq!(r.resolve(&no_env).unwrap().expose(), "from-file");
        let r = SecretRef::parse("env:MY_SECRET").unwrap();
        let env = |name: &str| (name == "MY_SECRET").then(|| "from-env".to_owned());
        assert_eq!(r.resolve(&env).unwrap().expose(), "from-env");
        assert!(matches!(
            r.resolve(&no_env),
            Err(SecretRefError::EnvMissing { .. })
        ));
        assert!(matches!(
            SecretRef::parse("plain-secret-inline"),
            Err(SecretRefError::NotAReference)
        ));
        assert!(matches!(
            SecretRef::parse("env:"),
            Err(SecretRefError::NotAReference)
        ));
    }
}
