//! The store seam: what the run needs of the database (begin, erase a set of
//! users under a savepoint, commit, roll back), with its errors sorted by what
//! happens next. The run and its unit tests' fakes depend on this module only.
//!
//! Behind it: [`sql`], the statements' text (pure); [`schema`], the database's
//! facts and the checks made against them at connect (pure); and [`mysql`],
//! the store on MySQL / MariaDB, the only module that talks to a server.

pub mod mysql;
pub mod schema;
pub mod sql;

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
    /// A deadlock rolled the whole transaction back. It is tried again.
    Deadlock(anyhow::Error),
    /// Anything else (connection lost, lock wait timeout, read-only, denied,
    /// a value the database would have changed): nothing is committed and
    /// every message is handed back.
    Failed(anyhow::Error),
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
    }
}

/// Where the users are erased.
pub trait Store {
    /// The table of each entry of the map, in order: what [`Erased::rows`]
    /// counts, one for one.
    fn tables(&self) -> &[String];
    /// The entry of the users table, whose rows the summary's `deleted_rows`
    /// counts (`Map::users_entry` decides which).
    fn users_entry(&self) -> usize;
    /// Starts a transaction.
    fn begin(&mut self) -> impl Future<Output = Result<(), StoreError>>;
    /// Erases these users inside the transaction, under a savepoint, with
    /// every statement of the erasure map, and records them.
    /// On [`StoreError::Refused`] it has rolled back to the savepoint, so the
    /// users' erasure is undone in every table, and the transaction is still
    /// usable.
    fn erase(&mut self, removals: &[Removal]) -> impl Future<Output = Result<Erased, StoreError>>;
    /// Commits the transaction.
    fn commit(&mut self) -> impl Future<Output = Result<(), StoreError>>;
    /// Rolls the transaction back; errors are the connection's end anyway.
    fn rollback(&mut self) -> impl Future<Output = ()>;
}
