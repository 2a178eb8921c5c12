//! Settings: compiled-in defaults (`config/default.toml`), then an optional
//! file, then `CLICKLEDGER_*` variables, then flags. The env names are derived
//! from the default file, so a new setting gets its variable for free.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::domain::validate::FieldLimits;

pub const DEFAULTS: &str = include_str!("../config/default.toml");
const ENV_PREFIX: &str = "CLICKLEDGER_";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreKind,
    pub public_url: String,
    pub log_level: String,
    pub log_format: LogFormat,
    pub shutdown_timeout_secs: u64,
    pub http: HttpConfig,
    pub engine: EngineConfig,
    pub scylla: ScyllaConfig,
    pub limits: LimitsConfig,
    pub money: MoneyConfig,
    pub auth: AuthConfig,
    pub ingest: IngestConfig,
    pub retention: RetentionConfig,
    pub webhooks: WebhooksConfig,
}

/// `[webhooks]`: the outbox's delivery rules (see config/default.toml).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub max_per_tenant: usize,
    pub retry_schedule: String,
    pub retry_every: String,
    pub give_up_after: String,
    pub disable_after_failures: u32,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub response_max_bytes: usize,
    pub max_in_flight: usize,
    pub max_in_flight_per_endpoint: usize,
    pub poll_ms: u64,
    pub allow_private_targets: bool,
    pub currency: String,
    pub extra_ca_file: String,
}

/// The retry rule in seconds, parsed once.
#[derive(Clone, Debug)]
pub struct RetryRule {
    pub schedule: Vec<u64>,
    pub every: u64,
    pub give_up_after: u64,
}

impl WebhooksConfig {
    pub fn retry(&self) -> Result<RetryRule, String> {
        use crate::domain::webhook::{parse_duration, parse_schedule};
        let schedule = parse_schedule(&self.retry_schedule).map_err(|e| format!("webhooks.retry_schedule: {e}"))?;
        let every = parse_duration(&self.retry_every).map_err(|e| format!("webhooks.retry_every: {e}"))?;
        let give_up_after = parse_duration(&self.give_up_after).map_err(|e| format!("webhooks.give_up_after: {e}"))?;
        Ok(RetryRule { schedule, every, give_up_after })
    }

    fn check(&self) -> Result<(), String> {
        self.retry()?;
        let currency_ok = self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase());
        if !currency_ok {
            return Err(format!("webhooks.currency '{}' must be an ISO 4217 code like USD", self.currency));
        }
        let ranges = [
            ("webhooks.max_per_tenant", self.max_per_tenant as u64, 1, 1000),
            ("webhooks.disable_after_failures", u64::from(self.disable_after_failures), 1, 10_000),
            ("webhooks.connect_timeout_ms", self.connect_timeout_ms, 1, 120_000),
            ("webhooks.timeout_ms", self.timeout_ms, 1, 120_000),
            ("webhooks.response_max_bytes", self.response_max_bytes as u64, 0, 1 << 20),
            ("webhooks.max_in_flight", self.max_in_flight as u64, 1, 10_000),
            ("webhooks.max_in_flight_per_endpoint", self.max_in_flight_per_endpoint as u64, 1, 1000),
            ("webhooks.poll_ms", self.poll_ms, 10, 60_000),
        ];
        match ranges.iter().find(|(_, v, lo, hi)| v < lo || v > hi) {
            Some((name, _, lo, hi)) => Err(format!("{name} must be {lo} to {hi}")),
            None => Ok(()),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub click_days: u32,
    pub change_days: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub batch_max_items: usize,
    pub batch_max_bytes: usize,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub revalidate_ms: u64,
    pub max_secret_keys: usize,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MoneyConfig {
    pub tick_ms: u64,
    pub batch: usize,
    pub concurrency: usize,
    pub restart_min_ms: u64,
    pub restart_max_ms: u64,
    pub record_grace_secs: u64,
    pub test_clock: bool,
}

/// `text`: human-readable lines; `json`: one JSON object per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Embedded,
    Scylla,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub max_connections: usize,
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    pub body_limit_bytes: usize,
    pub max_header_bytes: usize,
    pub lingering_close_ms: u64,
    pub keep_alive: bool,
    pub trust_forwarded_for: bool,
    pub retry_after_secs: u32,
    pub browser_rate_per_sec: f64,
    pub browser_burst: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    pub mailbox_capacity: usize,
    pub max_pending_writes: usize,
    pub max_batch: usize,
    pub flush_interval_ms: u64,
    pub bloom_expected_keys: usize,
    pub bloom_fp_rate: f64,
    pub window_capacity: usize,
    pub window_ttl_secs: u64,
    pub store_queue: usize,
    pub store_quick_repair: bool,
    pub catalog_refresh_ms: u64,
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScyllaConfig {
    pub nodes: Vec<String>,
    pub keyspace: String,
    pub replication_class: String,
    pub replication_factor: u32,
    pub datacenters: Vec<String>,
    pub local_dc: String,
    pub consistency: String,
    pub serial_consistency: String,
    pub username: String,
    #[serde(serialize_with = "redacted")]
    pub password: String,
    pub tls: bool,
    pub tls_ca_file: String,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub max_in_flight: usize,
    pub click_shards: u32,
    pub bloom_rebuild_days: u32,
}

/// `clickledger config` prints the configuration as TOML; a secret in it
/// shows only whether it is set.
fn redacted<S: serde::Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if value.is_empty() { "" } else { "<redacted>" })
}

impl Config {
    /// The effective configuration as TOML (`clickledger config`), secrets redacted.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}

/// Hand-written so the password never reaches a log or `clickledger config`.
impl std::fmt::Debug for ScyllaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaConfig")
            .field("nodes", &self.nodes)
            .field("keyspace", &self.keyspace)
            .field("replication_class", &self.replication_class)
            .field("replication_factor", &self.replication_factor)
            .field("datacenters", &self.datacenters)
            .field("local_dc", &self.local_dc)
            .field("consistency", &self.consistency)
            .field("serial_consistency", &self.serial_consistency)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_in_flight", &self.max_in_flight)
            .field("click_shards", &self.click_shards)
            .field("bloom_rebuild_days", &self.bloom_rebuild_days)
            .finish()
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_fields: usize,
    pub max_key_len: usize,
    pub max_value_len: usize,
    pub max_external_id_len: usize,
    pub affiliate_writes_per_sec: f64,
    pub affiliate_write_burst: u32,
    pub advertiser_writes_per_sec: f64,
    pub advertiser_write_burst: u32,
}

/// Values given on the command line; they win over everything else.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub public_url: Option<String>,
}

impl Config {
    /// Loads defaults, then `file`, then the process environment, then `flags`.
    pub fn load(file: Option<&std::path::Path>, flags: &Overrides) -> Result<Self, String> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env, flags)
    }

    pub fn load_from(
        file: Option<&std::path::Path>,
        env: &[(String, String)],
        flags: &Overrides,
    ) -> Result<Self, String> {
        let mut table: Table = DEFAULTS.parse().map_err(|e| format!("config/default.toml: {e}"))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let over: Table = text.parse().map_err(|e| format!("{}: {e}", path.display()))?;
            merge(&mut table, over, "").map_err(|e| format!("{}: {e}", path.display()))?;
        }
        apply_env(&mut table, env, "")?;
        let mut set = |key: &str, v: Option<String>| {
            if let Some(v) = v {
                table.insert(key.into(), Value::String(v));
            }
        };
        set("listen", flags.listen.clone());
        set("data_dir", flags.data_dir.as_ref().map(|p| p.display().to_string()));
        set("store", flags.store.clone());
        set("public_url", flags.public_url.clone());
        let config: Config = Value::Table(table).try_into().map_err(|e| format!("configuration: {e}"))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        let ks = &self.scylla.keyspace;
        let ks_ok = ks.len() <= 48
            && ks.starts_with(|c: char| c.is_ascii_alphabetic())
            && ks.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ks_ok {
            return Err(format!(
                "scylla.keyspace '{ks}' must be letters, digits and _ (at most 48, starting with a letter)"
            ));
        }
        let e = &self.engine;
        if !(e.bloom_fp_rate > 0.0 && e.bloom_fp_rate < 1.0) {
            return Err("engine.bloom_fp_rate must be between 0 and 1".into());
        }
        if e.flush_interval_ms == 0 || e.flush_interval_ms > 10 {
            return Err("engine.flush_interval_ms must be 1 to 10 (it bounds clicks lost on a crash)".into());
        }
        let positive = [
            ("engine.mailbox_capacity", e.mailbox_capacity),
            ("engine.max_pending_writes", e.max_pending_writes),
            ("engine.max_batch", e.max_batch),
            ("engine.bloom_expected_keys", e.bloom_expected_keys),
            ("engine.window_capacity", e.window_capacity),
            ("http.max_connections", self.http.max_connections),
            ("http.body_limit_bytes", self.http.body_limit_bytes),
            ("scylla.max_in_flight", self.scylla.max_in_flight),
            ("money.batch", self.money.batch),
            ("money.concurrency", self.money.concurrency),
            ("auth.max_secret_keys", self.auth.max_secret_keys),
            ("scylla.click_shards", self.scylla.click_shards as usize),
        ];
        if !(8192..=1 << 20).contains(&self.http.max_header_bytes) {
            return Err("http.max_header_bytes must be 8192 to 1048576".into());
        }
        if self.http.lingering_close_ms > 60_000 {
            return Err("http.lingering_close_ms must be at most 60000 (it holds a connection slot)".into());
        }
        if self.auth.revalidate_ms == 0 || self.auth.revalidate_ms > 60_000 {
            return Err("auth.revalidate_ms must be 1 to 60000 (it bounds how long a revoked key keeps working)".into());
        }
        if self.retention.click_days > 3650 {
            return Err("retention.click_days must be 0 (the longest attribution window) to 3650".into());
        }
        if !(1..=3650).contains(&self.retention.change_days) {
            return Err("retention.change_days must be 1 to 3650".into());
        }
        self.webhooks.check()?;
        if !(1..=100_000).contains(&self.ingest.batch_max_items) {
            return Err("ingest.batch_max_items must be 1 to 100000".into());
        }
        if !(1024..=64 << 20).contains(&self.ingest.batch_max_bytes) {
            return Err("ingest.batch_max_bytes must be 1024 to 67108864".into());
        }
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(format!("{name} must be greater than 0")),
            None => Ok(()),
        }
    }

    /// How long shutdown may take before the process gives up and exits 2.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.engine.flush_interval_ms)
    }

    pub fn field_limits(&self) -> FieldLimits {
        FieldLimits {
            max_keys: self.limits.max_fields,
            max_key_len: self.limits.max_key_len,
            max_value_len: self.limits.max_value_len,
        }
    }

    /// The base URL partners' links use.
    pub fn public_base(&self, bound: SocketAddr) -> String {
        if self.public_url.is_empty() {
            format!("http://{bound}")
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// Overlays `over` on `base`, refusing keys the defaults do not know so a typo
/// in a config file fails loudly instead of being ignored.
fn merge(base: &mut Table, over: Table, path: &str) -> Result<(), String> {
    for (key, value) in over {
        let full = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o, &full)?,
            (Some(slot), v) => *slot = v,
            (None, _) => return Err(format!("unknown setting '{full}'")),
        }
    }
    Ok(())
}

/// Each leaf `a.b_c` can be set by `CLICKLEDGER_A_B_C`, parsed as the type its
/// default has.
fn apply_env(table: &mut Table, env: &[(String, String)], path: &str) -> Result<(), String> {
    for (key, slot) in table.iter_mut() {
        let full = if path.is_empty() { key.clone() } else { format!("{path}_{key}") };
        if let Value::Table(inner) = slot {
            apply_env(inner, env, &full)?;
            continue;
        }
        let name = format!("{ENV_PREFIX}{}", full.to_ascii_uppercase());
        if let Some((_, raw)) = env.iter().find(|(k, _)| *k == name) {
            *slot = parse_like(slot, raw).map_err(|e| format!("{name}: {e}"))?;
        }
    }
    Ok(())
}

fn parse_like(template: &Value, raw: &str) -> Result<Value, String> {
    let raw = raw.trim();
    Ok(match template {
        Value::Integer(_) => Value::Integer(raw.parse().map_err(|_| format!("'{raw}' is not an integer"))?),
        Value::Float(_) => Value::Float(raw.parse().map_err(|_| format!("'{raw}' is not a number"))?),
        Value::Boolean(_) => Value::Boolean(raw.parse().map_err(|_| format!("'{raw}' is not true or false"))?),
        Value::Array(_) => {
            Value::Array(raw.split(',').filter(|s| !s.is_empty()).map(|s| Value::String(s.trim().into())).collect())
        }
        _ => Value::String(raw.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_effective_configuration_prints_as_toml_that_loads_back_with_secrets_redacted() {
        let e = [("CLICKLEDGER_SCYLLA_PASSWORD".to_string(), "hunter2-secret".to_string())];
        let c = Config::load_from(None, &e, &Overrides::default()).unwrap();
        let text = c.to_toml();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("password = \"<redacted>\""), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("printed.toml");
        std::fs::write(&file, &text).unwrap();
        let again = Config::load_from(Some(&file), &[], &Overrides::default()).unwrap();
        assert_eq!(again.to_toml(), text, "what `clickledger config` prints is a config file");
    }

    #[test]
    fn the_defaults_parse_and_use_the_documented_listen_address() {
        let c = Config::load_from(None, &[], &Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.http.body_limit_bytes, 65536);
        assert_eq!(c.store, StoreKind::Embedded);
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn json_logs_and_the_shutdown_deadline_are_set_like_any_other_setting() {
        let e = env(&[("CLICKLEDGER_LOG_FORMAT", "json"), ("CLICKLEDGER_SHUTDOWN_TIMEOUT_SECS", "7")]);
        let c = Config::load_from(None, &e, &Overrides::default()).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.shutdown_timeout(), Duration::from_secs(7));
        let bad = env(&[("CLICKLEDGER_LOG_FORMAT", "xml")]);
        assert!(Config::load_from(None, &bad, &Overrides::default()).unwrap_err().contains("log_format"));
    }

    #[test]
    fn environment_variables_override_defaults_and_flags_override_both() {
        let e = env(&[("CLICKLEDGER_LISTEN", "0.0.0.0:9000"), ("CLICKLEDGER_HTTP_BODY_LIMIT_BYTES", "1024")]);
        let c = Config::load_from(None, &e, &Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.http.body_limit_bytes, 1024);
        let flags = Overrides { listen: Some("127.0.0.1:1".into()), ..Default::default() };
        assert_eq!(Config::load_from(None, &e, &flags).unwrap().listen.to_string(), "127.0.0.1:1");
    }

    #[test]
    fn a_bad_value_or_an_unknown_file_setting_is_an_error_naming_it() {
        let e = env(&[("CLICKLEDGER_ENGINE_MAX_BATCH", "lots")]);
        assert!(Config::load_from(None, &e, &Overrides::default())
            .unwrap_err()
            .contains("CLICKLEDGER_ENGINE_MAX_BATCH"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[http]\nbody_limt = 5\n").unwrap();
        assert!(Config::load_from(Some(&file), &[], &Overrides::default()).unwrap_err().contains("http.body_limt"));
    }
}
