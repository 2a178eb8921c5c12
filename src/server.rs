//! Accept loop and lifecycle: open the store, load the engine, serve HTTP/1.1
//! with bounded connections and a header-read timeout, and on shutdown stop
//! accepting, finish in-flight requests and flush every campaign actor.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{Config, StoreKind};
use crate::engine::Engine;
use crate::http::{self, Ctx};
use crate::store::cql::ScyllaStore;
use crate::store::embedded::EmbeddedStore;
use crate::store::Backend;

/// How long shutdown waits for open requests before it flushes and exits.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn open_store(config: &Config) -> Result<Arc<dyn Backend>, String> {
    Ok(match config.store {
        StoreKind::Embedded => {
            Arc::new(EmbeddedStore::open(&config.data_dir, config.engine.store_queue).map_err(|e| e.to_string())?)
        }
        StoreKind::Scylla => Arc::new(ScyllaStore::connect(&config.scylla).await.map_err(|e| e.to_string())?),
    })
}

/// `clickledger migrate`: creates or upgrades the CQL schema. The embedded
/// store creates its tables when it opens, so there it only says so.
pub async fn migrate(config: &Config) -> Result<String, String> {
    match config.store {
        StoreKind::Embedded => Ok("the embedded store needs no migration (its tables are created on open)".into()),
        StoreKind::Scylla => {
            let version = ScyllaStore::migrate(&config.scylla).await.map_err(|e| e.to_string())?;
            Ok(format!("keyspace '{}' is at schema version {version}", config.scylla.keyspace))
        }
    }
}

pub async fn run(
    config: Config,
    listener: TcpListener,
    prometheus: Option<PrometheusHandle>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let secrets = crate::secrets::load_or_create(&config.data_dir)?;
    let store = open_store(&config).await?;
    let public_base = config.public_base(bound);
    let engine = Engine::start(config.clone(), store, &secrets, public_base).await.map_err(|e| e.to_string())?;
    let supervisor = crate::engine::supervisor::start(engine.money.clone()).await?;
    let ctx = Arc::new(Ctx { engine: Arc::new(engine), prometheus });
    tracing::info!(%bound, store = ?config.store, data_dir = %config.data_dir.display(), "serving");

    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(config.http.max_connections));
    tokio::pin!(shutdown);
    loop {
        // Waiting for a permit before accepting leaves excess connections in
        // the kernel backlog instead of in our memory.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        let service = service_fn(move |req| {
            let ctx = ctx.clone();
            async move { Ok::<_, std::convert::Infallible>(http::handle(ctx, req, remote).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(config.http.header_read_timeout_ms))
            .keep_alive(config.http.keep_alive)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            crate::metrics::connections(1.0);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            crate::metrics::connections(-1.0);
            drop(permit);
        });
    }
    tracing::info!("shutting down: finishing open requests");
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("open connections did not finish in time");
    }
    ctx.engine.registry.drain().await;
    // Each money step is idempotent, so stopping between steps is safe.
    let _ = supervisor.stop_and_wait(None, Some(DRAIN_TIMEOUT)).await;
    tracing::info!("all campaign writes flushed; bye");
    Ok(())
}
