//! Accept loop and lifecycle: open the store, load the engine, serve HTTP/1.1
//! with bounded connections and a header-read timeout. On shutdown: report
//! not ready, stop accepting, finish in-flight requests, flush every campaign
//! actor and stop the money supervisors between passes, all within
//! `shutdown_timeout_secs`; past it, fail naming what was still pending.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
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
use crate::engine::readiness::Readiness;
use crate::engine::supervisor::MoneySupervisorMsg;
use crate::engine::Engine;
use crate::http::linger::{LingerClose, LingerFlag, Lingering};
use crate::http::{self, Ctx};
use crate::secrets::Secrets;
use crate::store::cql::ScyllaStore;
use crate::store::embedded::EmbeddedStore;
use crate::store::Backend;

/// The store and the secrets this node runs with: on the embedded store
/// from the data directory, on CQL from the keyspace (every node of it
/// agrees; see `store::cql::cluster`).
pub async fn open_store(config: &Config) -> Result<(Arc<dyn Backend>, Secrets), String> {
    Ok(match config.store {
        StoreKind::Embedded => {
            let secrets = crate::secrets::load_or_create(&config.data_dir)?;
            let (queue, quick_repair) = (config.engine.store_queue, config.engine.store_quick_repair);
            let store = EmbeddedStore::open_with(&config.data_dir, queue, quick_repair).map_err(|e| e.to_string())?;
            (Arc::new(store), secrets)
        }
        StoreKind::Scylla => {
            // Still the home of node-local files (the test clock's offset).
            crate::private_fs::create_dir(&config.data_dir)
                .map_err(|e| format!("{}: {e}", config.data_dir.display()))?;
            let store = ScyllaStore::connect(&config.scylla).await.map_err(|e| e.to_string())?;
            // A secrets file from before keyspace secrets seeds them, so a
            // deployment that had one keeps its keys.
            let seed = crate::secrets::read(&config.data_dir)?.unwrap_or_else(crate::secrets::generate);
            let adopt = std::env::var("CLICKLEDGER_SECRETS_ADOPT").is_ok_and(|v| v == "true");
            let secrets = store.cluster_secrets(seed, adopt).await?;
            (Arc::new(store), secrets)
        }
    })
}

/// `clickledger admin-key`: the operator key this node would use, without
/// creating anything; `Err` says where it looked.
pub async fn admin_key(config: &Config) -> Result<String, String> {
    let secrets = match config.store {
        StoreKind::Embedded => crate::secrets::load_existing(&config.data_dir)?,
        StoreKind::Scylla => {
            let store = ScyllaStore::connect(&config.scylla).await.map_err(|e| e.to_string())?;
            let stored = store.stored_secrets().await.map_err(|e| e.to_string())?;
            crate::secrets::existing(stored, &format!("keyspace '{}'", config.scylla.keyspace))?
        }
    };
    Ok(secrets.admin_key)
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
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), String> {
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let (store, secrets) = open_store(&config).await?;
    let public_base = config.public_base(bound);
    let engine = Engine::start(config.clone(), store, &secrets, public_base).await.map_err(|e| e.to_string())?;
    let supervisor = crate::engine::supervisor::start(engine.money.clone()).await?;
    let engine = Arc::new(engine);
    crate::engine::retention::spawn(engine.clone());
    crate::engine::outbox::Outbox::new(engine.clone())?.spawn();
    let readiness = Arc::new(Readiness::new(engine.clone(), supervisor.clone()));
    readiness.spawn_watch();
    let ctx = Arc::new(Ctx { engine, prometheus, readiness: readiness.clone() });
    let open = Arc::new(AtomicUsize::new(0));
    tracing::info!(%bound, store = ?config.store, data_dir = %config.data_dir.display(), "serving");
    // Only now: the store is open, the secrets agreed, the engine loaded.
    ready(bound);

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
        let linger = LingerFlag::default();
        let io = Lingering::new(stream, linger.clone(), Duration::from_millis(config.http.lingering_close_ms));
        let service = service_fn(move |req| {
            let (ctx, linger) = (ctx.clone(), linger.clone());
            async move {
                let resp = http::handle(ctx, req, remote).await;
                if resp.extensions().get::<LingerClose>().is_some() {
                    linger.set();
                }
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        // max_buf_size bounds the request head (431 past it): a connection
        // costs at most that much while its headers arrive.
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(config.http.header_read_timeout_ms))
            .max_buf_size(config.http.max_header_bytes)
            .keep_alive(config.http.keep_alive)
            .serve_connection(TokioIo::new(io), service);
        let conn = graceful.watch(conn);
        let open = open.clone();
        tokio::spawn(async move {
            crate::metrics::connections(1.0);
            open.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            open.fetch_sub(1, Ordering::Relaxed);
            crate::metrics::connections(-1.0);
            drop(permit);
        });
    }
    readiness.start_draining();
    drop(listener);
    let timeout = config.shutdown_timeout();
    tracing::info!(deadline_secs = timeout.as_secs(), "shutting down: not accepting; finishing open requests");
    let deadline = tokio::time::Instant::now() + timeout;
    drain(&ctx, graceful, &supervisor, &open, deadline).await.map_err(|pending| {
        let message = format!("shutdown did not finish within {} s: {pending}", timeout.as_secs());
        tracing::error!(pending, "{message}");
        message
    })?;
    tracing::info!("all requests answered, all campaign writes flushed, supervisors stopped; bye");
    Ok(())
}

/// The shutdown steps in order, each bounded by `deadline`; `Err` says what
/// was still pending when it passed.
async fn drain(
    ctx: &Ctx,
    graceful: GracefulShutdown,
    supervisor: &ractor::ActorRef<MoneySupervisorMsg>,
    open: &AtomicUsize,
    deadline: tokio::time::Instant,
) -> Result<(), String> {
    use tokio::time::timeout_at;
    // Idle keep-alive connections close now; busy ones after their response
    // (sent with `connection: close`).
    if timeout_at(deadline, graceful.shutdown()).await.is_err() {
        return Err(format!("{} connections still had a request in flight", open.load(Ordering::Relaxed)));
    }
    let registry = &ctx.engine.registry;
    if timeout_at(deadline, registry.drain()).await.is_err() {
        return Err(format!("{} campaign actors had not flushed their writes", registry.draining()));
    }
    // A child stops between passes; each money step is idempotent anyway.
    match timeout_at(deadline, async { ractor::call!(supervisor, MoneySupervisorMsg::Shutdown) }).await {
        Err(_) => return Err("a money supervisor was still in the middle of a pass".into()),
        Ok(Err(e)) => tracing::warn!(error = %e, "the money supervisor was already gone"),
        Ok(Ok(())) => {}
    }
    supervisor.stop(Some("shutdown".into()));
    Ok(())
}
