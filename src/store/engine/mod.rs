//! The [`Store`] over a SQL engine: one connection ([`Session`], which
//! [`mysql`](crate::store::mysql) and [`postgres`](crate::store::postgres)
//! implement); for each round one transaction, and in it, under a savepoint,
//! one statement per entry of the erasure map (`DELETE` or a redacting
//! `UPDATE`) over all the round's users, then the erasure record. The
//! statements' text comes from [`sql`], in the session's [`Dialect`]; the
//! checks against the schema from [`schema`](crate::store::schema). What
//! differs between the engines (connecting, the schema's catalog, errors,
//! replicas' lag) is the session's; everything here is the same on both.

use std::time::Duration;

use anyhow::Context as _;
use log::{info, warn};

use crate::config::Database;
use crate::config::map::{Entry, Identifier};
use crate::store::schema::{Bound, Schema};
use crate::store::sql::{self, Dialect, IdKind};
use crate::store::{Chunked, Erased, Removal, Store, StoreError};

mod chunk;
pub mod verify;

/// One replica's lag, as it reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    /// The replica, as `describe` shows a URL: never its password.
    pub replica: String,
    /// Seconds behind the primary; `None` when replication is stopped or the
    /// lag is unknown, which counts as over any limit.
    pub seconds: Option<u64>,
}

/// What the store needs of one engine's connection. Errors come back sorted
/// by what happens next ([`StoreError`]), by the engine's own codes.
pub trait Session: Sized {
    /// The SQL the engine reads.
    const DIALECT: Dialect;
    /// The statement that starts a transaction.
    const BEGIN: &'static str = "START TRANSACTION";
    /// Connects to the primary with the session settings every statement
    /// relies on, reads its schema, and connects to the replicas.
    fn open(database: &Database) -> impl Future<Output = anyhow::Result<(Self, Schema)>>;
    /// Runs one statement; returns the rows it changed. `table` and `what`
    /// name it in a refusal or an error.
    fn execute(
        &mut self,
        statement: &str,
        table: &str,
        what: &str,
    ) -> impl Future<Output = Result<u64, StoreError>>;
    /// Runs a select; each row's values as the text protocol sends them
    /// (empty for NULL).
    fn select(
        &mut self,
        select: &str,
        table: &str,
        what: &str,
    ) -> impl Future<Output = Result<Vec<Vec<Vec<u8>>>, StoreError>>;
    /// Runs a select of one column; its values.
    fn select_column(
        &mut self,
        select: &str,
        table: &str,
        what: &str,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, StoreError>> {
        async move {
            let rows = self.select(select, table, what).await?;
            Ok(rows
                .into_iter()
                .map(|row| row.into_iter().next().unwrap_or_default())
                .collect())
        }
    }
    /// Runs the erasure record's statement, which lists `listed` users, and
    /// makes sure the database changed no value on the way; returns the rows
    /// written (users recorded already add none).
    fn record(
        &mut self,
        statement: &str,
        listed: u64,
        table: &str,
        what: &str,
    ) -> impl Future<Output = Result<u64, StoreError>>;
    /// Keeps the connection alive while the replicas are waited for.
    fn ping(&mut self) -> impl Future<Output = anyhow::Result<()>>;
    /// Whether there are replicas to wait for (`--replica-url`).
    fn has_replicas(&self) -> bool;
    /// Each replica's lag now, in the order of `--replica-url`.
    fn lags(&mut self) -> impl Future<Output = anyhow::Result<Vec<Lag>>>;
}

/// A connection ready to erase with the map.
pub struct SqlStore<S> {
    session: S,
    /// Each entry of the map, with how its id column holds ids.
    entries: Vec<(Entry, IdKind)>,
    /// The entries' tables, for the summary.
    tables: Vec<String>,
    /// The users table's entry.
    users_entry: usize,
    /// The erasure record, with how its user_id column holds ids, and
    /// whether a unique key holds that column alone (one row per user).
    record: Option<(Identifier, IdKind)>,
    record_unique: bool,
    /// How each entry's statements stay within a chunk.
    bounds: Vec<Bound>,
    /// `--chunk-rows`.
    chunk_rows: u64,
    /// The lag allowed, and the time spent waiting for the replicas.
    max_replica_lag: Duration,
    replica_wait: Duration,
    /// Chunks committed so far, for the log.
    chunks_committed: u64,
    /// Whether erasures are recorded: `verify --repair` writes nothing new
    /// to the record.
    writes_record: bool,
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Run,
    Verify,
}

/// The SAVEPOINT each erase runs under.
const SAVEPOINT: &str = "user_purge_erase";

/// How often a lagging replica is asked again.
const REPLICA_POLL: Duration = Duration::from_secs(1);

impl<S: Session> SqlStore<S> {
    /// Connects, then checks the map and the record against the schema, so
    /// that a wrong setting fails here, before any message is received.
    pub async fn connect(database: &Database) -> anyhow::Result<SqlStore<S>> {
        SqlStore::connect_for(database, Purpose::Run).await
    }

    /// Connects for `verify`: the record is read, never written; its
    /// privileges are not probed, so a read-only account can check.
    pub async fn connect_verify(database: &Database) -> anyhow::Result<SqlStore<S>> {
        SqlStore::connect_for(database, Purpose::Verify).await
    }

    async fn connect_for(database: &Database, purpose: Purpose) -> anyhow::Result<SqlStore<S>> {
        let (mut session, schema) = S::open(database).await?;
        let checked = schema
            .check(&database.map, database.record.as_ref())
            .map_err(|problem| anyhow::anyhow!("{problem}; nothing was received"))?;
        let record = database.record.clone().zip(checked.record);
        let record_unique = record.as_ref().is_some_and(|(table, _)| {
            let key = (table.as_str().to_owned(), sql::RECORD_COLUMNS[0].to_owned());
            schema.unique.contains(&key)
        });
        for (i, bound) in checked.bounds.iter().enumerate() {
            if *bound == Bound::Unbounded {
                warn!(
                    "entry {} ({}): {} has no single-column primary key to take chunks by; its \
                     statements are not bounded by --chunk-rows",
                    i + 1,
                    database.map.entries()[i].describe(),
                    database.map.entries()[i].table
                );
            }
        }
        if let (Some((table, _)), Purpose::Run) = (&record, purpose) {
            // Privileges and a read-only server are checked when a statement
            // starts, even one that writes no row.
            let what = format!("the erasure record {}", sql::ident(table));
            session
                .execute(&sql::record_probe(S::DIALECT, table), table.as_str(), &what)
                .await
                .map_err(StoreError::into_error)
                .with_context(|| format!("{what} is not writable; nothing was received"))?;
        }
        Ok(SqlStore {
            session,
            users_entry: database.map.users_entry(),
            tables: database
                .map
                .entries()
                .iter()
                .map(|entry| entry.table.as_str().to_owned())
                .collect(),
            entries: database
                .map
                .entries()
                .iter()
                .cloned()
                .zip(checked.entries)
                .collect(),
            record,
            record_unique,
            bounds: checked.bounds,
            chunk_rows: database.chunk_rows,
            max_replica_lag: database.max_replica_lag,
            replica_wait: Duration::ZERO,
            chunks_committed: 0,
            writes_record: purpose == Purpose::Run,
        })
    }

    /// Runs entry `i`'s statement; returns the rows it matched.
    async fn statement(&mut self, i: usize, statement: &str) -> Result<u64, StoreError> {
        let table = self.entries[i].0.table.as_str().to_owned();
        let what = format!("entry {} on {table}", i + 1);
        self.session.execute(statement, &table, &what).await
    }

    /// Runs entry `i`'s select of one column; returns its values' bytes.
    async fn select_column(
        &mut self,
        select: &str,
        table: &str,
        i: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let what = format!("entry {} on {table} (selecting a chunk)", i + 1);
        self.session.select_column(select, table, &what).await
    }

    /// Runs a statement that is not an entry's (a transaction's edges).
    async fn run(&mut self, statement: &str, table: &str, what: &str) -> Result<(), StoreError> {
        self.session.execute(statement, table, what).await.map(drop)
    }

    /// Ends the open transaction, if any; a failure ends the connection,
    /// which rolls it back too.
    async fn rollback_quietly(&mut self) {
        let _ = self.session.execute("ROLLBACK", "", "ROLLBACK").await;
    }

    /// Waits until every replica is within `--max-replica-lag`, polling each
    /// second and keeping the primary's connection alive; the wait is logged
    /// once, and counted.
    async fn wait_replicas(&mut self, deadline: tokio::time::Instant) -> Result<(), StoreError> {
        if !self.session.has_replicas() {
            return Ok(());
        }
        let started = tokio::time::Instant::now();
        let limit = self.max_replica_lag.as_secs();
        let mut logged = false;
        loop {
            let lags = self.session.lags().await.map_err(StoreError::Failed)?;
            let over = lags
                .into_iter()
                .find(|lag| lag.seconds.is_none_or(|seconds| seconds > limit));
            let Some(lag) = over else {
                let waited = started.elapsed();
                if logged {
                    info!("the replicas caught up after {} ms", waited.as_millis());
                }
                self.replica_wait += waited;
                return Ok(());
            };
            let behind = match lag.seconds {
                Some(seconds) => format!("{seconds} s behind"),
                None => "replication stopped".to_owned(),
            };
            if !logged {
                info!(
                    "waiting for replica {}: {behind} (limit {limit} s)",
                    lag.replica
                );
                logged = true;
            }
            if tokio::time::Instant::now() + REPLICA_POLL >= deadline {
                self.replica_wait += started.elapsed();
                return Err(StoreError::Lagging(format!(
                    "replica {} lagged until --max-duration: {behind} (limit {limit} s)",
                    lag.replica
                )));
            }
            tokio::time::sleep(REPLICA_POLL).await;
            self.session.ping().await.map_err(|error| {
                StoreError::Failed(error.context(
                    "the connection to the primary was lost while waiting for the replicas",
                ))
            })?;
        }
    }

    /// Records these users (unless this connection writes no record).
    /// Returns the rows written.
    async fn record(&mut self, removals: &[Removal]) -> Result<u64, StoreError> {
        let Some((table, kind)) = self.record.as_ref().filter(|_| self.writes_record) else {
            return Ok(0);
        };
        let Some((statement, listed)) = sql::record_statement(S::DIALECT, table, *kind, removals)
        else {
            return Ok(0);
        };
        let what = format!("the erasure record {table}");
        let table = table.as_str().to_owned();
        self.session.record(&statement, listed, &table, &what).await
    }

    /// Says which ids an entry's column cannot hold (a signed or smaller
    /// integer type): they are left out of its statements and match no row
    /// there, which is not an error, but must not pass unseen.
    fn log_beyond_range(&self, user_ids: &[u64]) {
        for (i, (entry, kind)) in self.entries.iter().enumerate() {
            let beyond: Vec<String> = user_ids
                .iter()
                .filter(|id| **id > kind.max())
                .map(u64::to_string)
                .collect();
            if !beyond.is_empty() {
                info!(
                    "entry {} ({}): user {} beyond what {}.{} can hold (at most {}): no row \
                     there can be theirs",
                    i + 1,
                    entry.describe(),
                    beyond.join(", "),
                    entry.table,
                    entry.column,
                    kind.max()
                );
            }
        }
    }

    /// The atomic entries' statements, then the record's (unless the record
    /// waits for the chunked entries), inside the savepoint.
    async fn erase_under_savepoint(
        &mut self,
        removals: &[Removal],
        deadline: tokio::time::Instant,
    ) -> Result<Erased, StoreError> {
        let user_ids: Vec<u64> = removals.iter().map(|r| r.user_id).collect();
        self.log_beyond_range(&user_ids);
        let mut rows = vec![0; self.entries.len()];
        for (i, count) in rows.iter_mut().enumerate() {
            if self.entries[i].0.chunked {
                continue;
            }
            let (erased, heavy) = self.erase_entry(i, &user_ids, deadline).await?;
            if !heavy.is_empty() {
                return Err(StoreError::Heavy(heavy));
            }
            *count = erased;
        }
        let recorded = match self.has_chunked() {
            true => 0,
            false => self.record(removals).await?,
        };
        Ok(Erased {
            rows,
            recorded,
            chunks: 0,
        })
    }
}

impl<S: Session> Store for SqlStore<S> {
    fn tables(&self) -> &[String] {
        &self.tables
    }

    fn users_entry(&self) -> usize {
        self.users_entry
    }

    fn chunked_tables(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(entry, _)| entry.chunked)
            .map(|(entry, _)| entry.table.as_str())
            .collect()
    }

    fn replica_wait(&self) -> Duration {
        self.replica_wait
    }

    async fn wait_for_replicas(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<(), StoreError> {
        self.wait_replicas(deadline).await
    }

    async fn begin(&mut self) -> Result<(), StoreError> {
        self.run(S::BEGIN, "", "START TRANSACTION").await
    }

    /// Runs every atomic statement of the map, then the record, under a
    /// savepoint. Returns the rows each map entry affected (rows in tables
    /// that reference them go through their foreign keys) and the rows
    /// recorded.
    async fn erase(
        &mut self,
        removals: &[Removal],
        deadline: tokio::time::Instant,
    ) -> Result<Erased, StoreError> {
        self.run(&format!("SAVEPOINT {SAVEPOINT}"), "", "SAVEPOINT")
            .await?;
        match self.erase_under_savepoint(removals, deadline).await {
            Err(
                error @ (StoreError::Refused(_)
                | StoreError::TimedOut(_)
                | StoreError::Heavy(_)
                | StoreError::OutOfTime),
            ) => {
                // On PostgreSQL the failed statement aborted the transaction:
                // only this rollback makes it usable again.
                self.run(
                    &format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"),
                    "",
                    "ROLLBACK TO SAVEPOINT",
                )
                .await?;
                Err(error)
            }
            erased => erased,
        }
    }

    async fn erase_chunked(
        &mut self,
        removals: &[Removal],
        deadline: tokio::time::Instant,
    ) -> Result<Chunked, StoreError> {
        self.chunked(removals, deadline).await
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        self.run("COMMIT", "", "COMMIT").await
    }

    async fn rollback(&mut self) {
        // A failed rollback leaves the transaction to the connection's end,
        // which rolls it back too.
        self.rollback_quietly().await;
    }
}
