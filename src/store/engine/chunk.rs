//! Erasing an entry's rows a chunk at a time: no `DELETE` or `UPDATE` touches
//! more than `--chunk-rows` rows, whatever one user holds.
//!
//! pt-archiver's way: select the next chunk's keys by the entry's index, then
//! erase by key. A `DELETE .. ORDER BY pk LIMIT` is unsafe for a STATEMENT
//! binary log, the multi-table form of a `via` entry allows no `LIMIT`, and
//! `IN (ids) ORDER BY pk LIMIT` may walk the whole primary key.
//!
//! A set of users whose rows fit in a chunk is one select and one statement.
//! A larger set is halved until it fits; a user alone with more rows than a
//! chunk is *heavy*: in a batch it is left to be erased alone, after the
//! others, so that it never holds them back; alone, its rows are walked in key
//! order along the index (user, key): the chunk's last key is read off the
//! index (`key > last ORDER BY key LIMIT 1 OFFSET chunk - 1`) and the chunk
//! erased as the range `key > last AND key <= that`, which the server reads as
//! one range instead of a list of keys to look up one by one.

use log::{debug, info, warn};
use tokio::time::Instant;

use super::{Session, SqlStore};
use crate::store::schema::Bound;
use crate::store::sql::{self, Keys, Walk};
use crate::store::{Chunked, Erased, Removal, StoreError};

/// How many deadlocked chunks one run tries again.
const CHUNK_DEADLOCK_RETRIES: u32 = 3;

impl<S: Session> SqlStore<S> {
    /// Erases entry `i`'s rows of these users in the open transaction, in
    /// statements of at most a chunk each. With more than one user, the heavy
    /// users are not erased but returned, for the caller to erase alone.
    pub(super) async fn erase_entry(
        &mut self,
        i: usize,
        user_ids: &[u64],
        deadline: Instant,
    ) -> Result<(u64, Vec<u64>), StoreError> {
        let chunk = self.chunk_rows;
        let mut rows = 0;
        match self.bounds[i].clone() {
            Bound::Unbounded => {
                let (entry, kind) = &self.entries[i];
                if let Some(statement) = sql::entry_statement(S::DIALECT, entry, *kind, user_ids) {
                    rows += self.statement(i, &statement).await?;
                }
                Ok((rows, Vec::new()))
            }
            Bound::PerUser => {
                for group in user_ids.chunks(chunk as usize) {
                    let (entry, kind) = &self.entries[i];
                    if let Some(statement) = sql::entry_statement(S::DIALECT, entry, *kind, group) {
                        rows += self.statement(i, &statement).await?;
                    }
                }
                Ok((rows, Vec::new()))
            }
            Bound::Key(..) => {
                let mut heavy = Vec::new();
                // The last set is tried first: ascending ids, one lock order.
                let mut pending = vec![user_ids];
                while let Some(set) = pending.pop() {
                    let keys = self.keys(i, set, Walk::Any, chunk + 1).await?;
                    if keys.len() as u64 <= chunk {
                        rows += self.erase_keys(i, set, Keys::Listed(&keys)).await?;
                        continue;
                    }
                    match set {
                        [user] if user_ids.len() == 1 => {
                            let mut walked = (0, 0);
                            self.walk(i, *user, deadline, false, &mut walked).await?;
                            rows += walked.0;
                        }
                        [user] => heavy.push(*user),
                        _ => {
                            let (low, high) = set.split_at(set.len() / 2);
                            pending.push(high);
                            pending.push(low);
                        }
                    }
                }
                Ok((rows, heavy))
            }
        }
    }

    /// Erases the chunked entries' rows of these users, each chunk its own
    /// transaction, then records the users whose rows are all gone.
    pub(super) async fn chunked(
        &mut self,
        removals: &[Removal],
        deadline: Instant,
    ) -> Result<Chunked, StoreError> {
        let mut result = Chunked {
            erased: Erased {
                rows: vec![0; self.entries.len()],
                ..Erased::default()
            },
            ..Chunked::default()
        };
        let mut pending = vec![removals];
        // Heavy users, walked alone once every lighter set is done.
        let mut heavy: Vec<&[Removal]> = Vec::new();
        let mut deadlocks = 0;
        loop {
            let (set, alone) = match pending.pop() {
                Some(set) => (set, false),
                None => match heavy.pop() {
                    Some(set) => (set, true),
                    None => break,
                },
            };
            let outcome = self
                .chunk_set(set, alone, deadline, &mut result.erased)
                .await;
            let outcome = match outcome {
                Ok(()) => self.record_alone(set).await,
                Err(error) => Err(error),
            };
            let error = match outcome {
                Ok(recorded) => {
                    result.erased.recorded += recorded;
                    result.done.extend(set.iter().map(|r| r.user_id));
                    continue;
                }
                Err(error) => error,
            };
            self.rollback_quietly().await;
            match (error, set) {
                (StoreError::Heavy(_), [_]) => heavy.insert(0, set),
                (
                    StoreError::Heavy(_) | StoreError::Refused(_) | StoreError::TimedOut(_),
                    [_, _, ..],
                ) => {
                    let (low, high) = set.split_at(set.len() / 2);
                    pending.push(high);
                    pending.push(low);
                }
                (StoreError::Refused(refusal), [removal]) => {
                    warn!(
                        "user {} is only partly erased: a chunk of {} was refused: {}; its \
                         messages go back",
                        removal.user_id, refusal.table, refusal.reason
                    );
                    result.refused.push((removal.user_id, refusal));
                }
                (StoreError::TimedOut(refusal), [removal]) => {
                    warn!(
                        "user {}: a chunk of {} ran past --statement-timeout ({}); carried over",
                        removal.user_id, refusal.table, refusal.reason
                    );
                    result.carried.push(removal.user_id);
                }
                // Only the chunk was rolled back: the set goes on from there.
                (StoreError::Deadlock(error), _) if deadlocks < CHUNK_DEADLOCK_RETRIES => {
                    deadlocks += 1;
                    warn!("deadlock in a chunk, trying it again: {error:#}");
                    pending.push(set);
                }
                (error @ (StoreError::OutOfTime | StoreError::Lagging(_)), _) => {
                    if let StoreError::Lagging(line) = error {
                        warn!("{line}: the chunks stop here");
                    }
                    result.carried.extend(set.iter().map(|r| r.user_id));
                    for rest in pending.drain(..).chain(heavy.drain(..)) {
                        result.carried.extend(rest.iter().map(|r| r.user_id));
                    }
                }
                (error, _) => return Err(error),
            }
        }
        Ok(result)
    }

    /// One set's rows in every chunked entry, chunk by chunk.
    async fn chunk_set(
        &mut self,
        set: &[Removal],
        alone: bool,
        deadline: Instant,
        erased: &mut Erased,
    ) -> Result<(), StoreError> {
        let user_ids: Vec<u64> = set.iter().map(|r| r.user_id).collect();
        let chunk = self.chunk_rows;
        let chunked: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].0.chunked)
            .collect();
        for i in chunked {
            self.before_chunk(deadline).await?;
            self.run(S::BEGIN, "", "START TRANSACTION").await?;
            let keys = self.keys(i, &user_ids, Walk::Any, chunk + 1).await?;
            if keys.len() as u64 <= chunk {
                let rows = self.erase_keys(i, &user_ids, Keys::Listed(&keys)).await?;
                self.run("COMMIT", "", "COMMIT").await?;
                erased.rows[i] += rows;
                if rows > 0 {
                    erased.chunks += 1;
                    self.committed(i, rows);
                }
                continue;
            }
            self.run("ROLLBACK", "", "ROLLBACK").await?;
            let [user] = user_ids[..] else {
                return Err(StoreError::Heavy(Vec::new()));
            };
            // A heavy user waits until every lighter set is done.
            if !alone {
                return Err(StoreError::Heavy(vec![user]));
            }
            // What committed counts, even if the walk stops.
            let mut walked = (0, 0);
            let result = self.walk(i, user, deadline, true, &mut walked).await;
            erased.rows[i] += walked.0;
            erased.chunks += walked.1;
            result?;
        }
        Ok(())
    }

    /// Waits for the replicas, then makes sure the run's time is not up.
    async fn before_chunk(&mut self, deadline: Instant) -> Result<(), StoreError> {
        self.wait_replicas(deadline).await?;
        if Instant::now() >= deadline {
            return Err(StoreError::OutOfTime);
        }
        Ok(())
    }

    /// Counts a committed chunk, and says so.
    fn committed(&mut self, i: usize, rows: u64) {
        self.chunks_committed += 1;
        debug!(
            "committed chunk {} of {}: {rows} rows",
            self.chunks_committed, self.entries[i].0.table
        );
    }

    /// Walks one user's rows of entry `i` in key order, a chunk at a time:
    /// inside the open transaction, or (`commit`) each chunk in its own,
    /// after the replicas. Returns the rows and the chunks committed.
    async fn walk(
        &mut self,
        i: usize,
        user: u64,
        deadline: Instant,
        commit: bool,
        walked: &mut (u64, u64),
    ) -> Result<(), StoreError> {
        let chunk = self.chunk_rows;
        let mut after: Option<String> = None;
        info!(
            "user {user} has more than {chunk} rows in {}: erasing them a chunk at a time",
            self.entries[i].0.table
        );
        loop {
            if commit {
                self.before_chunk(deadline).await?;
                self.run(S::BEGIN, "", "START TRANSACTION").await?;
            } else if Instant::now() >= deadline {
                return Err(StoreError::OutOfTime);
            }
            // A full chunk is erased as the range up to its last key; the
            // rest, fewer rows than a chunk, by its keys.
            let through = self.chunk_end(i, user, after.as_deref()).await?;
            let erased = match &through {
                Some(through) => {
                    let range = Keys::Range {
                        after: after.as_deref(),
                        through,
                    };
                    self.erase_keys(i, &[user], range).await?
                }
                None => {
                    let keys = self
                        .keys(i, &[user], Walk::After(after.as_deref()), chunk)
                        .await?;
                    self.erase_keys(i, &[user], Keys::Listed(&keys)).await?
                }
            };
            if commit {
                self.run("COMMIT", "", "COMMIT").await?;
                walked.1 += 1;
                self.committed(i, erased);
            }
            walked.0 += erased;
            match through {
                Some(through) => after = Some(through),
                None => return Ok(()),
            }
        }
    }

    /// The key that ends one user's next chunk of entry `i` after `after`;
    /// none when fewer rows than a chunk are left.
    async fn chunk_end(
        &mut self,
        i: usize,
        user: u64,
        after: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let Bound::Key(key, _, index) = &self.bounds[i] else {
            unreachable!("a walk needs an entry with a key");
        };
        let (entry, kind) = &self.entries[i];
        let chunk = self.chunk_rows;
        let Some(select) = sql::chunk_end_select(
            S::DIALECT,
            entry,
            *kind,
            &[user],
            key,
            index.as_deref(),
            after,
            chunk,
        ) else {
            return Ok(None);
        };
        Ok(self.key_values(i, &select).await?.pop())
    }

    /// The keys of entry `i`'s rows of these users that `walk` selects, as
    /// literals.
    async fn keys(
        &mut self,
        i: usize,
        user_ids: &[u64],
        walk: Walk<'_>,
        limit: u64,
    ) -> Result<Vec<String>, StoreError> {
        let Bound::Key(key, _, index) = &self.bounds[i] else {
            unreachable!("keys are selected only for an entry with a key");
        };
        let (entry, kind) = &self.entries[i];
        let Some(select) = sql::key_select(
            S::DIALECT,
            entry,
            *kind,
            user_ids,
            key,
            index.as_deref(),
            walk,
            limit,
        ) else {
            return Ok(Vec::new());
        };
        self.key_values(i, &select).await
    }

    /// Runs a select of entry `i`'s keys; returns them as literals.
    async fn key_values(&mut self, i: usize, select: &str) -> Result<Vec<String>, StoreError> {
        let Bound::Key(_, key_kind, _) = &self.bounds[i] else {
            unreachable!("keys are selected only for an entry with a key");
        };
        let key_kind = key_kind.clone();
        let table = self.entries[i].0.table.as_str().to_owned();
        let values = self.select_column(select, &table, i).await?;
        values
            .iter()
            .map(|bytes| {
                sql::key_literal(S::DIALECT, &key_kind, bytes).ok_or_else(|| {
                    StoreError::Failed(anyhow::anyhow!(
                        "entry {} on {table}: the server sent a key that is not an integer",
                        i + 1
                    ))
                })
            })
            .collect()
    }

    /// Deletes or redacts entry `i`'s rows with these keys (if still theirs).
    async fn erase_keys(
        &mut self,
        i: usize,
        user_ids: &[u64],
        keys: Keys<'_>,
    ) -> Result<u64, StoreError> {
        if keys == Keys::Listed(&[]) {
            return Ok(0);
        }
        let Bound::Key(key, ..) = &self.bounds[i] else {
            unreachable!("keys are erased only for an entry with a key");
        };
        let (entry, kind) = &self.entries[i];
        let Some(statement) = sql::keyed_statement(S::DIALECT, entry, *kind, user_ids, key, keys)
        else {
            return Ok(0);
        };
        self.statement(i, &statement).await
    }

    /// Records these users in a transaction of their own, after their last
    /// chunk: the first erasure is the one recorded.
    async fn record_alone(&mut self, set: &[Removal]) -> Result<u64, StoreError> {
        if self.record.is_none() || !self.writes_record {
            return Ok(0);
        }
        self.run(S::BEGIN, "", "START TRANSACTION").await?;
        let recorded = self.record(set).await?;
        self.run("COMMIT", "", "COMMIT").await?;
        Ok(recorded)
    }
}
