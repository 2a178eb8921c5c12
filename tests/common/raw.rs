//! Raw HTTP/1.1 over a TCP socket, for what a well-behaved client library
//! would never send: half requests, oversized heads, lying lengths.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::TestServer;

pub async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.addr()).await.expect("connect")
}

/// Whatever one read returns within `wait` (`None`: nothing, or an error).
pub async fn read_some(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

/// Reads one response: until its `Content-Length` is in, the peer closes,
/// or `wait` passes. Returns the status and everything read.
pub async fn read_response(stream: &mut TcpStream, wait: Duration) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0, // reset after the answer: keep what arrived
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if complete(&buf) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status line in {text:?}"));
    (status, text)
}

fn complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let len = head.lines().find_map(|l| {
        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
    });
    len.is_some_and(|len| body.len() >= len)
}

/// Sends `request` on a fresh connection and reads one response (10 s at most).
pub async fn exchange(server: &TestServer, request: &[u8]) -> (u16, String) {
    let mut stream = connect(server).await;
    stream.write_all(request).await.expect("write request");
    read_response(&mut stream, Duration::from_secs(10)).await
}
