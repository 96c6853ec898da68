//! The replicas whose lag the erasure waits for (`--replica-url`): their
//! connections, and the lag each reports.

use crate::config::Database;

/// One replica's lag, as it reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    /// The replica, as `describe` shows a URL: never its password.
    pub replica: String,
    /// Seconds behind the primary; `None` when replication is stopped or the
    /// lag is NULL, which counts as over any limit.
    pub seconds: Option<u64>,
}

/// The connections to the replicas; empty without `--replica-url`.
pub struct Replicas {}

impl Replicas {
    /// Connects to every replica of `database`.
    pub async fn connect(database: &Database) -> anyhow::Result<Replicas> {
        anyhow::ensure!(
            database.replicas.is_empty(),
            "replicas are not supported yet"
        );
        Ok(Replicas {})
    }

    pub fn is_empty(&self) -> bool {
        true
    }

    /// Each replica's lag now, in the order of `--replica-url`.
    pub async fn lags(&mut self) -> anyhow::Result<Vec<Lag>> {
        Ok(Vec::new())
    }
}
