//! CI smoke run: the real `clickledger` server on port 0 with a temporary
//! data directory, set up through the API by `clickledger-loadtest setup`,
//! then a two-second run of every scenario, verification included. Only
//! correctness is asserted (exit status, verification passed, answers
//! seen), never a timing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const ADMIN_KEY: &str = "loadtest-smoke-admin-key-0123456789";
const LOADTEST: &str = env!("CARGO_BIN_EXE_clickledger-loadtest");

/// A child process that is killed when the test ends, whatever happens.
struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` and reads the address from its first stdout line
/// (`… listening on http://host:port`), as the engine's tests do.
fn start(mut cmd: Command) -> Running {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next().expect("exited before listening").expect("read stdout");
    let base = line.trim().rsplit(' ').next().expect("address").to_string();
    std::thread::spawn(move || for _ in lines {});
    Running { child, base }
}

/// The engine binary of this workspace, built if it is missing or stale
/// (a no-op after the root `cargo test`, which builds it).
fn engine_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--locked", "--bin", "clickledger", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --bin clickledger failed");
    let deps = std::env::current_exe().expect("test binary");
    deps.parent().and_then(Path::parent).expect("target/<profile>").join("clickledger")
}

fn engine(data_dir: &Path) -> Running {
    let mut cmd = Command::new(engine_binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CLICKLEDGER_ADMIN_KEY", ADMIN_KEY)
        .env("CLICKLEDGER_LOG_LEVEL", "warn");
    start(cmd)
}

fn baseline() -> Running {
    let mut cmd = Command::new(LOADTEST);
    cmd.args(["baseline", "--listen", "127.0.0.1:0"]);
    start(cmd)
}

fn setup(engine: &Running, dir: &Path) -> PathBuf {
    let file = dir.join("target.json");
    let out = Command::new(LOADTEST)
        .args(["setup", "--campaigns", "3", "--affiliates", "2", "--fund-cents", "100000000", "--target", &engine.base])
        .arg("--out")
        .arg(&file)
        .env("CLICKLEDGER_ADMIN_KEY", ADMIN_KEY)
        .output()
        .expect("run setup");
    assert!(out.status.success(), "setup failed: {}", String::from_utf8_lossy(&out.stderr));
    file
}

/// Runs one scenario for two seconds and returns its JSON report.
fn run(target_file: &Path, dir: &Path, scenario: &str, extra: &[&str]) -> Value {
    let report = dir.join(format!("{scenario}.json"));
    let out = Command::new(LOADTEST)
        .args(["run", "--scenario", scenario, "--connections", "4", "--duration", "2s", "--warmup", "500ms", "--quiet"])
        .arg("--target-file")
        .arg(target_file)
        .arg("--json")
        .arg(&report)
        .args(extra)
        .output()
        .expect("run the load test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{scenario} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("JSON report");
    assert_eq!(report["verification"]["passed"], true, "{stdout}");
    assert!(report["iterations"].as_u64().unwrap() > 0, "{stdout}");
    report
}

/// The PNG chart: its header says 1000 x 700, 8-bit RGB, and its pixels hold
/// both lines (the engine's blue, the baseline's grey) and dark text.
fn check_png(path: &Path) {
    let bytes = std::fs::read(path).expect("a PNG chart");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "IHDR first");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), (1000, 700), "width and height");
    assert_eq!((bytes[24], bytes[25]), (8, 2), "8-bit RGB");
    let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes)).read_info().expect("decodes");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    reader.next_frame(&mut pixels).expect("one frame");
    let count = |rgb: [u8; 3]| pixels.chunks(3).filter(|p| *p == rgb).count();
    assert!(count([0x1f, 0x5f, 0xbf]) > 100, "the engine's line is drawn");
    assert!(count([0x90, 0x90, 0x90]) > 100, "the baseline's line is drawn");
    assert!(count([0, 0, 0]) > 100, "text and axes are drawn");
}

#[test]
fn every_scenario_runs_against_a_fresh_engine_and_its_counts_verify() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let engine = engine(&data);
    let bare = baseline();
    let target = setup(&engine, tmp.path());

    let chart = tmp.path().join("redirect.png");
    let redirect =
        run(&target, tmp.path(), "redirect", &["--baseline", &bare.base, "--chart", chart.to_str().unwrap()]);
    assert!(std::fs::read_to_string(chart.with_extension("svg")).unwrap().starts_with("<svg"), "an SVG chart");
    check_png(&chart);
    assert!(redirect["ratio"]["throughput"].as_f64().is_some_and(|r| r > 0.0), "{redirect}");
    assert!(redirect["statuses"]["302"].as_u64().is_some_and(|n| n > 0), "{redirect}");

    let postback = run(&target, tmp.path(), "postback", &["--baseline", &bare.base, "--duplicates", "0.2"]);
    assert!(postback["statuses"]["201"].as_u64().is_some_and(|n| n > 0), "{postback}");
    assert!(postback["statuses"]["200"].as_u64().is_some_and(|n| n > 0), "duplicates were sent: {postback}");
    assert!(postback["baseline"]["statuses"]["204"].as_u64().is_some_and(|n| n > 0), "{postback}");

    let funnel = run(&target, tmp.path(), "funnel", &["--forged", "0.1"]);
    assert!(funnel["ops"]["conversion"]["count"].as_u64().is_some_and(|n| n > 0), "{funnel}");

    let referral = run(&target, tmp.path(), "referral", &["--duplicates", "0.2"]);
    assert!(referral["ops"]["confirm"]["count"].as_u64().is_some_and(|n| n > 0), "{referral}");

    let mixed = run(&target, tmp.path(), "mixed", &[]);
    assert!(mixed["ops"]["redirect"]["count"].as_u64().is_some_and(|n| n > 0), "{mixed}");

    // Open loop at a modest rate: the schedule, not the server, sets the pace.
    let open = run(&target, tmp.path(), "postback", &["--rate", "100"]);
    assert_eq!(open["model"], "open");
}

#[test]
fn a_run_that_cannot_reach_its_target_fails_loudly() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("target.json");
    // A port nobody listens on: the stats cannot be read before the run.
    let target = r#"{"base":"http://127.0.0.1:9","advertiserKey":"sk","campaigns":[{"id":"cmp_x","compensationModel":"FIXED","payoutCents":1,"codes":["c"]}]}"#;
    std::fs::write(&file, target).unwrap();
    let out = Command::new(LOADTEST)
        .args(["run", "--scenario", "postback", "--duration", "1s", "--warmup", "0s", "--quiet", "--target-file"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!out.status.success());
}
