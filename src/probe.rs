//! `clickledger probe URL`: one HTTP GET for container health checks (the
//! slim image has no curl), on the hyper client already in the build.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper::{header, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// GETs `url` (http only) within `timeout`; the status, whatever it is.
pub async fn get(url: &str, timeout: Duration) -> Result<StatusCode, String> {
    tokio::time::timeout(timeout, fetch(url))
        .await
        .map_err(|_| format!("no answer from {url} within {} ms", timeout.as_millis()))?
}

async fn fetch(url: &str) -> Result<StatusCode, String> {
    let uri: Uri = url.parse().map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("'{url}': only http:// URLs can be probed"));
    }
    let authority = uri.authority().ok_or_else(|| format!("'{url}' has no host"))?.clone();
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port)).await.map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(header::HOST, authority.as_str())
        .header(header::USER_AGENT, "clickledger-probe")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("GET {url}: {e}"))?;
    Ok(response.status())
}
