//! One driver `Session` per process: contact points, credentials, TLS,
//! token- and DC-aware routing, and the execution profiles every statement
//! runs under.

use std::sync::Arc;
use std::time::Duration;

use scylla::client::execution_profile::{ExecutionProfile, ExecutionProfileHandle};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::DefaultRetryPolicy;
use scylla::statement::{Consistency, SerialConsistency};

use crate::config::ScyllaConfig;
use crate::store::{StoreError, StoreResult};

/// The profiles statements are prepared with.
#[derive(Clone)]
pub struct Profiles {
    /// Reads and plain writes at the configured consistency.
    pub default: ExecutionProfileHandle,
    /// Conditional writes and the reads that must see them: Paxos at the
    /// configured serial consistency.
    pub lwt: ExecutionProfileHandle,
    /// Start-up scans and schema changes: longer timeout.
    pub slow: ExecutionProfileHandle,
}

pub fn consistency(name: &str) -> StoreResult<Consistency> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_ONE" => Consistency::LocalOne,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        other => {
            return Err(StoreError::Failed(format!("scylla.consistency '{other}' is not a CQL consistency level")))
        }
    })
}

fn serial(name: &str) -> StoreResult<SerialConsistency> {
    match name.to_ascii_uppercase().as_str() {
        "SERIAL" => Ok(SerialConsistency::Serial),
        "LOCAL_SERIAL" => Ok(SerialConsistency::LocalSerial),
        other => Err(StoreError::Failed(format!("scylla.serial_consistency '{other}' must be SERIAL or LOCAL_SERIAL"))),
    }
}

pub fn profiles(config: &ScyllaConfig) -> StoreResult<Profiles> {
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if !config.local_dc.is_empty() {
        policy = policy.prefer_datacenter(config.local_dc.clone());
    }
    let policy = policy.build();
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let base = || {
        ExecutionProfile::builder()
            .load_balancing_policy(policy.clone())
            .retry_policy(Arc::new(DefaultRetryPolicy::new()))
            .request_timeout(Some(timeout))
    };
    let consistency = consistency(&config.consistency)?;
    let serial = serial(&config.serial_consistency)?;
    Ok(Profiles {
        default: base().consistency(consistency).serial_consistency(Some(serial)).build().into_handle(),
        lwt: base().consistency(consistency).serial_consistency(Some(serial)).build().into_handle(),
        slow: base()
            .consistency(consistency)
            .request_timeout(Some(timeout.max(Duration::from_secs(60))))
            .build()
            .into_handle(),
    })
}

/// Connects to the cluster (without selecting a keyspace).
pub async fn connect(config: &ScyllaConfig, profiles: &Profiles) -> StoreResult<Session> {
    if config.nodes.is_empty() {
        return Err(StoreError::Failed("scylla.nodes is empty: set CLICKLEDGER_SCYLLA_NODES=host:port,…".into()));
    }
    let mut builder = SessionBuilder::new()
        .known_nodes(&config.nodes)
        .connection_timeout(Duration::from_millis(config.connect_timeout_ms))
        .default_execution_profile_handle(profiles.default.clone());
    if !config.username.is_empty() {
        builder = builder.user(config.username.clone(), config.password.clone());
    }
    builder = tls(builder, config)?;
    builder.build().await.map_err(|e| {
        StoreError::Failed(format!("cannot connect to the CQL cluster at {}: {e}", config.nodes.join(",")))
    })
}

#[cfg(not(feature = "cql-tls"))]
fn tls(builder: SessionBuilder, config: &ScyllaConfig) -> StoreResult<SessionBuilder> {
    if config.tls {
        return Err(StoreError::Failed("scylla.tls = true needs a build with `--features cql-tls`".into()));
    }
    Ok(builder)
}

#[cfg(feature = "cql-tls")]
fn tls(builder: SessionBuilder, config: &ScyllaConfig) -> StoreResult<SessionBuilder> {
    if !config.tls {
        return Ok(builder);
    }
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    let file = &config.tls_ca_file;
    if file.is_empty() {
        return Err(StoreError::Failed("scylla.tls = true needs scylla.tls_ca_file (PEM) to verify the nodes".into()));
    }
    for cert in CertificateDer::pem_file_iter(file).map_err(|e| StoreError::Failed(format!("{file}: {e}")))? {
        let cert = cert.map_err(|e| StoreError::Failed(format!("{file}: {e}")))?;
        roots.add(cert).map_err(|e| StoreError::Failed(format!("{file}: {e}")))?;
    }
    // ring, named: with this feature rustls has a second provider (the
    // driver's aws-lc), and neither is the process default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Failed(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(builder.tls_context(Some(Arc::new(tls))))
}
