//! The store seam: what the run needs of the database (begin, erase a set of
//! users under a savepoint, commit, roll back), with its errors sorted by what
//! happens next. The run and its unit tests' fakes depend on this module only.
//!
//! Behind it: [`sql`], the statements' text (pure); [`schema`], the database's
//! facts and the checks made against them at connect (pure); [`engine`], the
//! store over any SQL engine's [`Session`](engine::Session); [`mysql`]
//! and [`postgres`], the sessions on MySQL / MariaDB and on PostgreSQL, the
//! only modules that talk to a server; and [`url`], which picks one of the
//! two by a URL's scheme. This module names none of them, so that they can
//! all name it.

use std::time::Duration;

use tokio::time::Instant;

pub mod engine;
pub mod mysql;
pub mod postgres;
pub mod schema;
pub mod sql;
pub mod url;

/// The users' rows refused the erasure: the statement was rolled back to its
/// savepoint and the transaction is still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The table of the statement that was refused.
    pub table: String,
    /// The server's reason, without row contents.
    pub reason: String,
}

/// How a store operation failed, by what happens next.
#[derive(Debug)]
pub enum StoreError {
    /// Particular rows refused (SQLSTATE classes 22, 23 and 45: a foreign key,
    /// a trigger's `SIGNAL`, a data error). The savepoint was rolled back; the
    /// transaction goes on, and the users are isolated.
    Refused(Refusal),
    /// A statement ran past `--statement-timeout`. The savepoint was rolled
    /// back; the users are split as refused ones are, and a user alone is
    /// carried over to the next run.
    TimedOut(Refusal),
    /// These users have more rows in one entry than a chunk. The savepoint
    /// was rolled back; each is erased alone, after the others.
    Heavy(Vec<u64>),
    /// The run's deadline came at a chunk boundary. The savepoint was rolled
    /// back (or, outside a transaction, the chunks so far stay committed).
    OutOfTime,
    /// A replica still lagged past `--max-replica-lag` when the deadline
    /// came: the line names it and its lag. Nothing was started.
    Lagging(String),
    /// A deadlock rolled the whole transaction back. It is tried again.
    Deadlock(anyhow::Error),
    /// Anything else (connection lost, lock wait timeout, read-only, denied,
    /// a value the database would have changed): nothing is committed and
    /// every message is handed back.
    Failed(anyhow::Error),
}

impl StoreError {
    /// The error as one that ends what was being done.
    pub fn into_error(self) -> anyhow::Error {
        match self {
            StoreError::Failed(error) | StoreError::Deadlock(error) => error,
            StoreError::Refused(refusal) | StoreError::TimedOut(refusal) => {
                anyhow::anyhow!("{} refused: {}", refusal.table, refusal.reason)
            }
            StoreError::Lagging(line) => anyhow::anyhow!("{line}"),
            StoreError::Heavy(_) | StoreError::OutOfTime => {
                anyhow::anyhow!("the chunks stopped outside a savepoint")
            }
        }
    }
}

/// One user to erase, and the message that asked (for the erasure record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub user_id: u64,
    pub message_id: String,
}

/// What one [`Store::erase`] did, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Erased {
    /// Rows each entry of the map deleted or redacted, in the map's order:
    /// exactly one count per entry.
    pub rows: Vec<u64>,
    /// Rows written to the erasure record (users already recorded add none).
    pub recorded: u64,
    /// Committed chunks of the `chunked` entries.
    pub chunks: u64,
}

impl Erased {
    /// Adds another erasure's counts, entry by entry.
    pub fn add(&mut self, other: &Erased) {
        if self.rows.len() < other.rows.len() {
            self.rows.resize(other.rows.len(), 0);
        }
        for (sum, n) in self.rows.iter_mut().zip(&other.rows) {
            *sum += n;
        }
        self.recorded += other.recorded;
        self.chunks += other.chunks;
    }
}

/// What [`Store::erase_chunked`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Chunked {
    /// Rows per entry (zero for the atomic ones), chunks and records.
    pub erased: Erased,
    /// Users whose chunked rows are gone, and who are recorded.
    pub done: Vec<u64>,
    /// Users a chunk refused: their other rows are gone, but not these.
    pub refused: Vec<(u64, Refusal)>,
    /// Users left unfinished when the run's time ran out.
    pub carried: Vec<u64>,
}

/// Where the users are erased.
pub trait Store {
    /// The table of each entry of the map, in order: what [`Erased::rows`]
    /// counts, one for one.
    fn tables(&self) -> &[String];
    /// The entry of the users table, whose rows the summary's `deleted_rows`
    /// counts (`Map::users_entry` decides which).
    fn users_entry(&self) -> usize;
    /// Whether the map has `chunked` entries, for [`Store::erase_chunked`].
    fn has_chunked(&self) -> bool {
        !self.chunked_tables().is_empty()
    }
    /// The tables of the `chunked` entries, in the map's order.
    fn chunked_tables(&self) -> Vec<&str>;
    /// Waits until no replica lags past the limit, keeping the connection
    /// alive, or fails with [`StoreError::Lagging`] if `deadline` comes
    /// first. Outside a transaction.
    fn wait_for_replicas(
        &mut self,
        deadline: Instant,
    ) -> impl Future<Output = Result<(), StoreError>>;
    /// The time spent waiting for the replicas so far.
    fn replica_wait(&self) -> Duration;
    /// Starts a transaction.
    fn begin(&mut self) -> impl Future<Output = Result<(), StoreError>>;
    /// Erases these users inside the transaction, under a savepoint, with
    /// every atomic (not `chunked`) statement of the erasure map, no
    /// statement touching more than a chunk of rows, and records them unless
    /// the map has chunked entries. A single user's chunks stop at
    /// `deadline` ([`StoreError::OutOfTime`]).
    /// On [`StoreError::Refused`], `TimedOut`, `Heavy` and `OutOfTime` it has
    /// rolled back to the savepoint, so the users' erasure is undone in every
    /// table, and the transaction is still usable.
    fn erase(
        &mut self,
        removals: &[Removal],
        deadline: Instant,
    ) -> impl Future<Output = Result<Erased, StoreError>>;
    /// Erases the `chunked` entries' rows of these users (whose atomic part
    /// has committed), in committed transactions of at most a chunk each,
    /// waiting for the replicas before each; then records the users that are
    /// done. Outside any transaction. An error means the connection failed:
    /// what committed stays, and the users' messages go back.
    fn erase_chunked(
        &mut self,
        removals: &[Removal],
        deadline: Instant,
    ) -> impl Future<Output = Result<Chunked, StoreError>>;
    /// Commits the transaction.
    fn commit(&mut self) -> impl Future<Output = Result<(), StoreError>>;
    /// Rolls the transaction back; errors are the connection's end anyway.
    fn rollback(&mut self) -> impl Future<Output = ()>;
}
