//! Test keyspaces on the CQL node, named after the test process that made
//! them so that later processes can drop them.
//!
//! Every keyspace holds about thirty tables, and Cassandra keeps heap for each
//! table it knows: one `scripts/test` run makes about fifty keyspaces, enough
//! to fill the test node's 3 GiB heap and stall it in back-to-back full GCs
//! (writes then time out with "received only 0 responses"). So the first
//! keyspace a test process asks for first drops the keyspaces of test
//! processes that are gone. Only on a node that `scripts/test` started
//! (CLICKLEDGER_TEST_CQL_MANAGED): a node you run yourself may hold other
//! machines' keyspaces, whose pids mean nothing here.

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

/// The prefixes of test keyspaces: `t_` for the HTTP and conformance tests,
/// `p_` for the property tests.
const PREFIXES: [&str; 2] = ["t_", "p_"];

/// A new keyspace name for this process: `{prefix}{pid}_{random}`.
pub fn name(prefix: &str) -> String {
    assert!(PREFIXES.contains(&prefix), "unknown test keyspace prefix {prefix}");
    let random = clickledger::domain::ids::random_base62(10).to_ascii_lowercase();
    format!("{prefix}{}_{random}", std::process::id())
}

static PRUNED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Drops, once per process, the test keyspaces whose process has exited.
pub async fn prune_once(node: &str) {
    if std::env::var("CLICKLEDGER_TEST_CQL_MANAGED").is_err() {
        return;
    }
    PRUNED.get_or_init(|| prune(node.to_string())).await;
}

async fn prune(node: String) {
    let session = SessionBuilder::new().known_node(&node).build().await.expect("connect to the CQL node to prune");
    let dead: Vec<String> = keyspaces(&session).await.into_iter().filter(|k| owner_gone(k)).collect();
    for keyspace in &dead {
        // Another process may be dropping it too; a failure leaves it for the next one.
        let _ = session.query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[]).await;
    }
    if !dead.is_empty() {
        eprintln!("dropped {} test keyspaces of exited test processes", dead.len());
    }
}

async fn keyspaces(session: &Session) -> Vec<String> {
    let rows = session
        .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", &[])
        .await
        .expect("list keyspaces")
        .into_rows_result()
        .expect("rows");
    rows.rows::<(String,)>()
        .expect("keyspace names")
        .filter_map(|row| row.ok().map(|(name,)| name))
        .filter(|name| PREFIXES.iter().any(|p| name.starts_with(p)))
        .collect()
}

/// True when the keyspace's process is gone, or its name predates the pid.
fn owner_gone(keyspace: &str) -> bool {
    let pid = keyspace.get(2..).and_then(|rest| rest.split_once('_')).and_then(|(pid, _)| pid.parse::<u32>().ok());
    match pid {
        Some(pid) => pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        None => true,
    }
}

#[test]
fn a_keyspace_name_carries_its_process_and_a_live_process_keeps_it() {
    let mine = name("t_");
    assert!(mine.starts_with(&format!("t_{}_", std::process::id())), "{mine}");
    assert!(!owner_gone(&mine));
    assert!(owner_gone("t_abcdefghijkl"), "names from before the pid are dropped");
    assert!(owner_gone(&format!("p_{}_x", u32::MAX)), "no such process");
}
