//! Secrets: the admin key, the click-token signing keys and the key that hashes
//! client IPs. Taken from the environment when set, otherwise generated once
//! and reused on every start: on the embedded store into
//! `<data_dir>/secrets.toml` (mode 0600); on CQL into the keyspace, so every
//! node sharing it agrees (see `store::cql::cluster`). Their values are never
//! logged; `Debug` is redacted, and the keyspace compares nodes by
//! fingerprints (a hash prefix), never by the secrets themselves.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::ids::random_base62;

pub const FILE_NAME: &str = "secrets.toml";

#[derive(Clone, Serialize, Deserialize)]
pub struct Secrets {
    pub admin_key: String,
    /// Newest first: the first signs click tokens, all verify them.
    pub token_keys: Vec<String>,
    pub ip_hash_key: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { <redacted> }")
    }
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Reads the secrets file, creating it on first start, then applies
/// `CLICKLEDGER_ADMIN_KEY`, `CLICKLEDGER_TOKEN_KEYS` and `CLICKLEDGER_IP_HASH_KEY`.
pub fn load_or_create(data_dir: &Path) -> Result<Secrets, String> {
    with_env(read_or_generate(data_dir)?)
}

/// The secrets file of `data_dir` with the environment applied, without
/// ever creating one (`clickledger admin-key`): `Err` names the directory.
pub fn load_existing(data_dir: &Path) -> Result<Secrets, String> {
    existing(read(data_dir)?, &format!("{FILE_NAME} in {}", data_dir.display()))
}

/// Stored secrets (if any) with the environment applied, for commands that
/// must not create any: with none stored only an environment admin key will
/// do, and `Err` says where it looked (`place`).
pub fn existing(stored: Option<Secrets>, place: &str) -> Result<Secrets, String> {
    match stored {
        Some(secrets) => with_env(secrets),
        None if env("CLICKLEDGER_ADMIN_KEY").is_some() => with_env(generate()),
        None => Err(format!("no secrets yet ({place}): start a node on it first (or set CLICKLEDGER_ADMIN_KEY)")),
    }
}

/// `base` with the environment's secrets applied over it.
pub fn with_env(mut secrets: Secrets) -> Result<Secrets, String> {
    if let Some(key) = env("CLICKLEDGER_ADMIN_KEY") {
        check_len("CLICKLEDGER_ADMIN_KEY", &key)?;
        secrets.admin_key = key;
    }
    if let Some(keys) = env("CLICKLEDGER_TOKEN_KEYS") {
        let keys: Vec<String> = keys.split(',').map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect();
        for k in &keys {
            check_len("CLICKLEDGER_TOKEN_KEYS", k)?;
        }
        if keys.is_empty() {
            return Err("CLICKLEDGER_TOKEN_KEYS is set but holds no key".into());
        }
        secrets.token_keys = keys;
    }
    if let Some(key) = env("CLICKLEDGER_IP_HASH_KEY") {
        check_len("CLICKLEDGER_IP_HASH_KEY", &key)?;
        secrets.ip_hash_key = key;
    }
    Ok(secrets)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn check_len(name: &str, value: &str) -> Result<(), String> {
    if value.len() < 24 {
        return Err(format!("{name} must be at least 24 characters of random text"));
    }
    Ok(())
}

/// The secrets file of `data_dir`, if there is one.
pub fn read(data_dir: &Path) -> Result<Option<Secrets>, String> {
    let file = path(data_dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => toml::from_str(&text).map(Some).map_err(|e| format!("{}: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

/// Fresh random secrets.
pub fn generate() -> Secrets {
    Secrets {
        admin_key: format!("ak_{}", random_base62(40)),
        token_keys: vec![random_base62(48)],
        ip_hash_key: random_base62(48),
    }
}

impl Secrets {
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("secrets always serialize")
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// What nodes sharing a keyspace must agree on, as hash prefixes that
    /// reveal nothing: the admin key, the signing key (the first token key;
    /// verify-only keys may differ while a rotation rolls out) and the
    /// client-address hash key.
    pub fn fingerprint(&self) -> Fingerprint {
        use sha2::{Digest, Sha256};
        let fp = |s: &str| Sha256::digest(s.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect();
        Fingerprint {
            admin_key: fp(&self.admin_key),
            signing_key: fp(self.token_keys.first().map_or("", String::as_str)),
            ip_hash_key: fp(&self.ip_hash_key),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub admin_key: String,
    pub signing_key: String,
    pub ip_hash_key: String,
}

impl Fingerprint {
    /// The settings (environment variables) on which `self` differs from `other`.
    pub fn differences(&self, other: &Fingerprint) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.admin_key != other.admin_key {
            out.push("CLICKLEDGER_ADMIN_KEY");
        }
        if self.signing_key != other.signing_key {
            out.push("CLICKLEDGER_TOKEN_KEYS (its first key signs)");
        }
        if self.ip_hash_key != other.ip_hash_key {
            out.push("CLICKLEDGER_IP_HASH_KEY");
        }
        out
    }
}

fn read_or_generate(data_dir: &Path) -> Result<Secrets, String> {
    if let Some(secrets) = read(data_dir)? {
        return Ok(secrets);
    }
    crate::private_fs::create_dir(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let secrets = generate();
    write_private(&path(data_dir), &secrets.to_toml())?;
    Ok(secrets)
}

/// Creates the file with mode 0600 from the start (never world-readable, not
/// even for an instant) and fails rather than overwrite an existing one.
fn write_private(file: &Path, text: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_generated_once_with_mode_0600_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = read_or_generate(dir.path()).unwrap();
        let second = read_or_generate(dir.path()).unwrap();
        assert_eq!(first.admin_key, second.admin_key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{first:?}").contains(&first.admin_key));
    }

    #[test]
    fn admin_key_never_creates_a_secrets_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("elsewhere");
        let err = load_existing(&missing).unwrap_err();
        assert!(err.contains(&missing.display().to_string()), "names the directory: {err}");
        assert!(!missing.exists(), "nothing was created");
    }

    #[test]
    fn fingerprints_name_the_secret_that_differs_and_reveal_nothing() {
        let a = generate();
        let mut b = a.clone();
        b.token_keys.push("a-verify-only-key-0123456789".into());
        assert!(a.fingerprint().differences(&b.fingerprint()).is_empty(), "verify-only keys may differ");
        b.token_keys.insert(0, "a-new-signing-key-0123456789".into());
        assert_eq!(a.fingerprint().differences(&b.fingerprint()), vec!["CLICKLEDGER_TOKEN_KEYS (its first key signs)"]);
        let fp = serde_json::to_string(&a.fingerprint()).unwrap();
        assert!(!fp.contains(&a.admin_key) && !fp.contains(&a.token_keys[0]));
    }
}
