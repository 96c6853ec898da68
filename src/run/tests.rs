//! Unit tests of the run against the in-memory fakes of [`super::fakes`].
//!
//! No test waits on the wall clock. A signal comes when the fakes log the call
//! that marks its phase ([`signal_at`]): the delete has started, an
//! acknowledgement is in flight. Delays that must let other tasks run, or
//! outlast [`LEASE_RENEWAL`], run on tokio's paused clock, which jumps ahead
//! whenever every task is waiting. So do the tests whose fakes wait for ever:
//! a pass that missed its signal fails at once instead of hanging.

use std::time::{Duration, Instant, UNIX_EPOCH};

use super::fakes::*;
use super::lease::LEASE_RENEWAL;
use super::receive::PULLS_IN_FLIGHT;
use super::*;
use crate::event::{encode, event_type};
use crate::pubsub::Received;

fn message(ack_id: &str, data: Vec<u8>) -> Received {
    Received {
        ack_id: ack_id.into(),
        message_id: format!("m-{ack_id}"),
        publish_time: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        data,
        ordered: false,
    }
}

fn removal(ack_id: &str, user_id: u64) -> Received {
    message(ack_id, encode(event_type::REMOVED, user_id))
}

/// `count` removals of users `1..=count`, with ack ids `a1`, `a2`, ...
fn removals(count: u64) -> Vec<Received> {
    (1..=count)
        .map(|id| removal(&format!("a{id}"), id))
        .collect()
}

/// One round of up to `max_messages`.
fn settings(max_messages: usize) -> PassSettings {
    PassSettings {
        max_messages,
        batch_size: max_messages,
        max_duration: Duration::from_secs(120),
        dry_run: false,
        pull_timeout: Duration::from_millis(100),
    }
}

/// A pass begun now.
async fn run(
    subscription: FakeSubscription,
    connect: impl Future<Output = anyhow::Result<FakeStore>>,
    settings: &PassSettings,
    shutdown: impl Future<Output = Signal>,
) -> Report {
    pass(subscription, connect, settings, Instant::now(), shutdown).await
}

fn no_signal() -> impl Future<Output = Signal> {
    std::future::pending()
}

/// A pass with a connected store, `max_messages`, and no signal.
async fn run_to_the_end(
    subscription: &FakeSubscription,
    store: FakeStore,
    max_messages: usize,
) -> Report {
    run(
        subscription.clone(),
        connected(store),
        &settings(max_messages),
        no_signal(),
    )
    .await
}

/// A connection to the store that never completes; logs `Connect` when polled.
async fn never_connected(log: Log) -> anyhow::Result<FakeStore> {
    log.push(Call::Connect);
    std::future::pending().await
}

/// The shutdown future of a test: `signal`, as soon as the fakes have logged a
/// call that `wanted` matches, so that it lands in that phase however slow the
/// machine. The pass taking it is logged as [`Call::Signalled`].
async fn signal_at(log: Log, signal: Signal, wanted: impl Fn(&Call) -> bool) -> Signal {
    log.reached(wanted).await;
    log.push(Call::Signalled(signal));
    signal
}

/// A pass of at most 1,000 messages that `signal` stops as soon as the fakes
/// have logged a call that `wanted` matches.
async fn run_until(
    subscription: &FakeSubscription,
    connect: impl Future<Output = anyhow::Result<FakeStore>>,
    signal: Signal,
    wanted: impl Fn(&Call) -> bool,
) -> Report {
    run(
        subscription.clone(),
        connect,
        &settings(1_000),
        signal_at(subscription.log.clone(), signal, wanted),
    )
    .await
}

fn assert_outcome(report: &Report, name: &str, code: u8) {
    assert_eq!(
        (report.outcome.name(), report.outcome.exit().code()),
        (name, code),
        "{:?}",
        report.outcome
    );
}

/// Asserts every field of the summary but the elapsed time, for a pass that
/// connected the fake store: it reports its one table, with the deleted rows.
fn assert_summary(report: &Report, summary: Summary) {
    let mut tables = crate::outcome::Tables::default();
    tables.add("users", summary.deleted_rows);
    assert_eq!(
        report.summary,
        Summary {
            tables,
            ..summary_of(report, summary)
        }
    );
}

/// As [`assert_summary`], for a pass that never connected the store (a dry
/// run, or one stopped before): it reports no table.
fn assert_unconnected_summary(report: &Report, summary: Summary) {
    assert_eq!(report.summary, summary_of(report, summary));
}

/// The expected summary, with the one field no test can know: the time.
fn summary_of(report: &Report, summary: Summary) -> Summary {
    Summary {
        elapsed_ms: report.summary.elapsed_ms,
        ..summary
    }
}

fn ids(ack_ids: &[&str]) -> Vec<String> {
    ack_ids.iter().map(|id| id.to_string()).collect()
}

/// Removals (one repeated, one of a user already gone), other events and
/// every kind of malformed message.
fn mixed() -> Vec<Received> {
    vec![
        removal("r9", 9),
        message("c1", encode(event_type::CHANGED, 1)),
        removal("r3", 3),
        removal("r9-again", 9),
        message("junk", b"not protobuf \xff\xff".to_vec()),
        removal("r0", 0),
        message("n2", encode(event_type::CREATED, 2)),
        message("u17", encode(17, 4)),
        removal("r-gone", 5_000),
        message("x5", encode(event_type::ACCESS_CHANGED, 5)),
        message("unspecified", encode(event_type::UNSPECIFIED, 6)),
    ]
}

/// What receiving [`mixed`] counts.
fn mixed_received() -> Summary {
    Summary {
        received: 11,
        removed_ids: 3,
        ignored: 3,
        malformed: 4,
        rounds: 1,
        ..Summary::default()
    }
}

/// What a pass over [`mixed`] that completes counts.
fn mixed_completed() -> Summary {
    Summary {
        // User 5000 was gone already.
        deleted_rows: 2,
        acked: 7,
        nacked: 4,
        ..mixed_received()
    }
}

/// After a pass over [`mixed`] whose delete started and did not commit:
/// no acknowledgement was even asked for, and every message was handed back.
fn assert_mixed_handed_back_after_the_delete(subscription: &FakeSubscription, report: &Report) {
    assert_eq!(subscription.log.deletes(), [vec![3, 9, 5_000]]);
    assert!(!subscription.log.committed());
    let calls = subscription.log.calls();
    assert!(
        !calls.iter().any(|c| matches!(c, Call::Acknowledge(_))),
        "{calls:?}"
    );
    assert_eq!(subscription.handed_back().len(), 11);
    subscription.assert_each_settled_once();
    assert_summary(
        report,
        Summary {
            nacked: 11,
            ..mixed_received()
        },
    );
}

/// What receiving `count` of [`removals`] counts.
fn removals_received(count: usize) -> Summary {
    Summary {
        received: count,
        removed_ids: count,
        rounds: 1,
        ..Summary::default()
    }
}

const MIXED_VALID: [&str; 7] = ["r9", "c1", "r3", "r9-again", "n2", "r-gone", "x5"];
const MIXED_MALFORMED: [&str; 4] = ["junk", "r0", "u17", "unspecified"];

#[tokio::test]
async fn a_mixed_batch_deletes_distinct_removals_and_settles_every_message_once() {
    let subscription = FakeSubscription::new(mixed());
    let report = run_to_the_end(&subscription, subscription.store(), 1_000).await;

    assert_outcome(&report, "completed", 0);
    assert_eq!(subscription.log.deletes(), [vec![3, 9, 5_000]]);
    let mut acked = subscription.acked();
    acked.sort();
    let mut valid = ids(&MIXED_VALID);
    valid.sort();
    assert_eq!(acked, valid);
    assert_eq!(subscription.deadlines(), [(ids(&MIXED_MALFORMED), 0)]);
    subscription.assert_each_settled_once();
    assert_summary(&report, mixed_completed());
}

#[tokio::test(start_paused = true)]
async fn acknowledgements_come_only_after_the_delete_commits() {
    let subscription = FakeSubscription::new(mixed());
    // Slow, so that an ack sent alongside the delete would land first: the
    // paused clock moves only when every other task is waiting.
    let store = subscription.store().slow(Duration::from_secs(1));
    let report = run_to_the_end(&subscription, store, 1_000).await;

    assert_outcome(&report, "completed", 0);
    let calls = subscription.log.calls();
    let committed = subscription.log.commit_index();
    for (i, call) in calls.iter().enumerate() {
        if matches!(call, Call::Acknowledge(_) | Call::SetDeadline(_, 0)) {
            assert!(i > committed, "{call:?} before the commit: {calls:?}");
        }
    }
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, Call::Acknowledge(ids) if !ids.is_empty()))
    );
}

#[tokio::test]
async fn max_messages_is_respected_exactly() {
    let subscription = FakeSubscription::new(removals(250));
    let report = run_to_the_end(&subscription, subscription.store(), 130).await;

    assert_outcome(&report, "completed", 0);
    assert_eq!(subscription.pulled().len(), 130);
    assert_eq!(subscription.waiting(), 120);
    assert_eq!(
        subscription.log.deletes(),
        [(1..=130).collect::<Vec<u64>>()]
    );
    assert_eq!(subscription.acked().len(), 130);
    subscription.assert_each_settled_once();
    assert_summary(
        &report,
        Summary {
            deleted_rows: 130,
            acked: 130,
            ..removals_received(130)
        },
    );
}

#[tokio::test]
async fn max_messages_is_respected_with_several_pulls_in_flight() {
    let subscription = FakeSubscription::new(removals(3_000));
    let mut store = subscription.store();
    store.users = (1..=3_000).collect();
    let report = run_to_the_end(&subscription, store, 2_500).await;

    assert_outcome(&report, "completed", 0);
    assert_eq!(subscription.pulled().len(), 2_500);
    assert_eq!(subscription.waiting(), 500);
    for call in subscription.log.calls() {
        if let Call::Pull { asked, .. } = call {
            assert!((1..=1_000).contains(&asked), "asked for {asked}");
        }
    }
    assert_eq!(
        subscription.log.deletes(),
        [(1..=2_500).collect::<Vec<u64>>()]
    );
    subscription.assert_each_settled_once();
    assert_summary(
        &report,
        Summary {
            deleted_rows: 2_500,
            acked: 2_500,
            ..removals_received(2_500)
        },
    );
}

#[tokio::test]
async fn an_empty_subscription_completes_and_deletes_nothing() {
    let subscription = FakeSubscription::new(Vec::new());
    let report = run_to_the_end(&subscription, subscription.store(), 1_000).await;

    assert_outcome(&report, "completed", 0);
    // The first, immediate Pull alone, then long polls until two empty
    // answers: no delete, not even of no ids, and no acknowledgement or
    // deadline request.
    let calls = subscription.log.calls();
    assert_eq!(
        calls[..2],
        [Call::Connect, Call::Pull { asked: 10, got: 0 }]
    );
    let pulls = &calls[2..];
    assert!(
        (1..=PULLS_IN_FLIGHT).contains(&pulls.len())
            && pulls.iter().all(|c| matches!(c, Call::Pull { got: 0, .. })),
        "{calls:?}"
    );
    assert_summary(
        &report,
        Summary {
            rounds: 1,
            ..Summary::default()
        },
    );
}

#[tokio::test]
async fn a_dry_run_deletes_nothing_and_hands_everything_back() {
    let subscription = FakeSubscription::new(mixed());
    let store = subscription.store();
    let settings = PassSettings {
        dry_run: true,
        ..settings(1_000)
    };
    let report = run(
        subscription.clone(),
        connected(store),
        &settings,
        no_signal(),
    )
    .await;

    assert_outcome(&report, "completed", 0);
    assert!(
        !subscription.log.connected(),
        "a dry run connected the store"
    );
    assert!(subscription.log.deletes().is_empty());
    assert!(subscription.acked().is_empty());
    let mut handed_back = subscription.handed_back();
    handed_back.sort();
    let mut all = subscription.pulled();
    all.sort();
    assert_eq!(handed_back, all);
    assert_eq!(all.len(), 11);
    assert_unconnected_summary(
        &report,
        Summary {
            nacked: 11,
            dry_run: true,
            ..mixed_received()
        },
    );
}

#[tokio::test]
async fn a_store_that_cannot_connect_stops_the_pass_before_any_pull() {
    let subscription = FakeSubscription::new(mixed());
    let report = run(
        subscription.clone(),
        async { Err::<FakeStore, _>(anyhow::anyhow!("fake: connection refused")) },
        &settings(1_000),
        no_signal(),
    )
    .await;

    assert_outcome(&report, "database_error", 4);
    assert!(
        subscription.log.calls().is_empty(),
        "{:?}",
        subscription.log.calls()
    );
    assert_eq!(subscription.state.lock().unwrap().pulls, 0);
    assert_eq!(subscription.waiting(), 11);
    assert_unconnected_summary(&report, Summary::default());
}

#[tokio::test(start_paused = true)]
async fn a_signal_while_connecting_stops_the_pass_before_any_pull() {
    let subscription = FakeSubscription::new(mixed());
    let report = run_until(
        &subscription,
        never_connected(subscription.log.clone()),
        Signal::Interrupt,
        |c| *c == Call::Connect,
    )
    .await;

    assert_outcome(&report, "interrupted", 130);
    assert_eq!(
        subscription.log.calls(),
        [Call::Connect, Call::Signalled(Signal::Interrupt)]
    );
    assert_eq!(subscription.waiting(), 11);
    assert_unconnected_summary(&report, Summary::default());
}

#[tokio::test]
async fn a_failed_delete_acknowledges_nothing_and_hands_everything_back() {
    let subscription = FakeSubscription::new(mixed());
    let store = subscription.store().failing();
    let report = run_to_the_end(&subscription, store, 1_000).await;

    assert_outcome(&report, "database_error", 4);
    assert_mixed_handed_back_after_the_delete(&subscription, &report);
}

#[tokio::test]
async fn a_failed_pull_deletes_nothing_and_hands_back_what_was_held() {
    // The first Pull, alone, gets 10; the ones after it fail.
    let subscription = FakeSubscription::new(removals(150)).with(|q| q.fail_pulls_after = Some(1));
    let report = run_to_the_end(&subscription, subscription.store(), 1_000).await;

    assert_outcome(&report, "pubsub_error", 3);
    assert!(subscription.log.deletes().is_empty());
    assert!(subscription.acked().is_empty());
    assert_eq!(subscription.pulled().len(), 10);
    subscription.assert_each_settled_once();
    assert_eq!(subscription.handed_back().len(), 10);
    assert_summary(
        &report,
        Summary {
            nacked: 10,
            ..removals_received(10)
        },
    );
}

#[tokio::test]
async fn a_failed_pull_hands_back_what_the_other_pulls_in_flight_received() {
    // The first Pull gets 10; then four in flight: the first of them fails,
    // the other three get 100 each, and are awaited before the hand-back.
    let subscription = FakeSubscription::new(removals(1_000)).with(|q| q.failing_pulls = vec![2]);
    let report = run_to_the_end(&subscription, subscription.store(), 5_000).await;

    assert_outcome(&report, "pubsub_error", 3);
    assert!(subscription.log.deletes().is_empty());
    let pulled = subscription.pulled().len();
    assert_eq!(pulled, 310, "the Pulls in flight were not awaited");
    subscription.assert_each_settled_once();
    assert_summary(
        &report,
        Summary {
            nacked: pulled,
            ..removals_received(pulled)
        },
    );
}

#[tokio::test(start_paused = true)]
async fn a_signal_while_receiving_hands_back_what_was_held() {
    // The first Pull gets all 30; the second finds nothing and waits, as a
    // real one does until its timeout. The signal comes while it waits.
    let subscription = FakeSubscription::new(removals(30)).with(|q| q.empty_pull_wait = FOREVER);
    let report = run_until(
        &subscription,
        connected(subscription.store()),
        Signal::Interrupt,
        |c| matches!(c, Call::Pull { got: 0, .. }),
    )
    .await;

    assert_outcome(&report, "interrupted", 130);
    assert_eq!(subscription.pulled().len(), 30);
    assert!(subscription.log.deletes().is_empty());
    assert!(subscription.acked().is_empty());
    assert_eq!(subscription.handed_back().len(), 30);
    subscription.assert_each_settled_once();
    assert_summary(
        &report,
        Summary {
            nacked: 30,
            ..removals_received(30)
        },
    );
}

#[tokio::test]
async fn a_failed_acknowledgement_is_reported_after_the_commit() {
    // 2,500 acks go in three requests, taken from the end: a1501..=a2500,
    // a501..=a1500 (which fails, for a1500) and a1..=a500.
    let subscription = FakeSubscription::new(removals(2_500))
        .with(|q| q.failing_acks = ["a1500".to_string()].into_iter().collect());
    let report = run_to_the_end(&subscription, subscription.store(), 10_000).await;

    assert_outcome(&report, "ack_error", 5);
    assert!(subscription.log.commit_index() < subscription.log.first_ack_index());
    let mut expected: Vec<String> = (1..=500)
        .chain(1_501..=2_500)
        .map(|i| format!("a{i}"))
        .collect();
    let mut got = subscription.acked();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    assert_summary(
        &report,
        Summary {
            // The store holds users 1..=1000.
            deleted_rows: 1_000,
            acked: 1_500,
            ..removals_received(2_500)
        },
    );
    let error = format!("{:#}", report.outcome.error().unwrap());
    assert!(error.contains("1000 acknowledgements failed"), "{error}");
}

#[tokio::test]
async fn acknowledgements_go_in_requests_of_at_most_1000() {
    let subscription = FakeSubscription::new(removals(2_500));
    let report = run_to_the_end(&subscription, subscription.store(), 10_000).await;
    assert_outcome(&report, "completed", 0);
    let mut sizes: Vec<usize> = subscription
        .log
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Acknowledge(ids) => Some(ids.len()),
            _ => None,
        })
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [500, 1_000, 1_000]);
    subscription.assert_each_settled_once();
}

#[tokio::test(start_paused = true)]
async fn a_signal_during_a_slow_delete_hands_everything_back() {
    let subscription = FakeSubscription::new(mixed());
    let store = subscription.store().slow(FOREVER);
    let report = run_until(&subscription, connected(store), Signal::Terminate, |c| {
        matches!(c, Call::DeleteStarted(_))
    })
    .await;

    assert_outcome(&report, "interrupted", 143);
    assert_mixed_handed_back_after_the_delete(&subscription, &report);
}

#[tokio::test(start_paused = true)]
async fn a_signal_while_acknowledging_lets_the_acks_finish() {
    // The acknowledgement is answered only after the pass has taken the signal.
    let subscription = FakeSubscription::new(mixed()).with(|q| q.acks_wait_for_the_signal = true);
    let report = run_until(
        &subscription,
        connected(subscription.store()),
        Signal::Terminate,
        |c| matches!(c, Call::Acknowledge(_)),
    )
    .await;

    // The delete committed, so the acks finish; the exit still says why it stopped.
    assert_outcome(&report, "interrupted", 143);
    let signalled = subscription
        .log
        .first("the signal", |c| matches!(c, Call::Signalled(_)));
    assert!(subscription.log.commit_index() < signalled);
    assert_eq!(subscription.acked().len(), 7);
    subscription.assert_each_settled_once();
    assert_summary(&report, mixed_completed());
}

#[tokio::test(start_paused = true)]
async fn a_delete_slower_than_the_lease_renewal_extends_every_lease() {
    // Paused time: the clock jumps to each timer, so this takes no real time.
    let subscription = FakeSubscription::new(mixed());
    let store = subscription
        .store()
        .slow(LEASE_RENEWAL + Duration::from_millis(500));
    let report = run_to_the_end(&subscription, store, 1_000).await;

    assert_outcome(&report, "completed", 0);
    let calls = subscription.log.calls();
    let renewed = subscription
        .log
        .first("a renewal", |c| matches!(c, Call::SetDeadline(_, 60)));
    let Call::SetDeadline(held, _) = &calls[renewed] else {
        unreachable!()
    };
    let mut held = held.clone();
    held.sort();
    let mut all = subscription.pulled();
    all.sort();
    assert_eq!(held, all);
    let committed = subscription.log.commit_index();
    assert!(
        renewed < committed && committed < subscription.log.first_ack_index(),
        "{calls:?}"
    );
    subscription.assert_each_settled_once();
}

#[tokio::test]
async fn a_pass_without_removals_acknowledges_the_other_events_without_deleting() {
    let subscription = FakeSubscription::new(vec![
        message("n1", encode(event_type::CREATED, 1)),
        message("c2", encode(event_type::CHANGED, 2)),
        message("x3", encode(event_type::ACCESS_CHANGED, 3)),
        removal("r0", 0),
    ]);
    let report = run_to_the_end(&subscription, subscription.store(), 1_000).await;

    assert_outcome(&report, "completed", 0);
    assert!(subscription.log.deletes().is_empty());
    assert_eq!(subscription.acked(), ids(&["n1", "c2", "x3"]));
    assert_eq!(subscription.handed_back(), ids(&["r0"]));
    assert_summary(
        &report,
        Summary {
            received: 4,
            ignored: 3,
            malformed: 1,
            acked: 3,
            nacked: 1,
            rounds: 1,
            ..Summary::default()
        },
    );
}

#[tokio::test]
async fn a_refused_user_is_left_out_and_everyone_else_is_erased_and_acknowledged() {
    let subscription = FakeSubscription::new(mixed());
    let store = subscription.store().refusing([9]);
    let report = run_to_the_end(&subscription, store, 1_000).await;

    assert_outcome(&report, "partially_completed", 6);
    let error = format!("{:#}", report.outcome.error().unwrap());
    assert!(error.contains("1 users could not be erased"), "{error}");
    // All at once (refused), then bisected: [3] goes in, [9] is refused, [5000] goes in.
    assert_eq!(
        subscription.log.deletes(),
        [
            vec![3, 9, 5_000],
            vec![3],
            vec![9, 5_000],
            vec![9],
            vec![5_000]
        ]
    );
    let committed: Vec<Vec<u64>> = subscription
        .log
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::DeleteCommitted(ids) => Some(ids),
            _ => None,
        })
        .collect();
    assert_eq!(committed, [vec![3, 5_000]]);
    // The two messages for user 9 go back with the malformed, after the acks.
    let mut acked = subscription.acked();
    acked.sort();
    assert_eq!(acked, ids(&["c1", "n2", "r-gone", "r3", "x5"]));
    let mut handed_back = subscription.handed_back();
    handed_back.sort();
    let mut expected = ids(&MIXED_MALFORMED);
    expected.extend(ids(&["r9", "r9-again"]));
    expected.sort();
    assert_eq!(handed_back, expected);
    subscription.assert_each_settled_once();
    assert_summary(
        &report,
        Summary {
            deleted_rows: 1,
            acked: 5,
            nacked: 6,
            refused: 1,
            ..mixed_received()
        },
    );
}

/// `max_messages` in rounds of `batch_size`.
fn in_rounds(max_messages: usize, batch_size: usize) -> PassSettings {
    PassSettings {
        batch_size,
        ..settings(max_messages)
    }
}

#[tokio::test]
async fn a_backlog_goes_in_rounds_each_committed_and_acknowledged_before_the_next() {
    let subscription = FakeSubscription::new(removals(250));
    let report = run(
        subscription.clone(),
        connected(subscription.store()),
        &in_rounds(1_000, 100),
        no_signal(),
    )
    .await;

    assert_outcome(&report, "completed", 0);
    assert_eq!(
        subscription.log.deletes(),
        [
            (1..=100).collect::<Vec<u64>>(),
            (101..=200).collect(),
            (201..=250).collect()
        ]
    );
    // Each round's acknowledgements come after its commit and before the
    // next round's first Pull.
    let calls = subscription.log.calls();
    let commits: Vec<usize> = (0..calls.len())
        .filter(|&i| matches!(calls[i], Call::DeleteCommitted(_)))
        .collect();
    for (round, &commit) in commits.iter().enumerate().take(2) {
        let ack = (commit..calls.len())
            .find(|&i| matches!(calls[i], Call::Acknowledge(_)))
            .unwrap();
        let next_pull = (commit..calls.len())
            .find(|&i| matches!(calls[i], Call::Pull { .. }))
            .unwrap();
        assert!(ack < next_pull, "round {round}: {calls:?}");
    }
    subscription.assert_each_settled_once();
    assert_summary(
        &report,
        Summary {
            deleted_rows: 250,
            acked: 250,
            rounds: 3,
            ..removals_received(250)
        },
    );
}

#[tokio::test]
async fn rounds_stop_at_max_messages_in_total() {
    let subscription = FakeSubscription::new(removals(400));
    let report = run(
        subscription.clone(),
        connected(subscription.store()),
        &in_rounds(250, 100),
        no_signal(),
    )
    .await;

    assert_outcome(&report, "completed", 0);
    assert_eq!(subscription.pulled().len(), 250);
    assert_eq!(subscription.waiting(), 150);
    assert_eq!(report.summary.rounds, 3);
}

#[tokio::test]
async fn messages_with_ordering_keys_start_another_round() {
    // A drained round that saw ordering keys starts another: the keys' next
    // messages come once these are acknowledged. The next round finds nothing.
    let mut messages = removals(30);
    for m in &mut messages {
        m.ordered = true;
    }
    let subscription = FakeSubscription::new(messages);
    let report = run_to_the_end(&subscription, subscription.store(), 1_000).await;

    assert_outcome(&report, "completed", 0);
    assert_eq!(report.summary.rounds, 2);
    assert_eq!(report.summary.acked, 30);
}

#[tokio::test(start_paused = true)]
async fn a_signal_while_acknowledging_starts_no_new_round() {
    let subscription =
        FakeSubscription::new(removals(250)).with(|q| q.acks_wait_for_the_signal = true);
    let report = run(
        subscription.clone(),
        connected(subscription.store()),
        &in_rounds(1_000, 100),
        signal_at(subscription.log.clone(), Signal::Terminate, |c| {
            matches!(c, Call::Acknowledge(_))
        }),
    )
    .await;

    assert_outcome(&report, "interrupted", 143);
    assert_eq!(
        subscription.log.deletes(),
        [(1..=100).collect::<Vec<u64>>()]
    );
    assert_eq!(subscription.acked().len(), 100);
    assert_eq!(subscription.waiting(), 150);
    assert_eq!(report.summary.rounds, 1);
}

#[tokio::test(start_paused = true)]
async fn no_round_starts_after_max_duration() {
    // Each delete takes 40 s of the paused clock; 100 s allow three rounds to
    // start, and the third ends after the limit.
    let subscription = FakeSubscription::new(removals(1_000));
    let store = subscription.store().slow(Duration::from_secs(40));
    let settings = PassSettings {
        max_duration: Duration::from_secs(100),
        ..in_rounds(1_000, 100)
    };
    let report = run(
        subscription.clone(),
        connected(store),
        &settings,
        no_signal(),
    )
    .await;

    assert_outcome(&report, "completed", 0);
    assert_eq!(report.summary.rounds, 3);
    assert_eq!(report.summary.acked, 300);
    assert_eq!(subscription.waiting(), 700);
}

#[tokio::test(start_paused = true)]
async fn unanswered_long_polls_are_never_taken_for_an_empty_subscription() {
    // A slow link: every long poll runs out on the client's clock. Immediate
    // Pulls are answered, and take everything.
    let subscription =
        FakeSubscription::new(removals(250)).with(|q| q.long_polls_unanswered = true);
    let report = run_to_the_end(&subscription, subscription.store(), 1_000).await;

    assert_outcome(&report, "completed", 0);
    assert!(
        subscription.log.calls().contains(&Call::Unanswered),
        "no long poll was made"
    );
    assert_eq!(subscription.waiting(), 0);
    assert_eq!(report.summary.acked, 250);
}

#[tokio::test(start_paused = true)]
async fn pubsub_answering_nothing_at_all_is_a_pubsub_error() {
    let subscription = FakeSubscription::new(removals(250)).with(|q| {
        q.long_polls_unanswered = true;
        q.later_pulls_unanswered = true;
    });
    let report = run_to_the_end(&subscription, subscription.store(), 1_000).await;

    assert_outcome(&report, "pubsub_error", 3);
    let error = format!("{:#}", report.outcome.error().unwrap());
    assert!(error.contains("answered no Pull"), "{error}");
    assert!(subscription.log.deletes().is_empty());
    // What the first Pull took went back.
    assert_eq!(subscription.handed_back().len(), 10);
    subscription.assert_each_settled_once();
}

#[tokio::test]
async fn an_empty_answer_among_full_ones_is_not_a_drained_subscription() {
    let subscription = FakeSubscription::new(removals(900)).with(|q| q.flaky_empty_answers = true);
    let mut store = subscription.store();
    store.users = (1..=900).collect();
    let report = run_to_the_end(&subscription, store, 5_000).await;

    assert_outcome(&report, "completed", 0);
    assert_eq!(subscription.waiting(), 0, "drained too early");
    assert_eq!(report.summary.acked, 900);
}

/// `settings(max_messages)` ending after `seconds`.
fn lasting(max_messages: usize, seconds: u64) -> PassSettings {
    PassSettings {
        max_duration: Duration::from_secs(seconds),
        ..settings(max_messages)
    }
}

#[tokio::test(start_paused = true)]
async fn a_heavy_user_goes_after_the_others_and_is_carried_over_when_time_is_up() {
    let subscription = FakeSubscription::new(removals(10));
    // Erasing user 3 alone would take longer than the run has.
    let store = subscription.store().heavy(3, Duration::from_secs(500));
    let report = run(
        subscription.clone(),
        connected(store),
        &lasting(10, 60),
        no_signal(),
    )
    .await;

    assert_outcome(&report, "completed", 0);
    let others: Vec<u64> = (1..=10).filter(|id| *id != 3).collect();
    assert_eq!(
        subscription.log.deletes(),
        [(1..=10).collect(), others.clone(), vec![3]]
    );
    assert_eq!(subscription.handed_back(), ids(&["a3"]));
    assert_eq!(subscription.acked().len(), 9);
    subscription.assert_each_settled_once();
    assert_eq!(report.summary.carried_over, 1);
    assert_eq!(report.summary.refused, 0);
}

#[tokio::test(start_paused = true)]
async fn a_heavy_user_with_time_enough_is_erased_in_the_same_run() {
    let subscription = FakeSubscription::new(removals(10));
    let store = subscription.store().heavy(3, Duration::from_secs(20));
    let report = run(
        subscription.clone(),
        connected(store),
        &lasting(10, 60),
        no_signal(),
    )
    .await;

    assert_outcome(&report, "completed", 0);
    assert_eq!(subscription.acked().len(), 10);
    assert!(subscription.handed_back().is_empty());
    assert_eq!(report.summary.carried_over, 0);
}

#[tokio::test(start_paused = true)]
async fn a_replica_lagging_for_the_whole_run_gets_no_pull_and_exits_4() {
    let subscription = FakeSubscription::new(removals(10));
    let store = subscription.store().lagging_for(Duration::from_secs(3_600));
    let report = run(
        subscription.clone(),
        connected(store),
        &lasting(10, 30),
        no_signal(),
    )
    .await;

    assert_outcome(&report, "database_error", 4);
    let error = format!("{:#}", report.outcome.error().unwrap());
    assert!(
        error.contains("replica fake lagged") && error.contains("no message was received"),
        "{error}"
    );
    // Not one delivery spent: every message is still waiting, untouched.
    assert_eq!(subscription.waiting(), 10);
    assert!(subscription.acked().is_empty() && subscription.handed_back().is_empty());
    assert!(subscription.log.deletes().is_empty());
    assert_eq!(report.summary.received, 0);
    assert_eq!(report.summary.replica_wait_ms, 30_000);
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_catches_up_is_waited_for_and_the_run_completes() {
    let subscription = FakeSubscription::new(removals(10));
    let store = subscription.store().lagging_for(Duration::from_secs(7));
    let report = run(
        subscription.clone(),
        connected(store),
        &lasting(10, 60),
        no_signal(),
    )
    .await;

    assert_outcome(&report, "completed", 0);
    assert_eq!(subscription.acked().len(), 10);
    assert_eq!(report.summary.replica_wait_ms, 7_000);
}
