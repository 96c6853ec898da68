//! Tries hard to break the promises: kills at every phase, services that die,
//! freeze or refuse, concurrent runs, TLS. After each fault, clean runs until
//! the subscription is drained, then the invariant:
//!
//! exactly the users named by valid USER_REMOVED events are gone (with their
//! orders), every other row is intact, every malformed message is still in the
//! subscription or in its dead-letter topic, and nothing else is left.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::private::{PrivateEmulator, PrivateMariaDb};
use common::{Run, Setup, TestEnv, event_type};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use user_purge::event::encode;

/// A small, seeded pseudo-random generator (xorshift64*): varied timing and
/// data, reproducible from the seed the test prints.
struct Rng(u64);

impl Rng {
    fn from_time() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        println!("seed {seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// What was published, to check the invariant against.
struct Backlog {
    users: u64,
    removed: BTreeSet<u64>,
    malformed: Vec<Vec<u8>>,
}

/// Publishes `removals` distinct removals of users in 1..=users (plus
/// duplicates), other valid events for users that must stay, and malformed
/// messages of every kind, in random order.
async fn publish_backlog(env: &TestEnv, rng: &mut Rng, users: u64, removals: usize) -> Backlog {
    let mut ids: Vec<u64> = (1..=users).collect();
    rng.shuffle(&mut ids);
    let removed: BTreeSet<u64> = ids[..removals].iter().copied().collect();
    let mut payloads: Vec<Vec<u8>> = removed
        .iter()
        .map(|&id| encode(event_type::REMOVED, id))
        .collect();
    for &id in ids.iter().take(removals / 20) {
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
    env.publish(payloads).await;
    Backlog {
        users,
        removed,
        malformed,
    }
}

/// Runs the job until the table is as the backlog says and a run finds
/// nothing valid left, waiting out the leases of killed runs.
async fn recover(env: &TestEnv, backlog: &Backlog, quiet: Duration) -> usize {
    let started = Instant::now();
    let mut runs = 0;
    loop {
        let run = env.run(&[]).await;
        run.assert_code(0);
        runs += 1;
        if run.count("acked") == 0 && started.elapsed() >= quiet && remaining_ok(env, backlog).await
        {
            return runs;
        }
        assert!(
            started.elapsed() < quiet + Duration::from_secs(120),
            "no recovery after {runs} runs"
        );
        if run.count("acked") == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn remaining_ok(env: &TestEnv, backlog: &Backlog) -> bool {
    env.users().await.len() as u64 == backlog.users - backlog.removed.len() as u64
}

/// The invariant, counted.
async fn assert_invariant(env: &TestEnv, backlog: &Backlog) {
    let expected: Vec<u64> = (1..=backlog.users)
        .filter(|id| !backlog.removed.contains(id))
        .collect();
    assert_eq!(
        env.users().await,
        expected,
        "the users left are not exactly the ones not removed"
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
    let mut malformed = backlog.malformed.clone();
    left.sort();
    malformed.sort();
    assert_eq!(
        left.len(),
        malformed.len(),
        "messages left over are not exactly the malformed ones"
    );
    assert_eq!(left, malformed);
}

/// Where in the pass a kill lands.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// A random moment from start-up through receiving.
    Early,
    /// After receiving, before the delete.
    AfterReceive,
    /// While the delete waits on a lock.
    DuringDelete,
    /// After the commit, before the acknowledgements.
    AfterCommit,
    /// After the first acknowledgement request, before the others.
    BetweenAckChunks,
}

/// Reads the job's log until a line contains `marker`; false if it ended first.
async fn wait_for_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    marker: &str,
) -> bool {
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains(marker) {
            return true;
        }
    }
    false
}

/// Starts a job and SIGKILLs it in the given phase. Returns whether the kill
/// landed in the phase (the job may have found nothing to do), and how long it lived.
///
/// For the phases around the acknowledgements the emulator is frozen on the
/// marker, so that the kill lands before the remaining requests are answered.
async fn kill_in(
    env: &TestEnv,
    emulator: &PrivateEmulator,
    phase: Phase,
    rng: &mut Rng,
) -> (bool, Duration) {
    let max = match phase {
        Phase::BetweenAckChunks => "2500",
        _ => "300",
    };
    let lock = match phase {
        Phase::DuringDelete => Some(env.lock_rows(None).await),
        _ => None,
    };
    let mut child = env
        .command(&["--max-messages", max], &[("RUST_LOG", "debug")])
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let landed = match phase {
        Phase::Early => {
            tokio::time::sleep(Duration::from_millis(rng.below(50))).await;
            true
        }
        Phase::AfterReceive => wait_for_line(&mut lines, "] received ").await,
        Phase::DuringDelete => {
            tokio::select! {
                _ = env.wait_for_delete() => true,
                _ = wait_for_line(&mut lines, "] received 0 messages") => false,
            }
        }
        Phase::AfterCommit => wait_for_line(&mut lines, "and committed in").await,
        Phase::BetweenAckChunks => wait_for_line(&mut lines, "Acknowledge: a request for").await,
    };
    let freeze = landed && matches!(phase, Phase::AfterCommit | Phase::BetweenAckChunks);
    if freeze {
        emulator.freeze();
    }
    if landed && rng.below(2) == 0 {
        tokio::time::sleep(Duration::from_micros(rng.below(2_000))).await;
    }
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    if freeze {
        emulator.thaw();
    }
    drop(lock);
    let killed = status.code().is_none();
    (landed && killed, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_kills_at_every_phase_lose_nothing() {
    let mut rng = Rng::from_time();
    let emulator = PrivateEmulator::start();
    let env = Setup::new(60_000)
        .emulator(emulator.host.clone())
        .create()
        .await;
    let backlog = publish_backlog(&env, &mut rng, 60_000, 40_000).await;

    let phases = [
        Phase::Early,
        Phase::AfterReceive,
        Phase::DuringDelete,
        Phase::AfterCommit,
        Phase::BetweenAckChunks,
    ];
    let mut kills = [0usize; 5];
    let mut longest = Duration::ZERO;
    for i in 0..65 {
        let (landed, lived) = kill_in(&env, &emulator, phases[i % 5], &mut rng).await;
        kills[i % 5] += usize::from(landed);
        longest = longest.max(lived);
    }
    println!("kills landed per phase {phases:?}: {kills:?}");
    assert!(
        kills.iter().sum::<usize>() >= 50,
        "only {kills:?} kills landed"
    );
    assert!(
        kills.iter().all(|&n| n >= 5),
        "a phase was hardly hit: {kills:?}"
    );

    // A killed run's messages come back when its lease ends: the
    // subscription's 10 s, or 60 s if it lived to renew them (after 4 s).
    let quiet = if longest >= Duration::from_secs(4) {
        Duration::from_secs(62)
    } else {
        Duration::from_secs(12)
    };
    let runs = recover(&env, &backlog, quiet).await;
    println!("recovered in {runs} runs");
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_dying_during_the_delete_is_exit_4_and_loses_nothing() {
    let mut db = PrivateMariaDb::start(&[]);
    let env = Setup::new(200)
        .mysql_root(db.url("root", "", "mysql"))
        .create()
        .await;
    let mut rng = Rng::from_time();
    let backlog = publish_backlog(&env, &mut rng, 200, 100).await;
    let lock = env.lock_rows(None).await;

    let child = env.command(&[], &[]).spawn().unwrap();
    env.wait_for_delete().await;
    db.kill();
    let run = env.finish(child).await;
    run.assert_code(4);
    assert_eq!(run.count("acked"), 0);
    assert_eq!(run.count("nacked"), run.count("received"));
    drop(lock);

    db.restart();
    recover(&env, &backlog, Duration::ZERO).await;
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_database_is_exit_4_and_loses_nothing() {
    let db = PrivateMariaDb::start(&["--read-only".to_string()]);
    let env = Setup::new(50)
        .mysql_root(db.url("root", "", "mysql"))
        .create()
        .await;
    let mut rng = Rng::from_time();
    let backlog = publish_backlog(&env, &mut rng, 50, 20).await;

    let run = env.run(&[]).await;
    run.assert_code(4);
    assert!(run.stderr.contains("read-only"), "{}", run.stderr);
    assert_eq!(run.count("acked"), 0);
    assert_eq!(env.users().await.len(), 50);

    env.sql("SET GLOBAL read_only = OFF").await;
    recover(&env, &backlog, Duration::ZERO).await;
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_by_the_database_are_exit_4_and_lose_nothing() {
    let env = TestEnv::new(100).await;
    let mut rng = Rng::from_time();
    let backlog = publish_backlog(&env, &mut rng, 100, 40).await;

    // A wrong password: refused at connect, before any message is touched.
    let wrong = env.database_url_as(&env.user, "not-the-password");
    let denied = env.run(&["--database-url", &wrong]).await;
    denied.assert_code(4);
    assert_eq!(denied.count("received"), 0);
    assert!(denied.stderr.contains("Access denied"), "{}", denied.stderr);

    // A user without DELETE: refused at the delete, everything handed back.
    let url = env.create_user("r", "reader-pw", "SELECT", "*").await;
    let no_delete = env.run(&["--database-url", &url]).await;
    no_delete.assert_code(4);
    assert!(
        no_delete.stderr.contains("DELETE command denied"),
        "{}",
        no_delete.stderr
    );
    assert_eq!(no_delete.count("acked"), 0);
    assert_eq!(no_delete.count("nacked"), no_delete.count("received"));

    // A lock held by another transaction past --lock-wait-timeout.
    let lock = env.lock_rows(None).await;
    let timed_out = env.run(&["--lock-wait-timeout", "1"]).await;
    timed_out.assert_code(4);
    assert!(
        timed_out.stderr.contains("Lock wait timeout"),
        "{}",
        timed_out.stderr
    );
    assert_eq!(timed_out.count("acked"), 0);
    drop(lock);

    // The least privilege the job needs: SELECT and DELETE on the table.
    let url = env
        .create_user("p", "purger-pw", "SELECT, DELETE", "users")
        .await;
    let runs = env.run(&["--database-url", &url]).await;
    runs.assert_code(0);
    recover(&env, &backlog, Duration::ZERO).await;
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pubsub_freezing_after_the_commit_is_exit_5_and_the_deletes_repeat_harmlessly() {
    let emulator = PrivateEmulator::start();
    let env = Setup::new(100)
        .emulator(emulator.host.clone())
        .create()
        .await;
    let mut rng = Rng::from_time();
    let backlog = publish_backlog(&env, &mut rng, 100, 40).await;
    let lock = env.lock_rows(None).await;

    let child = env.command(&[], &[]).spawn().unwrap();
    env.wait_for_delete().await;
    emulator.freeze();
    drop(lock); // the delete commits now; the acknowledgements find no one.
    let run = env.finish(child).await;
    run.assert_code(5);
    assert_eq!(run.count("deleted_rows"), 40);
    assert_eq!(run.count("acked"), 0);
    assert!(
        run.stderr.contains("the delete committed"),
        "{}",
        run.stderr
    );
    emulator.thaw();

    // Unless the thawed emulator still processed the abandoned requests, the
    // messages come back after their deadline, and their deletes find nothing.
    let again = Instant::now();
    let mut repeated = 0;
    while again.elapsed() < Duration::from_secs(15) {
        let run = env.run(&[]).await;
        run.assert_code(0);
        assert_eq!(run.count("deleted_rows"), 0, "a repeated delete found rows");
        repeated += run.count("removed_ids");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("{repeated} removals came back and were repeated harmlessly");
    recover(&env, &backlog, Duration::from_secs(12)).await;
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_in_each_phase_exits_within_10_s_with_its_code() {
    let emulator = PrivateEmulator::start();
    let env = Setup::new(30_000)
        .emulator(emulator.host.clone())
        .create()
        .await;
    let mut rng = Rng::from_time();
    let backlog = publish_backlog(&env, &mut rng, 30_000, 20_000).await;

    // While receiving: everything received is handed back.
    let child = env
        .command(&["--max-messages", "30000"], &[])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let run = terminate(&env, child).await;
    run.assert_code(143);
    assert_eq!(run.count("acked"), 0);
    assert_eq!(run.count("deleted_rows"), 0);
    assert_eq!(run.count("nacked"), run.count("received"));

    // During the delete: rolled back, everything handed back.
    let lock = env.lock_rows(None).await;
    let child = env
        .command(&["--max-messages", "500"], &[])
        .spawn()
        .unwrap();
    env.wait_for_delete().await;
    let run = terminate(&env, child).await;
    drop(lock);
    run.assert_code(143);
    assert_eq!((run.count("acked"), run.count("deleted_rows")), (0, 0));
    assert_eq!(run.count("nacked"), run.count("received"));
    assert_eq!(env.users().await.len(), 30_000);

    // During the acknowledgements, with Pub/Sub frozen: the job keeps trying
    // for its 5 s budget, then reports the failed acknowledgements.
    let lock = env.lock_rows(None).await;
    let child = env
        .command(&["--max-messages", "500"], &[])
        .spawn()
        .unwrap();
    env.wait_for_delete().await;
    emulator.freeze();
    drop(lock);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let run = terminate(&env, child).await;
    emulator.thaw();
    run.assert_code(5);
    assert!(run.count("deleted_rows") > 0);
    assert_eq!(run.count("acked"), 0);

    recover(&env, &backlog, Duration::from_secs(12)).await;
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

/// Sends SIGTERM and waits; the job must be gone within 10 s.
async fn terminate(env: &TestEnv, child: tokio::process::Child) -> Run {
    let pid = child.id().unwrap();
    common::private::signal(pid, libc::SIGTERM);
    let sent = Instant::now();
    let run = tokio::time::timeout(Duration::from_secs(10), env.finish(child))
        .await
        .expect("the job did not exit within 10 s of SIGTERM");
    println!(
        "exited {:?} after SIGTERM with {:?}",
        sent.elapsed(),
        run.code
    );
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn four_runs_at_once_share_forty_thousand_removals() {
    let env = TestEnv::new(50_000).await;
    let mut rng = Rng::from_time();
    let backlog = publish_backlog(&env, &mut rng, 50_000, 40_000).await;

    let children: Vec<_> = (0..4)
        .map(|_| env.command(&[], &[]).spawn().unwrap())
        .collect();
    let mut received = 0;
    for child in children {
        let run = env.finish(child).await;
        run.assert_code(0);
        received += run.count("received");
    }
    assert!(
        received >= 40_000,
        "the four runs took only {received} messages"
    );
    recover(&env, &backlog, Duration::ZERO).await;
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_overlapping_a_slow_delete_do_not_fail_because_of_it() {
    // Large enough that the DELETE uses the primary key: on a table so small
    // that it scans every row, a delete waits for every row lock held.
    let env = TestEnv::new(20_000).await;
    // The slow run takes the first 200 removals, among them user 1, which the
    // test holds locked.
    env.publish_removals(1..=200).await;
    let lock = env.lock_rows(Some(1)).await;
    let slow = env
        .command(&["--max-messages", "200", "--lock-wait-timeout", "60"], &[])
        .spawn()
        .unwrap();
    env.wait_for_delete().await;

    env.publish_removals(201..=600).await;
    for _ in 0..2 {
        let run = env.run(&["--max-messages", "200"]).await;
        run.assert_code(0);
        assert_eq!(run.count("deleted_rows"), 200);
    }
    drop(lock);
    let slow = env.finish(slow).await;
    slow.assert_code(0);
    assert_eq!(slow.count("deleted_rows"), 200);
    let backlog = Backlog {
        users: 20_000,
        removed: (1..=600).collect(),
        malformed: Vec::new(),
    };
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_messages_end_in_the_dead_letter_topic() {
    let env = Setup::new(100).dead_letter(5).create().await;
    let mut rng = Rng::from_time();
    let backlog = publish_backlog(&env, &mut rng, 100, 30).await;

    // Each run hands the malformed messages back; after five deliveries
    // Pub/Sub moves them to the dead-letter topic.
    let mut runs = 0;
    loop {
        let run = env.run(&[]).await;
        run.assert_code(0);
        runs += 1;
        if run.count("received") == 0 {
            break;
        }
        assert!(
            runs < 20,
            "the malformed messages never left the subscription"
        );
    }
    let expected: Vec<u64> = (1..=100)
        .filter(|id| !backlog.removed.contains(id))
        .collect();
    assert_eq!(env.users().await, expected);
    let mut dead = env.drain_dead_letters(Duration::from_secs(1)).await;
    let mut malformed = backlog.malformed.clone();
    dead.sort();
    malformed.sort();
    assert_eq!(
        dead, malformed,
        "the dead-letter topic must hold exactly the malformed messages"
    );
    assert!(env.drain(Duration::ZERO).await.is_empty());
    env.cleanup().await;
}
