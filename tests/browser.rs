//! `affiliate.js` in a real browser: Debian's headless Chromium, driven by
//! `tests/browser/scenarios.mjs` (playwright-core, no browser download),
//! against the real binary and landing pages served from this test.
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM_PATH`), `node` and
//! `cd tests/browser && npm ci`. Without them the browser test is skipped
//! with a notice, except under `CI=true`, where that is a failure.

mod common;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

const ORIGIN_NOT_ALLOWED: &str = "origin_not_allowed";

/// What the browser test needs, or why it cannot run.
fn browser_tools() -> Result<(PathBuf, PathBuf), String> {
    let chromium = PathBuf::from(std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!("Chromium at {} (apt-get install chromium, or set CHROMIUM_PATH)", chromium.display()));
    }
    if std::process::Command::new("node").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        missing.push("node on PATH (Node.js 20+)".to_string());
    }
    if !dir.join("node_modules/playwright-core/package.json").is_file() {
        missing.push(format!("{}/node_modules (cd tests/browser && npm ci --no-audit --no-fund)", dir.display()));
    }
    if missing.is_empty() {
        Ok((chromium, dir.join("scenarios.mjs")))
    } else {
        Err(missing.join("; "))
    }
}

/// `Some(tools)`, or `None` after a skip notice; a panic under `CI=true`.
fn require_browser(test: &str) -> Option<(PathBuf, PathBuf)> {
    match browser_tools() {
        Ok(tools) => Some(tools),
        Err(missing) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: CI=true but the browser test cannot run, missing: {missing}")
        }
        Err(missing) => {
            eprintln!("SKIPPED {test}: missing {missing}");
            None
        }
    }
}

/// The advertiser's site: every page carries the snippet exactly as installed.
struct Site {
    engine: String,
    publishable_key: String,
    origin_b: String,
}

impl Site {
    fn snippet_tag(&self) -> String {
        format!(
            r#"<script async src="{}/affiliate.js" data-publishable-key="{}"></script>"#,
            self.engine, self.publishable_key
        )
    }

    fn page(&self, head: &str, body: &str) -> String {
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\">\
             <title>Acme Shop</title>{head}</head><body>{body}</body></html>"
        )
    }

    fn respond(&self, path: &str) -> (StatusCode, String) {
        let tag = self.snippet_tag();
        let html = match path {
            "/landing" => self.page(
                &format!(
                    "<script>sessionStorage.setItem('loads', String(Number(sessionStorage.getItem('loads') || 0) + 1));</script>{tag}"
                ),
                "<h1>Spring sale</h1><p id=\"pricing\">Pricing</p>",
            ),
            // Simulated HubSpot embeds: the classic one posts to its own
            // window; Forms v4 dispatches window events.
            "/hubspot" => self.page(
                &format!(
                    r#"{tag}<script>
window.__hsMessages = 0;
addEventListener('message', (e) => {{ if (e.data && e.data.type === 'hsFormCallback') window.__hsMessages++; }});
window.hsClassic = (email) => {{
  const m = {{type: 'hsFormCallback', eventName: 'onFormSubmitted', id: 'form-1', data: {{submissionValues: {{email}}}}}};
  window.postMessage(m, '*');
  window.postMessage(m, '*');
}};
window.hsClassicArray = (email) => {{
  window.postMessage({{type: 'hsFormCallback', eventName: 'onFormSubmit', id: 'form-2',
    data: [{{name: 'firstname', value: 'Ann'}}, {{name: 'email', value: email}}]}}, '*');
  window.postMessage({{type: 'hsFormCallback', eventName: 'onFormSubmitted', id: 'form-2',
    data: {{submissionValues: {{firstname: 'Ann', email}}}}}}, '*');
}};
window.hsV4 = (email) => {{
  window.HubSpotFormsV4 = {{getFormFromEvent: () => ({{getFormFieldValues: () =>
    Promise.resolve([{{name: '0-1/firstname', value: 'Ann'}}, {{name: '0-1/email', value: email}}])}})}};
  for (let i = 0; i < 2; i++) {{
    window.dispatchEvent(new CustomEvent('hs-form-event:on-submission:success', {{detail: {{formId: 'f'}}}}));
  }}
}};
window.addForeignFrame = () => {{
  const f = document.createElement('iframe');
  f.src = '{origin_b}/frame';
  document.body.appendChild(f);
}};
</script>"#,
                    origin_b = self.origin_b
                ),
                "<h1>Contact us</h1>",
            ),
            // Not HubSpot: a frame on another origin posting a look-alike message.
            "/frame" => self.page(
                "<script>parent.postMessage({type: 'hsFormCallback', eventName: 'onFormSubmitted', id: 'evil', \
                 data: {submissionValues: {email: 'evil@example.com'}}}, '*');</script>",
                "",
            ),
            // track() before the async script has loaded, through the documented stub.
            "/stub" => self.page(
                &format!(
                    "<script>window.introw=window.introw||{{affiliate:{{q:[],track:function(o){{this.q.push(o)}}}}}};\n\
                     window.introw.affiliate.track({{email: 'stub@example.com', properties: {{source: 'stub'}}}});\n\
                     window.__queuedBeforeLoad = window.introw.affiliate.q.length;</script>{tag}"
                ),
                "<h1>Thanks!</h1>",
            ),
            _ => return (StatusCode::NOT_FOUND, self.page("", "not found")),
        };
        (StatusCode::OK, html)
    }
}

/// Serves the site from `listener` until the test ends.
async fn serve_site(listener: TcpListener, site: Arc<Site>) {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let site = site.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (status, html) = site.respond(req.uri().path());
                    let resp = Response::builder()
                        .status(status)
                        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                        .header(header::CACHE_CONTROL, "no-store")
                        .body(Full::new(Bytes::from(html)))
                        .unwrap();
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
}

async fn run_scenarios(script: &Path, chromium: &Path, config: Value) -> Value {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(script)
        .arg(config.to_string())
        .env("CHROMIUM_PATH", chromium)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("the browser scenarios did not finish within 180 s")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node {} failed ({}):\n{stderr}\n{stdout}", script.display(), out.status);
    let line =
        stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON:\n{stdout}\n{stderr}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON ({e}): {line}"))
}

/// One scenario's observations; fails on a scenario that errored in the browser.
fn scenario<'a>(results: &'a Value, name: &str) -> &'a Value {
    let s = &results["scenarios"][name];
    assert!(s.is_object(), "scenario {name} missing: {results:#}");
    assert!(s["error"].is_null(), "scenario {name} failed in the browser: {}\n{:#}", s["error"], s["log"]);
    s
}

fn requests(s: &Value) -> &Vec<Value> {
    s["log"]["requests"].as_array().expect("requests")
}

fn responses(s: &Value) -> &Vec<Value> {
    s["log"]["responses"].as_array().expect("responses")
}

/// The scenario sent exactly one conversion, from the snippet, shaped as the
/// seed documents it; returns its body.
fn one_conversion<'a>(s: &'a Value, name: &str, cookie: &str, pk: &str, email: &str) -> &'a Value {
    let reqs = requests(s);
    assert_eq!(reqs.len(), 1, "{name}: expected exactly one conversion request, got {reqs:#?}");
    let body = &reqs[0]["body"];
    assert_eq!(reqs[0]["method"], "POST", "{name}");
    let content_type = reqs[0]["headers"]["content-type"].as_str().unwrap_or("").to_ascii_lowercase();
    assert_eq!(content_type, "text/plain;charset=utf-8", "{name}: must stay a CORS simple request");
    assert_eq!(body["clickId"], cookie, "{name}: clickId is the cookie");
    assert_eq!(body["publishableKey"], pk, "{name}: the page's publishable key");
    assert_eq!(body["email"], email, "{name}: the submitted email");
    body
}

/// The HTTP status of the scenario's i-th conversion answer, as the browser
/// saw it (201 recorded; 200 duplicate or ignored: the server tells which).
fn answer_status(s: &Value, i: usize) -> u64 {
    let r = responses(s).get(i).unwrap_or_else(|| panic!("no answer #{i}: {:#}", s["log"]));
    r["status"].as_u64().expect("status")
}

fn cookie(s: &Value) -> String {
    s["cookies"]["aff"]["value"].as_str().unwrap_or_else(|| panic!("no _introw_aff cookie: {s:#}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snippet_attributes_links_track_calls_and_hubspot_forms_in_chromium() {
    let Some((chromium, script)) =
        require_browser("the_snippet_attributes_links_track_calls_and_hubspot_forms_in_chromium")
    else {
        return;
    };
    let server = TestServer::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the landing site");
    let port = listener.local_addr().unwrap().port();
    let origin_a = format!("http://127.0.0.1:{port}");
    // Same listener, another origin (host differs): not on the allowlist.
    let origin_b = format!("http://localhost:{port}");
    let world = World::with_campaign(
        &server,
        json!({
            "name": "Spring sale",
            "landingUrl": format!("{origin_a}/landing?utm_campaign=spring#pricing"),
            "compensationModel": "FIXED",
            "payoutCents": 500,
            "promoCode": "SPRING10",
            "allowedOrigins": [origin_a],
        }),
    )
    .await;
    let pk = world.org_publishable_key.clone();
    assert!(pk.starts_with("pk_aff_org_"), "{pk}");
    let site = Arc::new(Site { engine: server.base.clone(), publishable_key: pk.clone(), origin_b: origin_b.clone() });
    serve_site(listener, site).await;

    let results = run_scenarios(
        &script,
        &chromium,
        json!({"engine": server.base, "code": world.code, "originA": origin_a, "originB": origin_b}),
    )
    .await;
    // Shown when the test fails (the harness captures it otherwise).
    eprintln!("browser observations: {results:#}");

    // Nothing the snippet did reached any page's console, in any scenario.
    assert_eq!(results["console"], json!([]), "console output: {:#}", results["console"]);

    // 1. The link lands with the cookie set and only irw_id removed.
    let link = scenario(&results, "link");
    let landed = link["landed"].as_str().unwrap();
    let token = query_param(landed, "irw_id").unwrap_or_else(|| panic!("no irw_id in the landing URL {landed}"));
    let after = link["urlAfterLoad"].as_str().unwrap();
    assert_eq!(
        after,
        format!("{origin_a}/landing?utm_campaign=spring&swarm_ref={}&promo=SPRING10#pricing", world.code),
        "irw_id must go, every other parameter and the fragment stay"
    );
    assert_eq!(link["loads"], "1", "removing irw_id must not reload the page");
    let aff = &link["cookies"]["aff"];
    assert_eq!(aff["value"], token.as_str(), "_introw_aff holds the click token: {link:#}");
    assert_eq!(aff["path"], "/");
    assert_eq!(aff["sameSite"], "Lax");
    assert_eq!(aff["secure"], false, "no Secure on http");
    assert_eq!(aff["httpOnly"], false);
    let days = aff["expiresInDays"].as_f64().expect("a persistent cookie");
    assert!((89.9..=90.1).contains(&days), "90 days, got {days}");
    assert_eq!(link["cookies"]["swarmRef"]["value"], world.code.as_str(), "swarm_ref kept for postbacks");
    assert_eq!(link["cookies"]["swarmRef"]["sameSite"], "Lax");

    // 2. track() records once; the second call for the same visitor is a duplicate.
    let reqs = requests(link);
    assert_eq!(reqs.len(), 2, "two track() calls, two requests: {reqs:#?}");
    for r in reqs {
        assert_eq!(r["body"]["clickId"], token.as_str());
        assert_eq!(r["body"]["publishableKey"], pk.as_str());
        assert_eq!(r["body"]["email"], "first@example.com");
        assert_eq!(r["body"]["properties"], json!({"plan": "pro"}));
        assert_eq!(r["headers"]["content-type"], "text/plain;charset=UTF-8");
    }
    assert_eq!(answer_status(link, 0), 201, "the first track() is recorded");
    assert_eq!(answer_status(link, 1), 200, "the second track() is a duplicate");

    // 3. HubSpot: each simulated submit records one conversion with its email.
    let classic = scenario(&results, "classic");
    assert_eq!(classic["afterForeignFrame"], 0, "a non-HubSpot frame's message must be ignored");
    let classic_cookie = cookie(classic);
    one_conversion(classic, "classic", &classic_cookie, &pk, "classic@example.com");
    assert_eq!(answer_status(classic, 0), 201, "classic HubSpot submit recorded");
    let array = scenario(&results, "classicArray");
    let array_cookie = cookie(array);
    one_conversion(array, "classicArray", &array_cookie, &pk, "array@example.com");
    assert_eq!(answer_status(array, 0), 201, "classic onFormSubmit recorded");
    let v4 = scenario(&results, "v4");
    let v4_cookie = cookie(v4);
    one_conversion(v4, "v4", &v4_cookie, &pk, "v4@example.com");
    assert_eq!(answer_status(v4, 0), 201, "Forms v4 submit recorded");

    // 4. An origin outside the allowlist: sent, ignored, silent.
    let foreign = scenario(&results, "foreign");
    let foreign_cookie = cookie(foreign);
    assert_eq!(foreign_cookie, foreign["token"].as_str().unwrap());
    one_conversion(foreign, "foreign", &foreign_cookie, &pk, "foreign@example.com");
    assert_eq!(answer_status(foreign, 0), 200, "lenient answer for a foreign origin (ignored)");

    // 5. No irw_id and no cookie: nothing but the script itself.
    let nothing = scenario(&results, "nothing");
    assert_eq!(
        nothing["log"]["engineRequests"],
        json!([{"method": "GET", "url": format!("{}/affiliate.js", server.base)}]),
        "a visitor without a click must send nothing"
    );
    assert_eq!(nothing["cookies"]["names"], json!([]));
    assert_eq!(nothing["url"], format!("{origin_a}/hubspot?utm_source=direct#top"));

    // 6. The stub's queued call is delivered once the script loads.
    let stub = scenario(&results, "stub");
    assert_eq!(stub["queuedBeforeLoad"], 1, "the call must have been queued by the stub");
    let stub_cookie = cookie(stub);
    let body = one_conversion(stub, "stub", &stub_cookie, &pk, "stub@example.com");
    assert_eq!(body["properties"], json!({"source": "stub"}));
    assert_eq!(answer_status(stub, 0), 201, "the stub's queued call is recorded");

    // Without fetch, sendBeacon carries the same request.
    let beacon = scenario(&results, "beacon");
    let beacon_cookie = cookie(beacon);
    assert_eq!(requests(beacon).len(), 1, "{:#}", beacon["log"]);
    let sent = &beacon["beacon"];
    assert_eq!(sent["url"], format!("{}/api/v1/affiliate/conversions", server.base));
    assert_eq!(sent["type"], "text/plain;charset=utf-8");
    assert_eq!(sent["body"], json!({"clickId": beacon_cookie, "email": "beacon@example.com", "publishableKey": pk}));
    assert_eq!(answer_status(beacon, 0), 201, "the beacon is recorded");

    // The server agrees: six recorded (link, classic, array, v4, stub,
    // beacon), one duplicate, one refused for its origin, seven human clicks.
    let stats = world.stats(&server).await;
    assert_eq!(stats["conversions"]["recorded"], 6, "{stats:#}");
    assert_eq!(stats["conversions"]["duplicate"], 1, "{stats:#}");
    server
        .until("the ignored conversion is counted", || async {
            (world.stats(&server).await["conversions"]["ignored"][ORIGIN_NOT_ALLOWED] == 1).then_some(())
        })
        .await;
    server
        // One browser on one link: the first click counts, the six repeats
        // inside the unique-click window are logged as duplicates.
        .until("seven clicks are logged", || async {
            let s = world.stats(&server).await;
            (s["clicks"] == 1 && s["duplicateClicks"] == 6).then_some(())
        })
        .await;
    assert_eq!(world.stats(&server).await["botClicks"], 0);
    // Each browser-recorded click is taken: replaying its cookie is a duplicate...
    let mut cookies = vec![token.clone(), classic_cookie, array_cookie, v4_cookie, stub_cookie, beacon_cookie];
    cookies.sort();
    cookies.dedup();
    assert_eq!(cookies.len(), 6, "every visitor had a click of their own");
    for c in &cookies {
        let r = world.convert(&server, c).await;
        assert_eq!((r.status.as_u16(), r.json()["status"].clone()), (200, json!("duplicate")), "{c}: {}", r.text);
    }
    // ...while the foreign page's click was never recorded.
    let r = world.convert(&server, &foreign_cookie).await;
    assert_eq!((r.status.as_u16(), r.json()["status"].clone()), (201, json!("recorded")), "{}", r.text);
}

#[tokio::test]
async fn the_snippet_is_served_with_an_etag_and_revalidates_with_304() {
    let server = TestServer::start().await;
    let first = server.get("/affiliate.js", None).await;
    assert_eq!(first.status, 200);
    assert!(first.header("content-type").unwrap().starts_with("text/javascript"), "{:?}", first.headers);
    let etag = first.header("etag").expect("an ETag").to_string();
    assert!(first.header("cache-control").is_some_and(|c| c.contains("max-age")), "{:?}", first.headers);
    assert_eq!(first.text, clickledger::http::snippet::SOURCE);
    assert!(first.text.contains("_introw_aff") && first.text.contains("hsFormCallback"), "the real snippet is served");
    let again = server.send(hyper::Method::GET, "/affiliate.js", &[("if-none-match", &etag)], Vec::new()).await;
    assert_eq!(again.status, 304, "{:?}", again.headers);
    assert_eq!(again.text, "");
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let stale = server.send(hyper::Method::GET, "/affiliate.js", &[("if-none-match", "\"nope\"")], Vec::new()).await;
    assert_eq!(stale.status, 200);
}
