//! `clickledger`: parse flags, load config, install telemetry, bind, serve.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use clickledger::config::{Config, LogFormat, Overrides};

#[derive(Parser)]
#[command(
    name = "clickledger",
    version,
    about = "Affiliate attribution engine: clicks, conversions and postbacks, exactly once."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(Common),
    /// Print the admin key (CLICKLEDGER_ADMIN_KEY, else the data directory's secrets file, or on CQL the keyspace's); never creates one.
    AdminKey(Common),
    /// Print the effective configuration (file, environment and flags applied) as TOML, secrets redacted.
    Config(Common),
    /// Create or upgrade the CQL schema (store = "scylla"); safe to run from several nodes at once.
    Migrate(Common),
    /// GET a URL and print the status; exit 0 iff it is 2xx (container health checks).
    Probe {
        /// e.g. http://127.0.0.1:8080/readyz
        url: String,
        /// Give up (exit 1) after this many milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

#[derive(Args)]
struct Common {
    /// Configuration file (TOML); see config/default.toml for every setting.
    #[arg(long, env = "CLICKLEDGER_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long)]
    listen: Option<String>,
    /// Data directory for the embedded store and generated secrets.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Storage backend: embedded (redb in the data directory) or scylla (ScyllaDB / Cassandra).
    #[arg(long)]
    store: Option<String>,
    /// Base URL for partners' /r/{code} links.
    #[arg(long)]
    public_url: Option<String>,
}

impl Common {
    fn load(&self) -> Config {
        let flags = Overrides {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            store: self.store.clone(),
            public_url: self.public_url.clone(),
        };
        Config::load(self.config.as_deref(), &flags).unwrap_or_else(|e| fail(&e))
    }
}

/// Says why on stderr (if it can: a broken stderr must not turn the exit
/// into a panic) and exits 2.
fn fail(message: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "clickledger: {message}");
    std::process::exit(2)
}

/// A line on stdout that never panics (println! does when stdout is closed).
fn say(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(common) => serve(common.load()),
        Command::AdminKey(common) => {
            let config = common.load();
            match runtime().block_on(clickledger::server::admin_key(&config)) {
                Ok(key) => say(&key),
                Err(e) => fail(&e),
            }
        }
        Command::Config(common) => say(common.load().to_toml().trim_end()),
        Command::Probe { url, timeout_ms } => probe(&url, Duration::from_millis(timeout_ms)),
        Command::Migrate(common) => {
            let config = common.load();
            init_logging(&config);
            match runtime().block_on(clickledger::server::migrate(&config)) {
                Ok(message) => say(&message),
                Err(e) => fail(&e),
            }
        }
    }
}

fn init_logging(config: &Config) {
    use std::io::IsTerminal;
    let level: tracing::Level =
        config.log_level.parse().unwrap_or_else(|_| fail("log_level must be error, warn, info, debug or trace"));
    // A failing stderr must never fail a request: lines are queued to a
    // writer thread that drops (and counts) what it cannot write, and the
    // subscriber's own error reports (eprintln!, which panics on a broken
    // stderr) are off.
    let logs = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(clickledger::logging::LossyStderr::start())
        .log_internal_errors(false);
    match config.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object per line; `span` holds the request's fields (request_id).
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(true).with_span_list(false).init(),
    }
}

fn probe(url: &str, timeout: Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let runtime = runtime.unwrap_or_else(|e| fail(&e.to_string()));
    match runtime.block_on(clickledger::probe::get(url, timeout)) {
        Ok(status) => {
            say(&status.to_string());
            std::process::exit(if status.is_success() { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("clickledger probe: {e}");
            std::process::exit(1)
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| fail(&e.to_string()))
}

fn serve(config: Config) {
    init_logging(&config);
    let runtime = runtime();
    runtime.block_on(async move {
        let shutdown = shutdown_signal();
        let prometheus = clickledger::metrics::install().unwrap_or_else(|e| fail(&e));
        clickledger::metrics::spawn_upkeep(prometheus.clone());
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .unwrap_or_else(|e| fail(&format!("cannot listen on {}: {e}", config.listen)));
        // Scripts and tests read this line to find the port when listening
        // on :0, so it comes once the node can serve (store open, secrets
        // agreed), never before a start-up that is about to fail.
        let ready = |bound| say(&format!("clickledger listening on http://{bound}"));
        if let Err(e) = clickledger::server::run(config, listener, Some(prometheus), shutdown, ready).await {
            fail(&e);
        }
    });
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when it is first polled: a signal that arrives while the
/// engine is still starting is then a graceful stop, not an abrupt death.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).unwrap_or_else(|e| fail(&format!("SIGTERM handler: {e}")));
        let mut int = signal(SignalKind::interrupt()).unwrap_or_else(|e| fail(&format!("SIGINT handler: {e}")));
        async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            tracing::info!("shutdown signal received");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
