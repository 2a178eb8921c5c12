//! A log sink that fails never affects serving: stderr a pipe whose reader
//! is gone, or `/dev/full`, at debug level (a line per request).

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;

use common::*;

/// The write end of a pipe whose read end is already closed.
fn pipe_without_reader() -> Stdio {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    Stdio::from(unsafe { OwnedFd::from_raw_fd(fds[1]) })
}

async fn serves_every_request(server: &TestServer) {
    let w = World::fixed(server, 500).await;
    for i in 0..50 {
        assert_eq!(server.get("/healthz", None).await.status, 200);
        let r = w.postback(server, &format!("order-{i}"), None).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(w.click(server).await.status, 302);
    }
    let r = w.postback(server, "order-0", None).await;
    assert_eq!(r.json()["status"], "duplicate");
    let dropped = metric_line(&server.metrics().await, "clickledger_log_lines_dropped_total");
    assert!(dropped > 0.0, "the lost lines are counted");
}

fn metric_line(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
}

impl World {
    async fn click(&self, server: &TestServer) -> Reply {
        server.click(&self.code).await
    }
}

#[tokio::test]
async fn a_log_pipe_whose_reader_is_gone_costs_nothing_but_log_lines() {
    let server = TestServer::start_with_stderr(&[("CLICKLEDGER_LOG_LEVEL", "debug")], pipe_without_reader()).await;
    serves_every_request(&server).await;
}

#[tokio::test]
async fn a_full_log_device_costs_nothing_but_log_lines() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let server = TestServer::start_with_stderr(&[("CLICKLEDGER_LOG_LEVEL", "debug")], Stdio::from(full)).await;
    serves_every_request(&server).await;
}
