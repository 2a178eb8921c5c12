//! The front end's guards: slow clients, connection bounds, keep-alive.

mod common;

use std::time::Duration;

use common::raw::{connect, read_some};
use common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let server = TestServer::start_with(&[("CLICKLEDGER_HTTP_HEADER_READ_TIMEOUT_MS", "300")]).await;
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // Far longer than the timeout: the server must have given up on us.
    let answer = read_some(&mut slow, Duration::from_secs(10)).await;
    assert!(answer.is_some(), "the server kept a slow client open");
    assert!(!answer.unwrap().contains("200 OK"), "half a request must not be served");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let server = TestServer::start_with(&[("CLICKLEDGER_HTTP_MAX_CONNECTIONS", "1")]).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = connect(&server).await;
    first.write_all(request).await.unwrap();
    assert!(read_some(&mut first, Duration::from_secs(5)).await.unwrap().contains("200 OK"));
    // `first` stays open (keep-alive), holding the only slot.
    let mut second = connect(&server).await;
    second.write_all(request).await.unwrap();
    assert!(read_some(&mut second, Duration::from_millis(500)).await.is_none(), "the bound was not enforced");
    drop(first);
    let answer = read_some(&mut second, Duration::from_secs(5)).await.expect("served once a slot frees");
    assert!(answer.contains("200 OK"), "{answer}");
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let server = TestServer::start().await;
    let mut conn = connect(&server).await;
    for _ in 0..3 {
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert!(read_some(&mut conn, Duration::from_secs(5)).await.unwrap().contains("200 OK"));
    }
}
