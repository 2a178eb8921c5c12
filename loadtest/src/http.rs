//! A bare HTTP/1.1 client: one keep-alive connection per worker, reconnected
//! after an error. No pooling and no redirects followed: the load generator
//! wants to see each 302 itself and to know which connection a request used.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// Where requests go: `http://host:port` (plain HTTP only; put TLS in front
/// of the engine in a proxy and point the tool at the proxy's plain side).
#[derive(Clone, Debug)]
pub struct Base {
    pub url: String,
    pub authority: String,
}

impl Base {
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim().trim_end_matches('/');
        let authority =
            url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// targets are supported"))?;
        if authority.is_empty() || authority.contains('/') {
            return Err(format!("{url}: expected http://host:port"));
        }
        Ok(Self { url: url.to_string(), authority: authority.to_string() })
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub struct Conn {
    base: Base,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(base: Base) -> Self {
        Self { base, sender: None }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&self.base.authority))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one request; on any transport error the connection is dropped
    /// and the next request opens a new one.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, String> {
        let result = self.try_send(method, path, headers, body).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = Some(self.connect().await?);
        }
        let sender = self.sender.as_mut().expect("connected");
        sender.ready().await.map_err(|e| format!("connection: {e}"))?;
        let mut req = Request::builder().method(method).uri(path).header("host", &self.base.authority);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).map_err(|e| format!("request: {e}"))?;
        let resp = sender.send_request(req).await.map_err(|e| format!("send: {e}"))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
        Ok(Reply { status, headers, body })
    }

    /// A JSON API call with a secret key; `Err` only for transport errors.
    pub async fn api(&mut self, method: Method, path: &str, key: &str, body: Option<&Value>) -> Result<Reply, String> {
        let auth = format!("Bearer {key}");
        let body = body.map(|b| Bytes::from(serde_json::to_vec(b).expect("json"))).unwrap_or_default();
        self.send(method, path, &[("authorization", &auth), ("content-type", "application/json")], body).await
    }
}

/// Pulls a query parameter out of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}
