//! A mixed backlog of events published in random order, and the invariant a
//! test checks after whatever it did to the job: exactly the users named by
//! valid removals are gone (with their orders) but for those the database
//! refuses, every other row is intact, and the messages left (in the
//! subscription, or its dead-letter topic) are exactly the malformed ones and
//! the refused users' removals.

use std::collections::BTreeSet;
use std::time::Duration;

use user_purge::event::{self, encode};

use super::wait::until_recovered;
use super::{Run, TestEnv, event_type};

/// A small, seeded pseudo-random generator (xorshift64*): varied timing and
/// data, reproducible with `TEST_SEED` set to the seed the test prints.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let seed = match std::env::var("TEST_SEED") {
            Ok(seed) => seed.parse().expect("TEST_SEED must be a number"),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        };
        println!("seed {seed} (TEST_SEED={seed} repeats this run)");
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// What was published, to check the invariant against.
pub struct Backlog {
    /// The table's users: 1..=users.
    pub users: u64,
    /// Users named by valid removals.
    pub removed: BTreeSet<u64>,
    /// Removed users whose rows the database refuses to delete.
    pub refused: BTreeSet<u64>,
    pub malformed: Vec<Vec<u8>>,
    /// Every payload published, malformed ones included.
    pub published: Vec<Vec<u8>>,
}

impl Backlog {
    /// A backlog of nothing but one removal of each of `ids`.
    pub fn of_removals(users: u64, ids: impl IntoIterator<Item = u64>) -> Backlog {
        let removed: BTreeSet<u64> = ids.into_iter().collect();
        Backlog {
            users,
            published: removed
                .iter()
                .map(|&id| encode(event_type::REMOVED, id))
                .collect(),
            removed,
            refused: BTreeSet::new(),
            malformed: Vec::new(),
        }
    }

    /// The users that must be left: never removed, or refused.
    pub fn expected_users(&self) -> Vec<u64> {
        (1..=self.users)
            .filter(|id| !self.removed.contains(id) || self.refused.contains(id))
            .collect()
    }

    /// The messages that must be left, sorted: the malformed ones and every
    /// removal of a refused user.
    pub fn expected_left(&self) -> Vec<Vec<u8>> {
        let mut left: Vec<Vec<u8>> = self.malformed.clone();
        left.extend(
            self.published
                .iter()
                .filter(|data| {
                    matches!(
                        event::classify(data),
                        Ok(event::Event::Removed(id)) if self.refused.contains(&id)
                    )
                })
                .cloned(),
        );
        left.sort();
        left
    }

    /// The messages that runs acknowledge, in the end: all but those that
    /// must be left.
    pub fn acknowledged(&self) -> usize {
        self.published.len() - self.expected_left().len()
    }
}

/// Publishes `removals` distinct removals of the test's users (plus
/// duplicates), other valid events for users that stay, and malformed
/// messages of every kind, in random order; `refused` of the removed users
/// (each with a duplicate) are picked to be refused (the test makes the
/// database refuse them).
pub async fn publish_backlog(
    env: &TestEnv,
    rng: &mut Rng,
    removals: usize,
    refused: usize,
) -> Backlog {
    let users = env.initial_users;
    let mut ids: Vec<u64> = (1..=users).collect();
    rng.shuffle(&mut ids);
    let removed: BTreeSet<u64> = ids[..removals].iter().copied().collect();
    // From the removed users with a duplicate, so that the duplicates of a
    // refused user are handed back too.
    let refused: BTreeSet<u64> = ids[..refused].iter().copied().collect();
    let mut payloads: Vec<Vec<u8>> = removed
        .iter()
        .map(|&id| encode(event_type::REMOVED, id))
        .collect();
    for &id in ids.iter().take((removals / 20).max(refused.len())) {
        payloads.push(encode(event_type::REMOVED, id)); // duplicates
    }
    for (i, &id) in ids[removals..].iter().take(removals / 25).enumerate() {
        let kind = [
            event_type::CREATED,
            event_type::CHANGED,
            event_type::ACCESS_CHANGED,
        ][i % 3];
        payloads.push(encode(kind, id));
    }
    let mut malformed = Vec::new();
    for (i, &id) in ids.iter().enumerate().take((removals / 100).max(4)) {
        malformed.push(match i % 4 {
            0 => encode(event_type::REMOVED, 0),
            1 => encode(event_type::UNSPECIFIED, id),
            2 => encode(99, id),
            _ => vec![0xff, 0xfe, i as u8],
        });
    }
    payloads.extend(malformed.iter().cloned());
    rng.shuffle(&mut payloads);
    env.publish(payloads.clone()).await;
    Backlog {
        users,
        removed,
        refused,
        malformed,
        published: payloads,
    }
}

/// The invariant, counted.
pub async fn assert_invariant(env: &TestEnv, backlog: &Backlog) {
    let expected = backlog.expected_users();
    assert_eq!(
        env.users().await,
        expected,
        "the users left are not exactly the ones not removed, or refused"
    );
    assert_eq!(
        env.users_with_orders().await,
        expected,
        "orders must go with their users, and only theirs"
    );
    let mut left = env.drain(Duration::from_secs(1)).await;
    if env.dead_letter_subscription.is_some() {
        left.extend(env.drain_dead_letters(Duration::ZERO).await);
    }
    left.sort();
    let expected_left = backlog.expected_left();
    assert_eq!(
        left.len(),
        expected_left.len(),
        "messages left over are not exactly the malformed ones and the refused users' removals"
    );
    assert_eq!(left, expected_left);
}

/// What the clean runs of [`recover`] did, together.
#[derive(Debug, Default)]
pub struct Recovery {
    pub runs: usize,
    pub acked: u64,
    pub deleted_rows: u64,
}

impl Recovery {
    /// Counts one run in.
    pub fn add(&mut self, run: &Run) {
        self.runs += 1;
        self.acked += run.count("acked");
        self.deleted_rows += run.count("deleted_rows");
    }
}

/// Runs the job until the table is as the backlog says and a run finds
/// nothing to acknowledge, waiting out the leases of killed runs (`quiet`).
/// Each run exits 0, or 6 when it met a refused user (and only then).
pub async fn recover(env: &TestEnv, backlog: &Backlog, quiet: Duration) -> Recovery {
    let runs = until_recovered(
        quiet,
        async || {
            let run = env.run(&[]).await;
            assert_refusals_match_the_code(&run);
            if backlog.refused.is_empty() {
                run.assert_code(0);
            }
            run
        },
        async || env.users().await == backlog.expected_users(),
    )
    .await;
    let mut done = Recovery::default();
    for run in &runs {
        done.add(run);
    }
    done
}

/// How long a killed run's messages stay leased: the subscription's 10 s, or
/// 60 s if it lived long enough (4 s) to renew them.
pub fn quiet_after(lived: Duration) -> Duration {
    if lived >= Duration::from_secs(4) {
        Duration::from_secs(62)
    } else {
        Duration::from_secs(12)
    }
}

/// A run exits 6 ("partially_completed") exactly when it refused a user, and
/// 0 ("completed") when it refused none.
pub fn assert_refusals_match_the_code(run: &Run) {
    let refused = run.count("refused");
    match run.code {
        Some(6) => {
            assert_eq!(run.outcome(), "partially_completed", "{}", run.stdout);
            assert!(refused > 0, "exit 6 without a refused user: {}", run.stdout);
        }
        Some(0) => {
            assert_eq!(run.outcome(), "completed", "{}", run.stdout);
            assert_eq!(refused, 0, "exit 0 with refused users: {}", run.stdout);
        }
        _ => panic!(
            "expected exit 0 or 6, got {:?}: {}\nstderr:\n{}",
            run.code, run.stdout, run.stderr
        ),
    }
}
