//! Secrets the nodes of one keyspace share. Two nodes started the same way,
//! each with its own data directory, must sign and verify click tokens with
//! the same key, or a click redirected by one is `bad_signature` on the
//! other: a real conversion dropped without a word. So on CQL the generated
//! secrets live in the keyspace (created once by a conditional insert; the
//! environment still overrides them), and the keyspace records a
//! fingerprint of what the nodes use: a node whose secrets differ refuses
//! to start, naming the setting, unless told to adopt its own on purpose.

use scylla::statement::prepared::PreparedStatement;

use super::statements::{prepare, Kind};
use super::{session::Profiles, ScyllaStore};
use crate::secrets::{Fingerprint, Secrets};
use crate::store::{StoreError, StoreResult};

const GENERATED: &str = "generated";
const FINGERPRINT: &str = "fingerprint";

pub struct ClusterStatements {
    select: PreparedStatement,
    insert_if_absent: PreparedStatement,
    replace: PreparedStatement,
}

impl ClusterStatements {
    pub async fn prepare(
        session: &scylla::client::session::Session,
        profiles: &Profiles,
        ks: &str,
    ) -> StoreResult<Self> {
        use Kind::*;
        let p = |kind, cql: &'static str| prepare(session, profiles, ks, kind, cql);
        Ok(Self {
            select: p(SerialRead, "SELECT body FROM {ks}.cluster_secrets WHERE name = ?").await?,
            insert_if_absent: p(
                Conditional,
                "INSERT INTO {ks}.cluster_secrets (name, body) VALUES (?, ?) IF NOT EXISTS",
            )
            .await?,
            replace: p(Plain, "INSERT INTO {ks}.cluster_secrets (name, body) VALUES (?, ?)").await?,
        })
    }
}

impl ScyllaStore {
    async fn cluster_row(&self, name: &str) -> StoreResult<Option<String>> {
        let rows = self.exec(&self.st.cluster.select, (name,)).await?.into_rows_result()?;
        let row: Option<super::rows::BodyRow> = rows.maybe_first_row()?;
        Ok(row.map(|r| r.body))
    }

    /// The row `name`, written as `body` if there was none; whichever won.
    async fn cluster_row_or_insert(&self, name: &str, body: String) -> StoreResult<String> {
        match self.conditional(&self.st.cluster.insert_if_absent, (name, body.clone())).await? {
            None => Ok(body),
            Some(existing) => Ok(existing),
        }
    }

    /// The keyspace's generated secrets, if a node has created them.
    pub async fn stored_secrets(&self) -> StoreResult<Option<Secrets>> {
        self.cluster_row(GENERATED).await?.map(|t| Secrets::from_toml(&t).map_err(StoreError::Failed)).transpose()
    }

    /// This node's secrets: the keyspace's generated ones (created now from
    /// `seed` if no node has; `seed` is this node's old secrets file, so an
    /// existing deployment keeps its keys) with the environment over them,
    /// then checked against the fingerprint the keyspace records. `adopt`
    /// records this node's fingerprint instead (a deliberate rotation).
    pub async fn cluster_secrets(&self, seed: Secrets, adopt: bool) -> Result<Secrets, String> {
        let fail = |e: StoreError| format!("keyspace '{}': {e}", self.keyspace);
        let generated = self.cluster_row_or_insert(GENERATED, seed.to_toml()).await.map_err(fail)?;
        let secrets = crate::secrets::with_env(Secrets::from_toml(&generated)?)?;
        let mine = secrets.fingerprint();
        let text = serde_json::to_string(&mine).expect("fingerprints serialize");
        if adopt {
            self.exec(&self.st.cluster.replace, (FINGERPRINT, text)).await.map_err(fail)?;
            tracing::warn!(keyspace = %self.keyspace, "adopted this node's secrets as the keyspace's (CLICKLEDGER_SECRETS_ADOPT)");
            return Ok(secrets);
        }
        let recorded = self.cluster_row_or_insert(FINGERPRINT, text).await.map_err(fail)?;
        let recorded: Fingerprint = serde_json::from_str(&recorded).map_err(|e| format!("cluster fingerprint: {e}"))?;
        let differ = mine.differences(&recorded);
        if differ.is_empty() {
            return Ok(secrets);
        }
        Err(format!(
            "this node's {} differ from what the other nodes of keyspace '{}' use: set the same value on every \
             node (or unset it on every node to use the keyspace's generated secrets). To change it on purpose \
             (a rotation), start one node with CLICKLEDGER_SECRETS_ADOPT=true, then the others with the new value.",
            differ.join(" and "),
            self.keyspace
        ))
    }
}
