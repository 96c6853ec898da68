//! Erasing one batch of users in one transaction, isolating the users whose
//! rows refuse, then the `chunked` entries in transactions of their own.
//!
//! The database is reached through the narrow [`Store`] seam: begin, erase a
//! set of users under a savepoint, commit, roll back. [`erase`] is the logic
//! over it: it tries every user in one statement; when the database refuses
//! because of particular rows (a `RESTRICT` foreign key, a trigger's
//! `SIGNAL`, a data error) or a statement runs past its timeout, it bisects
//! the set inside the same transaction, so that the clean users still go in
//! as few statements as possible, and only the refused ones are left out.
//! Users with more rows than a chunk are erased alone, after the others, so
//! that when the run's time is up only they are carried over. A deadlock
//! restarts the transaction; any other error ends it with nothing committed.

use std::collections::BTreeSet;
use std::time::Duration;

use log::{info, warn};
use tokio::time::Instant;

use crate::store::{Erased, Refusal, Removal, Store, StoreError};

/// The most statements one isolation may run (bisecting k refused users among
/// n costs about 2·k·log2(n/k)): past it, the users not yet tried are handed
/// back for the next run rather than holding the transaction open.
const ISOLATION_STATEMENTS: usize = 200;

/// How often a deadlocked transaction is tried again, as MySQL's manual advises.
const DEADLOCK_RETRIES: u32 = 3;

/// What one committed erasure did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// What the statements that went in did, per map entry and in the record.
    pub erased: Erased,
    /// Users whose rows refused, each with the reason.
    pub refused: Vec<(u64, Refusal)>,
    /// Users left for the next run: not tried because isolation reached
    /// [`ISOLATION_STATEMENTS`], or unfinished when the run's time was up.
    pub carried: Vec<u64>,
}

impl Erasure {
    /// Users not (wholly) erased: refused or carried over. Their messages go back.
    pub fn kept(&self) -> impl Iterator<Item = u64> + '_ {
        self.refused
            .iter()
            .map(|(id, _)| *id)
            .chain(self.carried.iter().copied())
    }
}

/// Why [`erase`] committed nothing it could report.
#[derive(Debug)]
pub enum Halt {
    /// A replica lagged past the limit until the deadline: the line says which.
    Lagging(String),
    /// The database failed.
    Failed(anyhow::Error),
}

/// Erases the users (distinct, ascending): the atomic entries in one
/// transaction, after the replicas caught up, then the chunked entries of
/// the users it erased. Users whose rows refuse are isolated and left out;
/// users unfinished at `deadline` are carried over. An error means nothing
/// of the atomic part was committed, or the chunks could not go on.
pub async fn erase<D: Store>(
    store: &mut D,
    removals: &[Removal],
    deadline: Instant,
) -> Result<Erasure, Halt> {
    let mut erasure = atomic(store, removals, deadline).await?;
    if !store.has_chunked() {
        return Ok(erasure);
    }
    let kept: BTreeSet<u64> = erasure.kept().collect();
    let erased: Vec<Removal> = removals
        .iter()
        .filter(|r| !kept.contains(&r.user_id))
        .cloned()
        .collect();
    if erased.is_empty() {
        return Ok(erasure);
    }
    info!(
        "erasing the chunked entries of {} users: {}",
        erased.len(),
        store.chunked_tables().join(", ")
    );
    let chunked = match store.erase_chunked(&erased, deadline).await {
        Ok(chunked) => chunked,
        Err(StoreError::Lagging(line)) => return Err(Halt::Lagging(line)),
        Err(error) => return Err(Halt::Failed(failure(error))),
    };
    erasure.erased.add(&chunked.erased);
    erasure.refused.extend(chunked.refused);
    for user in &chunked.carried {
        info!("user {user} carried over to the next run: its chunked rows are not all erased yet");
    }
    erasure.carried.extend(chunked.carried);
    Ok(erasure)
}

/// A store error that ends the erasure, as one error.
pub fn failure(error: StoreError) -> anyhow::Error {
    error.into_error()
}

/// The atomic part, tried again after a deadlock.
async fn atomic<D: Store>(
    store: &mut D,
    removals: &[Removal],
    deadline: Instant,
) -> Result<Erasure, Halt> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.wait_for_replicas(deadline).await {
            Ok(()) => {}
            Err(StoreError::Lagging(line)) => return Err(Halt::Lagging(line)),
            Err(error) => return Err(Halt::Failed(failure(error))),
        }
        let error = match transaction(store, removals, deadline).await {
            Ok(erasure) => return Ok(erasure),
            Err(error) => error,
        };
        store.rollback().await;
        match error {
            StoreError::Deadlock(error) if attempt <= DEADLOCK_RETRIES => {
                warn!(
                    "deadlock, trying the transaction again ({attempt} of {DEADLOCK_RETRIES}): {error:#}"
                );
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            StoreError::Deadlock(error) => {
                return Err(Halt::Failed(error.context(format!(
                    "still deadlocked after {DEADLOCK_RETRIES} retries"
                ))));
            }
            StoreError::Refused(refusal) => {
                // Only a commit can refuse outside isolation (a deferred check).
                return Err(Halt::Failed(anyhow::anyhow!(
                    "COMMIT refused by {}: {}",
                    refusal.table,
                    refusal.reason
                )));
            }
            error => return Err(Halt::Failed(failure(error))),
        }
    }
}

/// One try: begin, isolate, commit.
async fn transaction<D: Store>(
    store: &mut D,
    removals: &[Removal],
    deadline: Instant,
) -> Result<Erasure, StoreError> {
    store.begin().await?;
    let erasure = isolate(store, removals, deadline).await?;
    store.commit().await?;
    Ok(erasure)
}

/// Erases all the users at once, and bisects any set that is refused or too
/// slow; heavy users go alone, after the others.
async fn isolate<D: Store>(
    store: &mut D,
    removals: &[Removal],
    deadline: Instant,
) -> Result<Erasure, StoreError> {
    let mut erasure = Erasure::default();
    let mut statements = 0;
    let mut isolating = false;
    // Sets still to try; the last is tried first, so the ids go in ascending
    // order (one lock order for concurrent runs).
    let mut pending = vec![removals.to_vec()];
    // Heavy users, each erased alone once the others are in; descending, so
    // that `pop` takes the lowest id.
    let mut heavy: Vec<Removal> = Vec::new();
    loop {
        let set = match pending.pop() {
            Some(set) => set,
            None => match heavy.pop() {
                Some(user) => vec![user],
                None => break,
            },
        };
        if set.is_empty() {
            continue;
        }
        if Instant::now() >= deadline {
            for removal in &set {
                info!(
                    "user {} carried over to the next run: --max-duration was reached before its erasure",
                    removal.user_id
                );
            }
            erasure.carried.extend(set.iter().map(|r| r.user_id));
            continue;
        }
        if statements == ISOLATION_STATEMENTS {
            erasure.carried.extend(set.iter().map(|r| r.user_id));
            continue;
        }
        statements += 1;
        match store.erase(&set, deadline).await {
            Ok(erased) => erasure.erased.add(&erased),
            Err(StoreError::Refused(refusal)) => match &set[..] {
                [removal] => {
                    warn!(
                        "user {} cannot be erased: {} refused: {}; its messages go back",
                        removal.user_id, refusal.table, refusal.reason
                    );
                    erasure.refused.push((removal.user_id, refusal));
                }
                _ => {
                    isolating = true;
                    split(&mut pending, set);
                }
            },
            Err(StoreError::TimedOut(refusal)) => match &set[..] {
                [removal] => {
                    info!(
                        "user {} carried over to the next run: {}",
                        removal.user_id, refusal.reason
                    );
                    erasure.carried.push(removal.user_id);
                }
                _ => {
                    isolating = true;
                    split(&mut pending, set);
                }
            },
            Err(StoreError::Heavy(users)) => {
                let (alone, light): (Vec<Removal>, Vec<Removal>) =
                    set.into_iter().partition(|r| users.contains(&r.user_id));
                heavy.extend(alone);
                heavy.sort_by_key(|r| std::cmp::Reverse(r.user_id));
                pending.push(light);
            }
            Err(StoreError::OutOfTime) => {
                for removal in &set {
                    info!(
                        "user {} carried over to the next run: --max-duration was reached \
                         during its erasure, which was rolled back",
                        removal.user_id
                    );
                }
                erasure.carried.extend(set.iter().map(|r| r.user_id));
            }
            Err(other) => return Err(other),
        }
    }
    if isolating {
        let untried = statements == ISOLATION_STATEMENTS;
        info!(
            "isolated {} refused users in {statements} statements{}",
            erasure.refused.len(),
            match erasure.carried.len() {
                n if untried && n > 0 => {
                    format!("; {n} users not tried (limit {ISOLATION_STATEMENTS}) go back")
                }
                _ => String::new(),
            }
        );
    }
    Ok(erasure)
}

/// Splits a set in halves, the lower to be tried first.
fn split(pending: &mut Vec<Vec<Removal>>, mut set: Vec<Removal>) {
    let high = set.split_off(set.len() / 2);
    pending.push(high);
    pending.push(set);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A store whose users in `bad` refuse, and which records every call.
    #[derive(Default)]
    struct Fake {
        bad: BTreeSet<u64>,
        /// Users whose statements run past the statement timeout.
        slow: BTreeSet<u64>,
        erased: Vec<u64>,
        statements: usize,
        /// Fail this many transactions with a deadlock at their first statement.
        deadlocks: u32,
        /// Fail the statement with this number (from 1) as a lost connection.
        fail_at: Option<usize>,
        calls: Vec<&'static str>,
        open: bool,
        pending: Vec<u64>,
    }

    impl Store for Fake {
        fn tables(&self) -> &[String] {
            &[]
        }
        fn users_entry(&self) -> usize {
            1
        }
        fn chunked_tables(&self) -> Vec<&str> {
            Vec::new()
        }
        async fn wait_for_replicas(&mut self, _deadline: Instant) -> Result<(), StoreError> {
            Ok(())
        }
        fn replica_wait(&self) -> Duration {
            Duration::ZERO
        }
        async fn erase_chunked(
            &mut self,
            _removals: &[Removal],
            _deadline: Instant,
        ) -> Result<crate::store::Chunked, StoreError> {
            unreachable!("no chunked entries")
        }
        async fn begin(&mut self) -> Result<(), StoreError> {
            self.calls.push("begin");
            self.open = true;
            Ok(())
        }
        async fn erase(
            &mut self,
            removals: &[Removal],
            _deadline: Instant,
        ) -> Result<Erased, StoreError> {
            assert!(self.open, "erase outside a transaction");
            let ids: Vec<u64> = removals.iter().map(|r| r.user_id).collect();
            self.statements += 1;
            if self.fail_at == Some(self.statements) {
                return Err(StoreError::Failed(anyhow::anyhow!("connection lost")));
            }
            if self.deadlocks > 0 {
                self.deadlocks -= 1;
                return Err(StoreError::Deadlock(anyhow::anyhow!("deadlock")));
            }
            if ids.iter().any(|id| self.slow.contains(id)) {
                return Err(StoreError::TimedOut(Refusal {
                    table: "events".into(),
                    reason: "entry 1 on events ran past --statement-timeout (error 1969)".into(),
                }));
            }
            if let Some(bad) = ids.iter().find(|id| self.bad.contains(id)) {
                return Err(StoreError::Refused(Refusal {
                    table: "users".into(),
                    reason: format!("legal hold on {bad}"),
                }));
            }
            self.pending.extend_from_slice(&ids);
            // Two entries: one row in the first, and one in the users table.
            Ok(Erased {
                rows: vec![ids.len() as u64, ids.len() as u64],
                recorded: ids.len() as u64,
                chunks: 0,
            })
        }
        async fn commit(&mut self) -> Result<(), StoreError> {
            self.calls.push("commit");
            self.open = false;
            self.erased.append(&mut self.pending);
            Ok(())
        }
        async fn rollback(&mut self) {
            self.calls.push("rollback");
            self.open = false;
            self.pending.clear();
        }
    }

    fn store(bad: impl IntoIterator<Item = u64>) -> Fake {
        Fake {
            bad: bad.into_iter().collect(),
            ..Fake::default()
        }
    }

    fn refused(erasure: &Erasure) -> Vec<u64> {
        erasure.refused.iter().map(|(id, _)| *id).collect()
    }

    /// Erases with a deadline no test reaches.
    async fn erase_all(store: &mut Fake, removals: &[Removal]) -> anyhow::Result<Erasure> {
        let deadline = Instant::now() + Duration::from_secs(3600);
        erase(store, removals, deadline)
            .await
            .map_err(|halt| match halt {
                Halt::Failed(error) => error,
                Halt::Lagging(line) => anyhow::anyhow!("{line}"),
            })
    }

    fn removals(ids: impl IntoIterator<Item = u64>) -> Vec<Removal> {
        ids.into_iter()
            .map(|user_id| Removal {
                user_id,
                message_id: format!("m{user_id}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_clean_batch_is_one_statement_and_one_commit() {
        let mut fake = store([]);
        let ids: Vec<u64> = (1..=1000).collect();
        let erasure = erase_all(&mut fake, &removals(ids.clone())).await.unwrap();
        assert_eq!(erasure.erased.rows, [1000, 1000]);
        assert_eq!(erasure.erased.recorded, 1000);
        assert_eq!((fake.statements, fake.erased.len()), (1, 1000));
        assert_eq!(fake.calls, ["begin", "commit"]);
    }

    #[tokio::test]
    async fn one_refused_user_is_isolated_and_every_other_is_erased() {
        let mut fake = store([337]);
        let ids: Vec<u64> = (1..=1000).collect();
        let erasure = erase_all(&mut fake, &removals(ids.clone())).await.unwrap();
        assert_eq!(refused(&erasure), [337]);
        assert_eq!(erasure.refused[0].1.reason, "legal hold on 337");
        assert!(erasure.carried.is_empty());
        assert_eq!(erasure.erased.rows, [999, 999]);
        let expected: Vec<u64> = ids.iter().copied().filter(|&id| id != 337).collect();
        assert_eq!(fake.erased, expected, "ascending, each once");
        // Bisection: two statements per level, about log2(1000) levels.
        assert!(fake.statements <= 2 * 11 + 1, "{}", fake.statements);
        assert_eq!(fake.calls, ["begin", "commit"]);
    }

    #[tokio::test]
    async fn many_refused_users_are_all_found() {
        let bad = [1, 2, 50, 51, 99, 500, 999, 1000];
        let mut fake = store(bad);
        let ids: Vec<u64> = (1..=1000).collect();
        let erasure = erase_all(&mut fake, &removals(ids.clone())).await.unwrap();
        assert_eq!(refused(&erasure), bad);
        assert_eq!(erasure.erased.rows, [992, 992]);
        assert_eq!(fake.erased.len(), 992);
        assert!(fake.erased.iter().all(|id| !bad.contains(id)));
    }

    #[tokio::test]
    async fn when_every_user_refuses_nothing_is_erased_and_all_are_named() {
        let ids: Vec<u64> = (1..=20).collect();
        let mut fake = store(ids.clone());
        let erasure = erase_all(&mut fake, &removals(ids.clone())).await.unwrap();
        assert_eq!(refused(&erasure), ids);
        assert!(erasure.erased.rows.is_empty() && fake.erased.is_empty());
        // A full binary tree over 20 leaves: 39 statements.
        assert_eq!(fake.statements, 39);
    }

    #[tokio::test]
    async fn isolation_stops_at_its_limit_and_defers_the_rest() {
        let ids: Vec<u64> = (1..=1000).collect();
        let mut fake = store(ids.iter().copied().filter(|id| id % 3 == 0));
        let erasure = erase_all(&mut fake, &removals(ids.clone())).await.unwrap();
        assert_eq!(fake.statements, ISOLATION_STATEMENTS);
        assert!(!erasure.carried.is_empty());
        // Everything is accounted for exactly once.
        let mut all: Vec<u64> = fake.erased.clone();
        all.extend(erasure.kept());
        all.sort_unstable();
        assert_eq!(all, ids);
        // Nothing erased was refused, nothing refused was erased.
        assert!(refused(&erasure).iter().all(|id| id % 3 == 0));
        assert!(fake.erased.iter().all(|id| id % 3 != 0));
    }

    #[tokio::test]
    async fn a_statement_timeout_splits_the_batch_and_carries_over_only_the_slow_user() {
        let mut fake = Fake {
            slow: [5].into(),
            ..store([8])
        };
        let erasure = erase_all(&mut fake, &removals(1..=10)).await.unwrap();
        assert_eq!(erasure.carried, [5]);
        assert_eq!(refused(&erasure), [8]);
        let expected: Vec<u64> = (1..=10).filter(|id| ![5, 8].contains(id)).collect();
        assert_eq!(fake.erased, expected);
        assert_eq!(fake.calls, ["begin", "commit"]);
    }

    // Paused time: the back-off between tries passes at once.
    #[tokio::test(start_paused = true)]
    async fn a_deadlock_restarts_the_transaction() {
        let mut fake = Fake {
            deadlocks: 2,
            ..store([5])
        };
        let erasure = erase_all(&mut fake, &removals(1..=10)).await.unwrap();
        assert_eq!(refused(&erasure), [5]);
        assert_eq!(fake.erased.len(), 9);
        assert_eq!(
            fake.calls,
            ["begin", "rollback", "begin", "rollback", "begin", "commit"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadlock_that_persists_fails_with_nothing_committed() {
        let mut fake = Fake {
            deadlocks: DEADLOCK_RETRIES + 1,
            ..store([])
        };
        let error = erase_all(&mut fake, &removals([1, 2])).await.unwrap_err();
        assert!(format!("{error:#}").contains("deadlocked"), "{error:#}");
        assert!(fake.erased.is_empty());
        assert_eq!(fake.calls.iter().filter(|c| **c == "commit").count(), 0);
    }

    #[tokio::test]
    async fn any_other_error_rolls_back_even_the_clean_halves() {
        // The whole set is refused, the clean half [1, 2] goes in, then the
        // connection is lost: nothing may be committed.
        let mut fake = Fake {
            fail_at: Some(3),
            ..store([3])
        };
        let error = erase_all(&mut fake, &removals([1, 2, 3, 4]))
            .await
            .unwrap_err();
        assert_eq!(format!("{error:#}"), "connection lost");
        assert!(fake.erased.is_empty());
        assert_eq!(fake.calls, ["begin", "rollback"]);
    }
}
