//! One HTTP attempt of one delivery: resolve (refusing private addresses
//! unless allowed, and connecting to the very address checked, so a DNS
//! answer cannot change between check and use), connect within the connect
//! timeout, POST the signed body, read at most `response_max_bytes` of the
//! answer, all within the total timeout. Redirects are not followed: a 3xx
//! is a failed attempt.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsConnector;

use crate::config::WebhooksConfig;
use crate::domain::webhook::{self, Attempt, Delivery, Endpoint, PostbackMethod};
use crate::engine::webhooks::resolve;

const AGENT: &str = concat!("Clickledger-Webhooks/", env!("CARGO_PKG_VERSION"));

/// What one attempt came to.
pub struct Sent {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration: Duration,
}

impl Sent {
    /// Only a 2xx answer delivers.
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The metric label.
    pub fn outcome(&self) -> &'static str {
        match (self.status, &self.error) {
            (Some(s), _) if (200..300).contains(&s) => "delivered",
            (Some(_), _) => "rejected",
            (None, Some(e)) if e.contains("timed out") => "timeout",
            (None, Some(e)) if e.contains("refused") && e.contains("private") => "refused",
            _ => "error",
        }
    }

    pub fn into_attempt(self, attempt: u32, at: u64) -> Attempt {
        let duration_ms = self.duration.as_millis().min(u128::from(u64::MAX)) as u64;
        Attempt { attempt, at, status_code: self.status, error: self.error, duration_ms }
    }
}

pub async fn send(endpoint: &Endpoint, delivery: &Delivery, config: &WebhooksConfig, tls: &TlsConnector) -> Sent {
    let started = Instant::now();
    let total = Duration::from_millis(config.timeout_ms);
    let result = tokio::time::timeout(total, exchange(endpoint, delivery, config, tls)).await;
    let (status, error) = match result {
        Ok(Ok(status)) => (Some(status), None),
        Ok(Err(why)) => (None, Some(why)),
        Err(_) => (None, Some(format!("timed out after {} ms", config.timeout_ms))),
    };
    Sent { status, error, duration: started.elapsed() }
}

async fn exchange(
    endpoint: &Endpoint,
    delivery: &Delivery,
    config: &WebhooksConfig,
    tls: &TlsConnector,
) -> Result<u16, String> {
    let target_url = delivery.url.as_deref().unwrap_or(&endpoint.url);
    let url = url::Url::parse(target_url).map_err(|e| format!("bad URL: {e}"))?;
    let addrs = targets(&url, config.allow_private_targets).await?;
    let connect = async {
        let tcp = connect_any(&addrs).await?;
        let _ = tcp.set_nodelay(true);
        if url.scheme() == "https" {
            let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_string();
            let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| format!("TLS server name: {e}"))?;
            let tls = tls.connect(name, tcp).await.map_err(|e| format!("TLS handshake: {e}"))?;
            Ok::<_, String>(Stream::Tls(Box::new(tls)))
        } else {
            Ok(Stream::Plain(tcp))
        }
    };
    let stream = tokio::time::timeout(Duration::from_millis(config.connect_timeout_ms), connect)
        .await
        .map_err(|_| format!("connecting timed out after {} ms", config.connect_timeout_ms))??;
    match stream {
        Stream::Plain(s) => exchange_on(s, &url, endpoint, delivery, config).await,
        Stream::Tls(s) => exchange_on(*s, &url, endpoint, delivery, config).await,
    }
}

enum Stream {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

/// The TLS client: Mozilla's roots (webpki-roots) plus the PEM file
/// `webhooks.extra_ca_file` names (a private CA), ring, TLS 1.2 and 1.3.
pub fn tls_connector(extra_ca_file: &str) -> Result<TlsConnector, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if !extra_ca_file.is_empty() {
        let what = |e: &dyn std::fmt::Display| format!("webhooks.extra_ca_file {extra_ca_file}: {e}");
        for cert in CertificateDer::pem_file_iter(extra_ca_file).map_err(|e| what(&e))? {
            roots.add(cert.map_err(|e| what(&e))?).map_err(|e| what(&e))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(std::sync::Arc::new(config)))
}

async fn exchange_on<S>(
    stream: S,
    url: &url::Url,
    endpoint: &Endpoint,
    delivery: &Delivery,
    config: &WebhooksConfig,
) -> Result<u16, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let answer = async {
        let resp = sender.send_request(request(url, endpoint, delivery)?).await.map_err(|e| format!("{e}"))?;
        let status = resp.status().as_u16();
        drain(resp.into_body(), config.response_max_bytes).await;
        Ok(status)
    }
    .await;
    conn.abort();
    answer
}

/// The addresses to try, in the resolver's order: those the host resolves
/// to that are public, unless private targets are allowed. The connection
/// goes to one of these very addresses, so a second DNS answer cannot
/// slip a private one in between check and use.
async fn targets(url: &url::Url, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<IpAddr> = resolve(url).await?;
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|ip| allow_private || webhook::public_address(*ip))
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    if allowed.is_empty() {
        let host = url.host_str().unwrap_or("");
        return Err(format!("refused: {host} resolves only to private or reserved addresses"));
    }
    Ok(allowed)
}

/// The first of `addrs` that accepts a connection.
async fn connect_any(addrs: &[SocketAddr]) -> Result<tokio::net::TcpStream, String> {
    let mut last = String::new();
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = format!("could not connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// A webhook is the signed JSON event; a partner postback is its filled-in
/// URL (GET, no body; or POST with the event as its body), unsigned (the
/// affiliate's tracker knows no secret of ours), with the same id headers.
fn request(url: &url::Url, endpoint: &Endpoint, delivery: &Delivery) -> Result<Request<Full<Bytes>>, String> {
    let timestamp = crate::domain::unix_now();
    let get = delivery.method == Some(PostbackMethod::Get);
    let body = if get { Bytes::new() } else { Bytes::from(delivery.body.clone()) };
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_string(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let mut req = Request::builder()
        .method(if get { hyper::Method::GET } else { hyper::Method::POST })
        .uri(path)
        .header(HOST, host)
        .header(USER_AGENT, HeaderValue::from_static(AGENT))
        .header("webhook-id", &delivery.event_id)
        .header("webhook-timestamp", timestamp.to_string());
    if !get {
        req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if endpoint.kind.is_webhook() {
        let signature = webhook::sign(&endpoint.secret, &delivery.event_id, timestamp, &body);
        req = req.header("webhook-signature", signature);
    }
    req.body(Full::new(body)).map_err(|e| format!("could not build the request: {e}"))
}

/// Reads and drops at most `max` bytes of the answer: enough for the
/// receiver to finish writing, never more than that in memory.
async fn drain(mut body: hyper::body::Incoming, max: usize) {
    let mut read = 0;
    while read < max {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}
