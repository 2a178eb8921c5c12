//! Versioned schema: the CQL files in `migrations/cql/`, applied in order by
//! `clickledger migrate`. Safe from several nodes at once: every statement is
//! idempotent, and a lock row (a conditional insert with a TTL, so a crashed
//! migrator cannot hold it forever) lets one node apply while others wait.

use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::response::query_result::{QueryResult, QueryRowsResult};
use scylla::statement::unprepared::Statement;
use scylla::value::{CqlValue, Row};

use super::session::Profiles;
use crate::config::ScyllaConfig;
use crate::store::{StoreError, StoreResult};

/// (version, name, CQL). Append only: a shipped migration never changes.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../../../migrations/cql/0001_init.cql")),
    (2, "ledger", include_str!("../../../migrations/cql/0002_ledger.cql")),
    (3, "hardening", include_str!("../../../migrations/cql/0003_hardening.cql")),
    (4, "click_log", include_str!("../../../migrations/cql/0004_click_log.cql")),
    (5, "changes", include_str!("../../../migrations/cql/0005_changes.cql")),
    (6, "webhooks", include_str!("../../../migrations/cql/0006_webhooks.cql")),
    (7, "caps", include_str!("../../../migrations/cql/0007_caps.cql")),
    (8, "listings", include_str!("../../../migrations/cql/0008_listings.cql")),
];

pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

const LOCK_TTL_SECS: u32 = 120;
const LOCK_WAIT: Duration = Duration::from_secs(180);

fn err(what: &str) -> impl Fn(String) -> StoreError + '_ {
    move |e| StoreError::Failed(format!("{what}: {e}"))
}

async fn run(session: &Session, profiles: &Profiles, cql: &str) -> StoreResult<QueryResult> {
    run_with(session, profiles, cql, &[]).await
}

/// The `[applied]` column of a conditional statement's answer.
pub fn applied(result: QueryResult) -> StoreResult<bool> {
    let rows = result.into_rows_result().map_err(|e| StoreError::Failed(e.to_string()))?;
    applied_row(&rows).map(|(applied, _)| applied)
}

/// `[applied]` and the whole row: a lost conditional write carries the
/// existing row's columns after it.
pub fn applied_row(rows: &QueryRowsResult) -> StoreResult<(bool, Row)> {
    let row: Row = rows.first_row().map_err(|e| StoreError::Failed(e.to_string()))?;
    match row.columns.first() {
        Some(Some(CqlValue::Boolean(b))) => Ok((*b, row)),
        other => Err(StoreError::Failed(format!("a conditional write answered without [applied]: {other:?}"))),
    }
}

fn replication(config: &ScyllaConfig) -> StoreResult<String> {
    match config.replication_class.as_str() {
        "SimpleStrategy" => {
            Ok(format!("{{'class': 'SimpleStrategy', 'replication_factor': {}}}", config.replication_factor))
        }
        "NetworkTopologyStrategy" => {
            let mut parts = vec!["'class': 'NetworkTopologyStrategy'".to_string()];
            for dc in &config.datacenters {
                let (name, rf) = dc.split_once(':').ok_or_else(|| {
                    StoreError::Failed(format!("scylla.datacenters entry '{dc}' must look like dc1:3"))
                })?;
                let rf: u32 =
                    rf.trim().parse().map_err(|_| StoreError::Failed(format!("'{dc}': bad replication factor")))?;
                parts.push(format!("'{}': {rf}", name.trim().replace('\'', "")));
            }
            if parts.len() == 1 {
                return Err(StoreError::Failed(
                    "NetworkTopologyStrategy needs scylla.datacenters, e.g. [\"dc1:3\"]".into(),
                ));
            }
            Ok(format!("{{{}}}", parts.join(", ")))
        }
        other => Err(StoreError::Failed(format!(
            "scylla.replication_class '{other}' is not SimpleStrategy or NetworkTopologyStrategy"
        ))),
    }
}

/// The statements of one migration file, comments dropped.
pub fn statements(cql: &str) -> Vec<String> {
    let text: String = cql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    text.split(';').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// Brings the keyspace to the latest schema version. Returns that version.
pub async fn migrate(session: &Session, profiles: &Profiles, config: &ScyllaConfig) -> StoreResult<i32> {
    let ks = &config.keyspace;
    // ScyllaDB puts new keyspaces on tablets, which do not support the
    // conditional writes and counters this schema relies on: opt out there.
    // Cassandra has no such option (and no system.scylla_local table).
    let tablets = if is_scylla(session, profiles).await { " AND tablets = {'enabled': false}" } else { "" };
    let create = format!("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}{tablets}", replication(config)?);
    run(session, profiles, &create).await?;
    run(session, profiles, &format!("CREATE TABLE IF NOT EXISTS {ks}.schema_lock (id int PRIMARY KEY, owner text)"))
        .await?;
    run(
        session,
        profiles,
        &format!(
            "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (version int PRIMARY KEY, name text, applied_at bigint)"
        ),
    )
    .await?;
    agree(session).await?;
    let owner = crate::domain::ids::random_base62(16);
    lock(session, profiles, ks, &owner).await?;
    let outcome = apply_pending(session, profiles, ks).await;
    let unlock = format!("DELETE FROM {ks}.schema_lock WHERE id = 1 IF owner = '{owner}'");
    let _ = run(session, profiles, &unlock).await;
    outcome
}

async fn is_scylla(session: &Session, profiles: &Profiles) -> bool {
    run(session, profiles, "SELECT * FROM system.scylla_local LIMIT 1").await.is_ok()
}

async fn agree(session: &Session) -> StoreResult<()> {
    session.await_schema_agreement().await.map(drop).map_err(|e| StoreError::Failed(format!("schema agreement: {e}")))
}

async fn lock(session: &Session, profiles: &Profiles, ks: &str, owner: &str) -> StoreResult<()> {
    let started = Instant::now();
    let cql = format!(
        "INSERT INTO {ks}.schema_lock (id, owner) VALUES (1, '{owner}') IF NOT EXISTS USING TTL {LOCK_TTL_SECS}"
    );
    while !applied(run(session, profiles, &cql).await?)? {
        if started.elapsed() > LOCK_WAIT {
            return Err(StoreError::Failed(
                "another `clickledger migrate` holds the schema lock; try again later".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

async fn apply_pending(session: &Session, profiles: &Profiles, ks: &str) -> StoreResult<i32> {
    let applied_versions = versions(session, profiles, ks).await?;
    for (version, name, cql) in MIGRATIONS {
        if applied_versions.contains(version) {
            continue;
        }
        tracing::info!(version, name, "applying CQL migration");
        run(session, profiles, &format!("USE {ks}")).await?;
        for statement in statements(cql) {
            match run(session, profiles, &statement).await {
                Err(e) if already_added(&statement, &e) => tracing::info!(%statement, "column already there"),
                other => drop(other?),
            }
        }
        agree(session).await?;
        if *version == 8 {
            Box::pin(fill_listings(session, profiles, ks)).await?;
        }
        let now = crate::domain::unix_now() as i64 * 1000;
        let record = format!(
            "INSERT INTO {ks}.schema_migrations (version, name, applied_at) VALUES ({version}, '{name}', {now})"
        );
        run(session, profiles, &record).await?;
    }
    Ok(latest())
}

/// Version 8's indexes, filled from the campaigns and codes written before
/// them. Every insert is idempotent, so a migrator that dies before
/// recording the version simply fills them again.
async fn fill_listings(session: &Session, profiles: &Profiles, ks: &str) -> StoreResult<()> {
    use crate::domain::model::{Campaign, TrackingCode};
    for body in bodies(session, profiles, &format!("SELECT body FROM {ks}.campaigns")).await? {
        let c: Campaign = serde_json::from_str(&body).map_err(|e| err("campaigns")(e.to_string()))?;
        let cql = format!("INSERT INTO {ks}.campaigns_by_advertiser (advertiser_id, campaign_id) VALUES (?, ?)");
        run_with(session, profiles, &cql, (c.advertiser_id.0 as i64, c.id.0 as i64)).await?;
    }
    for body in bodies(session, profiles, &format!("SELECT body FROM {ks}.tracking_codes")).await? {
        let code: TrackingCode = serde_json::from_str(&body).map_err(|e| err("tracking_codes")(e.to_string()))?;
        let Some(affiliate) = code.affiliate_id else { continue };
        let (cmp, aff) = (code.campaign_id.0 as i64, affiliate.0 as i64);
        let by_campaign =
            format!("INSERT INTO {ks}.approvals_by_campaign (campaign_id, affiliate_id, code) VALUES (?, ?, ?)");
        run_with(session, profiles, &by_campaign, (cmp, aff, code.code.clone())).await?;
        let by_affiliate =
            format!("INSERT INTO {ks}.approvals_by_affiliate (affiliate_id, campaign_id, code) VALUES (?, ?, ?)");
        run_with(session, profiles, &by_affiliate, (aff, cmp, code.code)).await?;
    }
    Ok(())
}

/// Every `body` a scan returns, page by page.
async fn bodies(session: &Session, profiles: &Profiles, cql: &str) -> StoreResult<Vec<String>> {
    use futures::StreamExt;
    let mut statement = Statement::new(cql);
    statement.set_execution_profile_handle(Some(profiles.slow.clone()));
    let pager = session.query_iter(statement, &[]).await.map_err(|e| err(cql)(e.to_string()))?;
    let mut rows = pager.rows_stream::<(String,)>().map_err(|e| err(cql)(e.to_string()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await {
        out.push(row.map_err(|e| err(cql)(e.to_string()))?.0);
    }
    Ok(out)
}

async fn run_with(
    session: &Session,
    profiles: &Profiles,
    cql: &str,
    values: impl scylla::serialize::row::SerializeRow,
) -> StoreResult<QueryResult> {
    let mut statement = Statement::new(cql);
    statement.set_execution_profile_handle(Some(profiles.slow.clone()));
    session.query_unpaged(statement, values).await.map_err(|e| StoreError::Failed(format!("{e} (in: {cql})")))
}

/// `ALTER TABLE … ADD` of a column that exists: a migrator that died after
/// it and before recording the version is re-running it.
fn already_added(statement: &str, e: &StoreError) -> bool {
    statement.trim_start().to_ascii_uppercase().starts_with("ALTER TABLE")
        // Cassandra 5 and ScyllaDB say it differently.
        && (e.message().contains("already exists") || e.message().contains("conflicts with an existing column"))
}

async fn versions(session: &Session, profiles: &Profiles, ks: &str) -> StoreResult<Vec<i32>> {
    let result = run(session, profiles, &format!("SELECT version FROM {ks}.schema_migrations")).await?;
    let rows = result.into_rows_result().map_err(|e| err("schema_migrations")(e.to_string()))?;
    let versions = rows.rows::<(i32,)>().map_err(|e| err("schema_migrations")(e.to_string()))?;
    versions.map(|r| r.map(|(v,)| v).map_err(|e| err("schema_migrations")(e.to_string()))).collect()
}

/// Refuses to serve on a schema older (or newer) than this build's.
pub async fn check(session: &Session, profiles: &Profiles, ks: &str) -> StoreResult<()> {
    let found = versions(session, profiles, ks).await.ok().and_then(|v| v.into_iter().max());
    judge(ks, found)
}

/// Whether the newest applied migration `found` is this build's.
pub fn judge(ks: &str, found: Option<i32>) -> StoreResult<()> {
    match found {
        Some(v) if v == latest() => Ok(()),
        Some(v) if v > latest() => Err(StoreError::Failed(format!(
            "keyspace '{ks}' is at schema version {v}, newer than this build's {}: upgrade clickledger",
            latest()
        ))),
        other => Err(StoreError::Failed(format!(
            "keyspace '{ks}' is at schema version {}, this build needs {}: run `clickledger migrate` first",
            other.unwrap_or(0),
            latest()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_files_split_into_statements_without_comments() {
        let s = statements("-- a comment; with a semicolon\nCREATE TABLE a (x int PRIMARY KEY);\n\nCREATE TABLE b (y int PRIMARY KEY);\n");
        assert_eq!(s, vec!["CREATE TABLE a (x int PRIMARY KEY)", "CREATE TABLE b (y int PRIMARY KEY)"]);
        assert!(statements(MIGRATIONS[0].2).len() >= 12);
        assert_eq!(statements(MIGRATIONS[1].2).len(), 10, "the ledger's ten tables");
        assert!(statements(MIGRATIONS[2].2).iter().all(|s| !s.contains("--")));
    }
}
