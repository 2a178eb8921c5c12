//! The baselines: a bare hyper server that answers `GET /r/…` with a 302 to
//! a fixed Location, `GET /healthz` with a fixed small JSON body, and `POST
//! /api/v1/postback` by parsing the JSON body and answering 204. Same paths and bodies as the engine, none of its work, so
//! the engine's figures can be read as a share of what hyper alone does on
//! the same machine with the same load.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const LOCATION: &str = "https://shop.example.com/landing?irw_id=baseline&swarm_ref=baseline";
/// The engine's /healthz body, give or take the campaign count.
const HEALTHZ: &str = r#"{"campaigns":4,"status":"ok","store":"embedded"}"#;

pub async fn serve(listen: &str) -> Result<(), String> {
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("bind {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    // The first stdout line names the address, as the engine's does.
    println!("baseline listening on http://{bound}");
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| format!("accept: {e}"))?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(answer)).await;
        });
    }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let status = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, path) if path.starts_with("/r/") => {
            return Ok(Response::builder()
                .status(StatusCode::FOUND)
                .header("location", LOCATION)
                .body(Full::new(Bytes::new()))
                .expect("response"));
        }
        (&Method::GET, "/healthz") => {
            return Ok(Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(HEALTHZ.as_bytes())))
                .expect("response"));
        }
        (&Method::POST, "/api/v1/postback") => {
            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(_) => StatusCode::NO_CONTENT,
                Err(_) => StatusCode::BAD_REQUEST,
            }
        }
        _ => StatusCode::NOT_FOUND,
    };
    Ok(Response::builder().status(status).body(Full::new(Bytes::new())).expect("response"))
}
