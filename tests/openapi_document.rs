//! `GET /openapi.json` serves the API's OpenAPI 3.1 document, byte for byte
//! the one kept in `src/http/openapi.json` (which CI lints and checks every
//! integration-test response against, `tests/openapi/`).

mod common;

use common::*;

#[tokio::test]
async fn the_engine_serves_its_openapi_document_with_an_etag() {
    let server = TestServer::start().await;
    let r = server.get("/openapi.json", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text, include_str!("../src/http/openapi.json"));
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in ["/api/v1/campaigns", "/api/v1/affiliate/campaigns", "/api/v1/campaigns/{id}/archive", "/r/{code}"] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    let etag = r.header("etag").expect("an ETag").to_string();
    let again = server.send(hyper::Method::GET, "/openapi.json", &[("if-none-match", &etag)], vec![]).await;
    assert_eq!(again.status, 304);
}
