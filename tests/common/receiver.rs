//! A real HTTP receiver for webhook tests: a small server on port 0 that
//! answers from a script (fail with a status, hang past the sender's
//! timeout, then succeed) and keeps every request it got, and a check of
//! their signatures with the standardwebhooks package from npm.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// What the receiver does with the next request.
#[derive(Clone, Debug)]
pub enum Answer {
    Status(u16),
    /// Waits this long, then answers 200 (the sender gives up first).
    Hang(Duration),
}

#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    https: bool,
}

/// A CA's PEM and a TLS acceptor with a certificate it issued for 127.0.0.1.
fn test_tls() -> (String, tokio_rustls::TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let chain = vec![cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl Receiver {
    /// Answers from `script` in order, then 200 to everything.
    pub async fn start(script: Vec<Answer>) -> Self {
        Self::start_inner(script, None).await
    }

    /// The same over HTTPS, with a certificate for 127.0.0.1 from a CA of
    /// its own, whose PEM goes to `ca_file` (the engine's
    /// `webhooks.extra_ca_file`).
    pub async fn start_tls(script: Vec<Answer>, ca_file: &std::path::Path) -> Self {
        let (ca_pem, acceptor) = test_tls();
        std::fs::write(ca_file, ca_pem).unwrap();
        Self::start_inner(script, Some(acceptor)).await
    }

    async fn start_inner(script: Vec<Answer>, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (s, q) = (seen.clone(), script.clone());
        let https = tls.is_some();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (seen, script, tls) = (s.clone(), q.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(req, seen.clone(), script.clone()));
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => drop(http.serve_connection(TokioIo::new(stream), service).await),
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                drop(http.serve_connection(TokioIo::new(stream), service).await);
                            }
                        }
                    }
                });
            }
        });
        Self { addr, seen, script, https }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    pub fn push(&self, answer: Answer) {
        self.script.lock().unwrap().push_back(answer);
    }

    /// Waits until at least `n` requests came, failing after `secs`.
    pub async fn until(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {n} requests, got {got:#?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    seen: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().to_string();
    let headers =
        req.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    seen.lock().unwrap().push(Received { path, headers, body });
    let next = script.lock().unwrap().pop_front();
    let status = match next {
        Some(Answer::Status(s)) => s,
        Some(Answer::Hang(d)) => {
            tokio::time::sleep(d).await;
            200
        }
        None => 200,
    };
    Ok(Response::builder().status(status).body(Full::new(Bytes::from_static(b"{}"))).unwrap())
}

/// Verifies each request's signature with `secret` through the npm
/// standardwebhooks package (tests/webhooks/verify.mjs); one verdict each.
/// `None` when node or the package is missing (outside CI only).
pub fn verify_independently(secret: &str, requests: &[Received]) -> Option<Vec<String>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webhooks");
    if !dir.join("node_modules/standardwebhooks").is_dir() {
        assert!(
            std::env::var("CI").ok().as_deref() != Some("true"),
            "CI=true but tests/webhooks/node_modules is missing (cd tests/webhooks && npm ci)"
        );
        eprintln!("skipping the independent signature check: cd tests/webhooks && npm ci");
        return None;
    }
    let cases: Vec<Value> =
        requests.iter().map(|r| json!({"secret": secret, "headers": r.headers, "body": r.body})).collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&cases).unwrap()).unwrap();
    let out = std::process::Command::new("node").arg(dir.join("verify.mjs")).arg(file.path()).output().unwrap();
    Some(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect())
}
