//! `clickledger-loadtest`: a load generator for a Clickledger deployment.
//!
//! - `setup` creates an advertiser, campaigns and approved affiliates through
//!   the API (`target.rs`) and writes a target file; a hand-written one works
//!   too.
//! - `run` drives a scenario (`scenario.rs`) under an open or closed loop
//!   (`runner.rs`), optionally against the bare `baseline` server first
//!   (`baseline.rs`), verifies the engine's stats afterwards (`verify.rs`)
//!   and reports (`report.rs`; charts in `chart.rs` and `plot.rs`).
//!
//! Exit status: 0 when the run finished and verification passed, 1 when
//! verification failed, 2 on a usage or setup error.

mod baseline;
mod chart;
mod http;
mod plot;
mod report;
mod runner;
mod scenario;
mod target;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::report::Report;
use crate::runner::Load;
use crate::scenario::{Mix, Scenario};
use crate::target::{SetupPlan, Target};

#[derive(Parser)]
#[command(name = "clickledger-loadtest", about = "Load generator for Clickledger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an advertiser, campaigns and affiliates through the API and write a target file.
    Setup {
        /// Base URL of the engine, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        target: String,
        #[arg(long, env = "CLICKLEDGER_ADMIN_KEY", hide_env_values = true)]
        admin_key: String,
        #[arg(long, default_value_t = 4)]
        campaigns: usize,
        #[arg(long, default_value_t = 4)]
        affiliates: usize,
        /// Deposit this many cents into each campaign (1 to 10^12), so payouts
        /// are escrowed at once instead of waiting for funds.
        #[arg(long, default_value_t = 0)]
        fund_cents: u64,
        /// Where to write the target file (JSON); stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Drive a scenario against the target file's deployment.
    Run(RunArgs),
    /// Serve the bare baselines: GET /r/* → 302, POST /api/v1/postback → parse JSON → 204.
    Baseline {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The target file written by `setup`.
    #[arg(long)]
    target_file: PathBuf,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Open loop: iterations per second across all connections.
    #[arg(long, conflicts_with = "closed")]
    rate: Option<f64>,
    /// Closed loop: each connection sends as soon as it has an answer (the default without --rate).
    #[arg(long)]
    closed: bool,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured time: 10s, 500ms, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured time before it (its answers are still verified).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Share of postbacks / conversions that repeat an acknowledged key.
    #[arg(long, default_value_t = 0.1)]
    duplicates: f64,
    /// Postbacks per request of the batch scenario.
    #[arg(long, default_value_t = 100)]
    batch_items: usize,
    /// Share of funnel conversions sent with a forged token.
    #[arg(long, default_value_t = 0.05)]
    forged: f64,
    /// Zipf exponent of the campaign choice (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// A baseline server (`clickledger-loadtest baseline`) to run the same
    /// load against just before, for the engine/baseline ratio.
    #[arg(long)]
    baseline: Option<String>,
    /// Skip the stats check after the run.
    #[arg(long)]
    no_verify: bool,
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Charts of requests/s and p99 per second (engine and baseline): a PNG
    /// and an SVG at this path with `.png` and `.svg` as extension
    /// (`--chart pb.png` writes pb.png and pb.svg).
    #[arg(long)]
    chart: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = number.parse().map_err(|_| format!("{s}: expected a duration such as 10s, 500ms, 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s}: the unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s}: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup { target, admin_key, campaigns, affiliates, fund_cents, out } => {
            match http::Base::parse(&target) {
                Ok(base) => {
                    let plan = SetupPlan { base, admin_key, campaigns, affiliates, fund_cents };
                    setup(plan, out).await.map(|()| ExitCode::SUCCESS)
                }
                Err(e) => Err(e),
            }
        }
        Command::Baseline { listen } => baseline::serve(&listen).await.map(|()| ExitCode::SUCCESS),
        Command::Run(args) => run(args).await,
    };
    result.unwrap_or_else(|e| {
        eprintln!("clickledger-loadtest: {e}");
        ExitCode::from(2)
    })
}

async fn setup(plan: SetupPlan, out: Option<PathBuf>) -> Result<(), String> {
    if plan.campaigns == 0 || plan.affiliates == 0 {
        return Err("--campaigns and --affiliates must be at least 1".into());
    }
    let made = target::setup(&plan).await?;
    let json = serde_json::to_string_pretty(&made).expect("json");
    match out {
        Some(path) => std::fs::write(&path, json + "\n").map_err(|e| format!("write {}: {e}", path.display())),
        None => {
            println!("{json}");
            Ok(())
        }
    }
}

async fn run(args: RunArgs) -> Result<ExitCode, String> {
    let text =
        std::fs::read_to_string(&args.target_file).map_err(|e| format!("read {}: {e}", args.target_file.display()))?;
    let target: Target = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", args.target_file.display()))?;
    if args.connections == 0 || args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err("--connections and --rate must be positive".into());
    }
    if args.baseline.is_some() && !matches!(args.scenario, Scenario::Redirect | Scenario::Postback) {
        return Err("--baseline compares redirect or postback; this scenario has no baseline".into());
    }
    if args.scenario == Scenario::Referral && target.affiliate_keys.is_empty() {
        return Err("the referral scenario needs affiliateKeys in the target file (setup writes them)".into());
    }
    let mix = Mix {
        duplicates: args.duplicates,
        forged: args.forged,
        zipf: args.zipf,
        baseline: false,
        batch_items: args.batch_items,
    };
    let load = Load {
        scenario: args.scenario,
        rate: if args.closed { None } else { args.rate },
        connections: args.connections,
        duration: args.duration,
        warmup: args.warmup,
        mix,
        progress: !args.quiet,
    };
    let run_id = run_id();
    let baseline = match &args.baseline {
        Some(url) => {
            let mut t = target.clone();
            t.base = url.clone();
            let mut l = load.clone();
            l.mix.baseline = true;
            eprintln!("baseline {url}:");
            let outcome = runner::run(&l, Arc::new(t), &run_id).await?;
            Some(Report::new(&outcome, None))
        }
        None => None,
    };
    let target = Arc::new(target);
    let before = if args.no_verify { None } else { Some(verify::snapshot(&target).await?) };
    eprintln!("engine {}:", target.base);
    let outcome = runner::run(&load, target.clone(), &run_id).await?;
    let verification = match &before {
        Some(before) => Some(verify::verify(args.scenario, &target, before, &outcome.tally).await),
        None => None,
    };
    let mut report = Report::new(&outcome, verification);
    if let Some(b) = baseline {
        report = report.with_baseline(b);
    }
    print!("{}", report.text());
    write_reports(&args, &report)?;
    let failed = report.verification.as_ref().is_some_and(|v| !v.passed);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Writes the files asked for and says where they are.
fn write_reports(args: &RunArgs, report: &Report) -> Result<(), String> {
    let mut written = Vec::new();
    let mut write = |path: &PathBuf, bytes: &[u8]| {
        written.push(path.display().to_string());
        std::fs::write(path, bytes).map_err(|e| format!("write {}: {e}", path.display()))
    };
    if let Some(path) = &args.json {
        write(path, (serde_json::to_string_pretty(report).expect("json") + "\n").as_bytes())?;
    }
    if let Some(path) = &args.markdown {
        write(path, report.markdown().as_bytes())?;
    }
    if let Some(path) = &args.chart {
        write(&path.with_extension("svg"), chart::svg(report).as_bytes())?;
        let png = path.with_extension("png");
        plot::write_png(report, &png)?;
        written.push(format!("{} ({}x{} PNG)", png.display(), plot::WIDTH, plot::HEIGHT));
    }
    if !written.is_empty() {
        println!("  written: {}", written.join(", "));
    }
    Ok(())
}

/// Distinguishes this run's externalIds from every other run's.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}{:x}", nanos, std::process::id())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_with_and_without_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
    }
}
