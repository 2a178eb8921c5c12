//! With `CLICKLEDGER_API_RECORD=<dir>`, every response `TestServer::send`
//! receives is appended as one JSON line to `<dir>/<test binary>-<pid>.jsonl`,
//! for `tests/openapi/check.mjs` to check against `src/http/openapi.json`.
//! Unset, it costs one `OnceLock` read per request.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use serde_json::json;

use super::Reply;

/// Bodies longer than this are cut (the checker skips their schema check).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The recording file, opened once per test process; `None` when not recording.
fn sink() -> Option<&'static Mutex<File>> {
    static SINK: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    SINK.get_or_init(|| {
        let dir = PathBuf::from(std::env::var_os("CLICKLEDGER_API_RECORD").filter(|d| !d.is_empty())?);
        std::fs::create_dir_all(&dir).expect("create the CLICKLEDGER_API_RECORD directory");
        let path = dir.join(format!("{}-{}.jsonl", binary_name(), std::process::id()));
        let file = OpenOptions::new().create(true).append(true).open(&path);
        Some(Mutex::new(file.unwrap_or_else(|e| panic!("open {}: {e}", path.display()))))
    })
    .as_ref()
}

/// The test binary's name without cargo's `-<hash>` suffix.
fn binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe.as_ref().and_then(|p| p.file_stem()).and_then(|s| s.to_str()).unwrap_or("tests");
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_string(),
        _ => stem.to_string(),
    }
}

/// The test sending: the current thread's name (libtest names it after the
/// test), else, from a runtime worker, the test that started the server.
fn test_name(server_test: &str) -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" && !name.starts_with("tokio-runtime-worker") => name.to_string(),
        _ => server_test.to_string(),
    }
}

pub(super) fn response(server_test: &str, method: String, path: &str, reply: &Reply) {
    let Some(sink) = sink() else { return };
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut line = json!({
        "test": test_name(server_test),
        "method": method,
        "path": path,
        "query": query,
        "status": reply.status.as_u16(),
        "contentType": reply.header("content-type"),
    });
    if reply.text.len() <= MAX_BODY_BYTES {
        line["body"] = reply.text.clone().into();
    } else {
        let mut cut = MAX_BODY_BYTES;
        while !reply.text.is_char_boundary(cut) {
            cut -= 1;
        }
        line["body"] = reply.text[..cut].into();
        line["truncated"] = true.into();
    }
    let mut text = line.to_string();
    text.push('\n');
    // One write per line under the lock: lines never interleave.
    let mut file = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    file.write_all(text.as_bytes()).expect("write the API recording");
}
