//! Tries hard to break the promises: kills at every phase, services that die,
//! freeze or refuse, concurrent runs. After each fault, clean runs until
//! the subscription is drained, then the invariant:
//!
//! exactly the users named by valid USER_REMOVED events are gone (with their
//! orders), every other row is intact, every malformed message is still in the
//! subscription or in its dead-letter topic, and nothing else is left.
//!
//! The kills at every phase run on MariaDB and on PostgreSQL
//! ([`on_both_engines!`]).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::backlog::{
    Backlog, Recovery, Rng, assert_invariant, publish_backlog, quiet_after, recover,
};
use common::private::{PrivateEmulator, PrivateMariaDb};
use common::{Engine, Job, Run, Setup, TestEnv};
use user_purge::event::{self, Event};

on_both_engines!(sixty_kills_at_every_phase_lose_nothing);

/// A test's world as `setup` builds it, with a backlog of `removals`
/// published, and the generator that shuffled it.
async fn with_backlog(setup: Setup, removals: usize) -> (TestEnv, Backlog, Rng) {
    let env = setup.create().await;
    let mut rng = Rng::seeded();
    let backlog = publish_backlog(&env, &mut rng, removals, 0).await;
    (env, backlog, rng)
}

/// The same on a Pub/Sub emulator of the test's own, which it may freeze.
async fn on_private_emulator(
    engine: Engine,
    users: u64,
    removals: usize,
) -> (PrivateEmulator, TestEnv, Backlog, Rng) {
    let emulator = PrivateEmulator::start().await;
    let setup = Setup::new(users)
        .engine(engine)
        .emulator(emulator.host.clone());
    let (env, backlog, rng) = with_backlog(setup, removals).await;
    (emulator, env, backlog, rng)
}

/// Where in the pass a kill lands.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// While receiving: when it starts, or after one of the first Pulls.
    Receiving,
    /// After receiving, before the commit.
    AfterReceive,
    /// While the delete waits on a lock.
    DuringDelete,
    /// After the commit, before any acknowledgement succeeded.
    AfterCommit,
    /// After the first acknowledgement request, before the others.
    BetweenAckChunks,
}

impl Phase {
    /// A line the job logs only once it is past this phase: a kill landed in
    /// the phase only if the job's log does not have it.
    fn past(self) -> &'static str {
        match self {
            Phase::Receiving => "] received ",
            Phase::AfterReceive | Phase::DuringDelete => "and committed in",
            Phase::AfterCommit => "Acknowledge: a request for",
            Phase::BetweenAckChunks => "] acknowledged ",
        }
    }
}

/// Starts a job and SIGKILLs it in the given phase. Returns whether the kill
/// landed in the phase, as the job's log tells afterwards, and how long it lived.
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
    let mut job = env.spawn(&["--max-messages", max], &[("RUST_LOG", "debug")]);
    let started = Instant::now();
    let reached = match phase {
        Phase::Receiving => {
            // A run of 300 takes three Pulls of 100, one after the other.
            let mut reached = job.wait_for("receiving: up to").await.is_some();
            for _ in 0..rng.below(3) {
                reached = reached && job.wait_for("a Pull returned").await.is_some();
            }
            reached
        }
        Phase::AfterReceive => job
            .wait_for("] received ")
            .await
            .is_some_and(|line| !line.contains("] received 0 messages")),
        Phase::DuringDelete => {
            tokio::select! {
                _ = env.wait_for_delete() => true,
                _ = job.wait_for("] received 0 messages") => false,
            }
        }
        Phase::AfterCommit => job.wait_for("and committed in").await.is_some(),
        Phase::BetweenAckChunks => job.wait_for("Acknowledge: a request for").await.is_some(),
    };
    let freeze = reached && matches!(phase, Phase::AfterCommit | Phase::BetweenAckChunks);
    if freeze {
        emulator.freeze();
    }
    if reached && rng.below(2) == 0 {
        tokio::time::sleep(Duration::from_micros(rng.below(2_000))).await;
    }
    job.signal(libc::SIGKILL);
    let run = job.finish(env).await;
    if freeze {
        emulator.thaw();
    }
    drop(lock);
    let landed = reached && run.signal == Some(libc::SIGKILL) && !run.stderr.contains(phase.past());
    (landed, started.elapsed())
}

/// Every phase, in the order a run meets them.
const PHASES: [Phase; 5] = [
    Phase::Receiving,
    Phase::AfterReceive,
    Phase::DuringDelete,
    Phase::AfterCommit,
    Phase::BetweenAckChunks,
];

/// The kills of a test so far, per phase of [`PHASES`].
#[derive(Debug, Default)]
struct Kills {
    landed: [usize; 5],
    tries: [usize; 5],
    /// The longest a killed job lived.
    longest: Duration,
}

impl Kills {
    /// One try at killing a job in phase `p`.
    async fn kill(&mut self, env: &TestEnv, emulator: &PrivateEmulator, p: usize, rng: &mut Rng) {
        let (landed, lived) = kill_in(env, emulator, PHASES[p], rng).await;
        self.landed[p] += usize::from(landed);
        self.tries[p] += 1;
        self.longest = self.longest.max(lived);
    }
}

async fn sixty_kills_at_every_phase_lose_nothing(engine: Engine) {
    let (emulator, env, backlog, mut rng) = on_private_emulator(engine, 60_000, 40_000).await;

    let mut kills = Kills::default();
    for i in 0..65 {
        kills.kill(&env, &emulator, i % 5, &mut rng).await;
    }
    let first = kills.landed;
    // A phase short of 5 landed kills gets up to 10 more tries. Between the
    // acknowledgement requests is the narrow one: the emulator often answers
    // every request within a millisecond of the first, before it is frozen.
    for p in 0..5 {
        while kills.landed[p] < 5 && kills.tries[p] < 23 {
            kills.kill(&env, &emulator, p, &mut rng).await;
        }
    }
    println!("kills per phase {PHASES:?}: {kills:?}");
    assert!(
        first.iter().sum::<usize>() >= 50,
        "only {first:?} of the first 65 kills landed"
    );
    assert!(
        kills.landed.iter().all(|&n| n >= 5),
        "a phase was hardly hit: {kills:?}"
    );

    // A killed run's messages come back when its lease ends: the
    // subscription's 10 s, or 60 s if it lived to renew them (after 4 s).
    let recovery = recover(&env, &backlog, quiet_after(kills.longest)).await;
    println!("recovered in {} runs", recovery.runs);
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

/// Asserts that the run received `received` messages, deleted and
/// acknowledged nothing, and handed every one back.
fn assert_handed_back(run: &Run, received: usize) {
    assert_eq!(
        (
            run.count("received"),
            run.count("deleted_rows"),
            run.count("acked"),
            run.count("nacked")
        ),
        (received as u64, 0, 0, received as u64),
        "(received, deleted_rows, acked, nacked)\n{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_dying_during_the_delete_is_exit_4_and_loses_nothing() {
    let mut db = PrivateMariaDb::start(&[]).await;
    let setup = Setup::new(200).mysql_root(db.url("root", "", "mysql"));
    let (env, backlog, _) = with_backlog(setup, 100).await;
    let lock = env.lock_rows(None).await;

    let job = env.spawn(&[], &[]);
    env.wait_for_delete().await;
    db.kill();
    let run = job.finish(&env).await;
    run.assert_code(4);
    assert_handed_back(&run, backlog.published.len());
    drop(lock);

    db.restart().await;
    recover(&env, &backlog, Duration::ZERO).await;
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_database_is_exit_4_and_loses_nothing() {
    let db = PrivateMariaDb::start(&["--read-only".to_string()]).await;
    let setup = Setup::new(50).mysql_root(db.url("root", "", "mysql"));
    let (env, backlog, _) = with_backlog(setup, 20).await;

    let run = env.run(&[]).await;
    run.assert_code(4);
    run.assert_logged("read-only");
    assert_handed_back(&run, backlog.published.len());
    assert_eq!(env.users().await.len(), 50);

    env.sql("SET GLOBAL read_only = OFF").await;
    recover(&env, &backlog, Duration::ZERO).await;
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_by_the_database_are_exit_4_and_lose_nothing() {
    let (env, backlog, _) = with_backlog(Setup::new(100), 40).await;
    let all = backlog.published.len();

    // A wrong password: refused at connect, before any message is touched.
    let wrong = env.database_url_as(&env.user, "not-the-password");
    let denied = env.run(&["--database-url", &wrong]).await;
    denied.assert_code(4);
    assert_handed_back(&denied, 0);
    denied.assert_logged("Access denied");

    // A user without DELETE: refused at the delete, everything handed back.
    let url = env.create_user("r", "reader-pw", "SELECT", "*").await;
    let no_delete = env.run(&["--database-url", &url]).await;
    no_delete.assert_code(4);
    no_delete.assert_logged("DELETE command denied");
    assert_handed_back(&no_delete, all);

    // A lock held by another transaction past --lock-wait-timeout.
    let lock = env.lock_rows(None).await;
    let timed_out = env.run(&["--lock-wait-timeout", "1"]).await;
    timed_out.assert_code(4);
    timed_out.assert_logged("Lock wait timeout");
    assert_handed_back(&timed_out, all);
    drop(lock);

    // The least privilege the job needs: SELECT and DELETE on the table.
    let url = env
        .create_user("p", "purger-pw", "SELECT, DELETE", "users")
        .await;
    let least = env.run(&["--database-url", &url]).await;
    least.assert_code(0);
    assert_eq!(
        (least.count("deleted_rows"), least.count("acked")),
        (backlog.removed.len() as u64, backlog.acknowledged() as u64)
    );
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

/// Whether every payload of `part` is in `whole`, counting repeats.
fn is_within(part: &[Vec<u8>], whole: &[Vec<u8>]) -> bool {
    let mut left = std::collections::HashMap::new();
    for payload in whole {
        *left.entry(payload).or_insert(0) += 1;
    }
    part.iter().all(|payload| {
        left.get_mut(payload)
            .is_some_and(|n: &mut i32| std::mem::replace(n, *n - 1) > 0)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn pubsub_freezing_after_the_commit_is_exit_5_and_the_deletes_repeat_harmlessly() {
    let (emulator, env, backlog, _) = on_private_emulator(Engine::MariaDb, 100, 40).await;
    let lock = env.lock_rows(None).await;

    let job = env.spawn(&[], &[]);
    env.wait_for_delete().await;
    emulator.freeze();
    drop(lock); // the delete commits now; the acknowledgements find no one.
    let run = job.finish(&env).await;
    emulator.thaw();
    run.assert_code(5);
    assert_eq!(
        (
            run.count("received"),
            run.count("deleted_rows"),
            run.count("acked")
        ),
        (backlog.published.len() as u64, 40, 0)
    );
    run.assert_logged("the delete committed");

    // The thawed emulator may yet process some of the abandoned
    // acknowledgements. Every other message comes back when its lease ends:
    // the subscription's 10 s from the Pull, or 60 s from a renewal. Both
    // were before the thaw; once a lease as long, taken after it, has run
    // out, what is in the subscription is all that will come back.
    let lease = if run.stderr.contains("renewed the lease") {
        60
    } else {
        10
    };
    env.outlast_leases(Duration::from_secs(lease)).await;
    let back = env.peek(Duration::from_secs(1)).await;
    assert!(
        is_within(&back, &backlog.published),
        "a message came back that was not published, or more often"
    );
    let malformed = back.iter().filter(|p| event::classify(p).is_err()).count();
    assert_eq!(
        malformed,
        backlog.malformed.len(),
        "every malformed message must come back: none was acknowledged"
    );
    let removals: BTreeSet<u64> = back
        .iter()
        .filter_map(|p| match event::classify(p) {
            Ok(Event::Removed(id)) => Some(id),
            _ => None,
        })
        .collect();

    // The next run takes exactly what came back, repeats those removals
    // without finding a row, and acknowledges them.
    let again = env.run(&[]).await;
    again.assert_code(0);
    let valid = back.len() - malformed;
    assert_eq!(
        (
            again.count("received"),
            again.count("removed_ids"),
            again.count("deleted_rows"),
            again.count("acked"),
            again.count("nacked")
        ),
        (
            back.len() as u64,
            removals.len() as u64,
            0,
            valid as u64,
            malformed as u64
        ),
        "(received, removed_ids, deleted_rows, acked, nacked)"
    );
    println!(
        "{valid} of {} acknowledgements were lost to the freeze and repeated harmlessly",
        backlog.acknowledged()
    );
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

/// N in the job's log line `a Pull returned N messages`.
fn pulled(line: &str) -> usize {
    line.split("a Pull returned ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a Pull line: {line}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_in_each_phase_exits_within_10_s_with_its_code() {
    let (emulator, env, backlog, _) = on_private_emulator(Engine::MariaDb, 30_000, 20_000).await;
    let debug = [("RUST_LOG", "debug")];

    // While receiving, once a Pull has brought messages: everything received
    // is handed back.
    let mut job = env.spawn(&["--max-messages", "30000"], &debug);
    loop {
        let line = job.wait_for("a Pull returned").await;
        if pulled(&line.expect("the job ended before a Pull brought messages")) > 0 {
            break;
        }
    }
    let run = terminate(&env, job).await;
    run.assert_code(143);
    run.assert_logged("stopped by Terminate while receiving");
    let received = run.count("received") as usize;
    assert!(received > 0, "{}", run.stdout);
    assert_handed_back(&run, received);

    // During the delete: rolled back, everything handed back.
    let lock = env.lock_rows(None).await;
    let job = env.spawn(&["--max-messages", "500"], &debug);
    env.wait_for_delete().await;
    let run = terminate(&env, job).await;
    drop(lock);
    run.assert_code(143);
    run.assert_logged("stopped by Terminate before the delete committed");
    assert_handed_back(&run, 500);
    assert_eq!(env.users().await.len(), 30_000);

    // During the acknowledgements, with Pub/Sub frozen: the job keeps trying
    // for its 5 s budget, then reports the failed acknowledgements.
    let lock = env.lock_rows(None).await;
    let mut job = env.spawn(&["--max-messages", "500"], &debug);
    env.wait_for_delete().await;
    emulator.freeze();
    drop(lock);
    job.wait_for("and committed in")
        .await
        .expect("the delete did not commit");
    let run = terminate(&env, job).await;
    emulator.thaw();
    run.assert_code(5);
    run.assert_logged("Terminate received; finishing the acknowledgements of the committed delete");
    // None of these users was deleted before: every removal finds its row.
    assert!(run.count("deleted_rows") > 0);
    assert_eq!(run.count("deleted_rows"), run.count("removed_ids"));
    assert_eq!(run.count("acked"), 0);

    recover(&env, &backlog, Duration::from_secs(12)).await;
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

/// Sends SIGTERM; the job must be gone within 10 s.
async fn terminate(env: &TestEnv, job: Job) -> Run {
    job.signal(libc::SIGTERM);
    job.finish_within(env, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn four_runs_at_once_share_forty_thousand_removals() {
    let (env, backlog, _) = with_backlog(Setup::new(50_000), 40_000).await;

    let jobs: Vec<Job> = (0..4).map(|_| env.spawn(&[], &[])).collect();
    let mut together = Recovery::default();
    for job in jobs {
        // No run fails because of another.
        let run = job.finish(&env).await;
        run.assert_code(0);
        together.add(&run);
    }
    let rest = recover(&env, &backlog, Duration::ZERO).await;
    // Every removal erased once, and every valid message acknowledged once:
    // no two runs held the same message.
    assert_eq!(
        (
            together.deleted_rows + rest.deleted_rows,
            together.acked + rest.acked
        ),
        (backlog.removed.len() as u64, backlog.acknowledged() as u64),
        "(rows deleted, messages acknowledged) by the four runs {together:?} and after {rest:?}"
    );
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
    let slow = env.spawn(&["--max-messages", "200", "--lock-wait-timeout", "60"], &[]);
    env.wait_for_delete().await;

    env.publish_removals(201..=600).await;
    for _ in 0..2 {
        let run = env.run(&["--max-messages", "200"]).await;
        run.assert_code(0);
        assert_eq!(run.count("deleted_rows"), 200);
    }
    drop(lock);
    let slow = slow.finish(&env).await;
    slow.assert_code(0);
    assert_eq!(slow.count("deleted_rows"), 200);
    let backlog = Backlog::of_removals(20_000, 1..=600);
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_messages_end_in_the_dead_letter_topic() {
    let (env, backlog, _) = with_backlog(Setup::new(100).dead_letter(5), 30).await;

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
    // The subscription is empty, so what the invariant finds left over is
    // in the dead-letter topic.
    assert!(env.drain(Duration::ZERO).await.is_empty());
    assert_invariant(&env, &backlog).await;
    env.cleanup().await;
}
