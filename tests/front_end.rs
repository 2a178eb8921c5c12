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

/// The body the client declares is refused by its length alone: the answer
/// comes while the client has sent a tenth of it (before, the server waited
/// for the rest, up to the body timeout, raised here to a minute).
#[tokio::test]
async fn a_declared_length_over_the_limit_is_answered_413_before_the_body_arrives() {
    let server = TestServer::start_with(&[("CLICKLEDGER_HTTP_BODY_READ_TIMEOUT_MS", "60000")]).await;
    let mut conn = connect(&server).await;
    let head = "POST /api/v1/postback HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n\
                Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&vec![b' '; 100 * 1024]).await.unwrap();
    let (status, text) = common::raw::read_response(&mut conn, Duration::from_secs(20)).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
}

/// A client that keeps writing its oversized body after the 413 still reads
/// the 413: the server drains instead of resetting the connection.
#[tokio::test]
async fn a_client_still_writing_its_body_reads_the_413_instead_of_a_reset() {
    let server = TestServer::start().await;
    let conn = connect(&server).await;
    let (mut read, mut write) = conn.into_split();
    let writer = tokio::spawn(async move {
        let head = "POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n";
        write.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..64 {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let mut buf = Vec::new();
    let _ =
        tokio::time::timeout(Duration::from_secs(20), tokio::io::AsyncReadExt::read_to_end(&mut read, &mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 413"), "got {:?}", &text[..text.len().min(200)]);
    let _ = writer.await;
}

#[tokio::test]
async fn a_request_head_over_the_header_limit_is_a_431() {
    let server = TestServer::start_with(&[("CLICKLEDGER_HTTP_MAX_HEADER_BYTES", "16384")]).await;
    let big = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "a".repeat(20 * 1024));
    let (status, _) = common::raw::exchange(&server, big.as_bytes()).await;
    assert_eq!(status, 431);
    let fits = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "a".repeat(12 * 1024));
    let (status, _) = common::raw::exchange(&server, fits.as_bytes()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_default_header_limit_refuses_a_single_400_kib_header() {
    let server = TestServer::start().await;
    let big = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "a".repeat(400 * 1024));
    let mut conn = connect(&server).await;
    // The server may stop reading (and answer) before all 400 KiB are sent.
    let _ = conn.write_all(big.as_bytes()).await;
    let (status, _) = common::raw::read_response(&mut conn, Duration::from_secs(10)).await;
    assert_eq!(status, 431);
}
