//! Secrets: the admin key, the click-token signing keys and the key that hashes
//! client IPs. Taken from the environment when set, otherwise generated once
//! into `<data_dir>/secrets.toml` (mode 0600) and reused on every start.
//! Their values are never logged; `Debug` is redacted.

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
    let mut secrets = read_or_generate(data_dir)?;
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

fn read_or_generate(data_dir: &Path) -> Result<Secrets, String> {
    let file = path(data_dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => return toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display())),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("{}: {e}", file.display())),
        Err(_) => {}
    }
    crate::private_fs::create_dir(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let secrets = Secrets {
        admin_key: format!("ak_{}", random_base62(40)),
        token_keys: vec![random_base62(48)],
        ip_hash_key: random_base62(48),
    };
    write_private(&file, &toml::to_string(&secrets).map_err(|e| e.to_string())?)?;
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
}
