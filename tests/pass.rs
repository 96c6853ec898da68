//! End-to-end runs of the binary against the real Pub/Sub emulator and the real
//! MariaDB (and, for the tests of [`on_both_engines!`], PostgreSQL too): exit
//! codes, the summary line, and what is left in the table and in the
//! subscription afterwards.

mod common;

use std::time::{Duration, Instant};

use common::{Engine, TestEnv, decoded, event_type, free_port, job_command};
use user_purge::event::encode;

on_both_engines!(
    one_run_stops_at_max_messages_and_the_next_takes_the_rest,
    only_valid_removals_are_deleted_and_malformed_messages_stay,
    a_dry_run_deletes_nothing_and_hands_everything_back,
    an_unreachable_database_exits_4_and_leaves_every_message,
    a_failed_run_is_finished_by_the_next_one,
    sigterm_during_the_delete_hands_everything_back_within_10_s,
);

async fn one_run_stops_at_max_messages_and_the_next_takes_the_rest(engine: Engine) {
    let env = TestEnv::on(engine, 10_100).await;
    env.publish_removals(1..=10_050).await;

    let first = env.run(&[]).await;
    first.assert_code(0);
    assert_eq!(first.count("received"), 10_000);
    assert_eq!(first.count("removed_ids"), 10_000);
    assert_eq!(first.count("deleted_rows"), 10_000);
    assert_eq!(first.count("acked"), 10_000);
    assert_eq!(env.users().await.len(), 100);

    let second = env.run(&[]).await;
    second.assert_code(0);
    assert_eq!(second.count("received"), 50);
    assert_eq!(second.count("deleted_rows"), 50);
    assert_eq!(env.users().await, (10_051..=10_100).collect::<Vec<_>>());
    assert_eq!(
        env.users_with_orders().await,
        (10_051..=10_100).collect::<Vec<_>>()
    );
    assert!(
        env.drain(Duration::ZERO).await.is_empty(),
        "messages were left behind"
    );
    env.cleanup().await;
}

async fn only_valid_removals_are_deleted_and_malformed_messages_stay(engine: Engine) {
    let env = TestEnv::on(engine, 20).await;
    let malformed = vec![
        encode(event_type::REMOVED, 0),
        encode(event_type::UNSPECIFIED, 6),
        encode(42, 7),
        b"\xff\xfe not a protobuf".to_vec(),
    ];
    let mut payloads = vec![
        encode(event_type::REMOVED, 2),
        encode(event_type::REMOVED, 3),
        encode(event_type::REMOVED, 3),
        encode(event_type::REMOVED, 5),
        encode(event_type::REMOVED, 999), // not in the table: no error
        encode(event_type::CREATED, 8),
        encode(event_type::CHANGED, 9),
        encode(event_type::ACCESS_CHANGED, 10),
    ];
    payloads.extend(malformed.iter().cloned());
    env.publish(payloads).await;

    let run = env.run(&[]).await;
    run.assert_code(0);
    let summary = run.summary();
    assert_eq!(summary["outcome"], "completed");
    assert_eq!(summary["received"], 12);
    assert_eq!(summary["removed_ids"], 4);
    assert_eq!(summary["deleted_rows"], 3);
    assert_eq!(summary["ignored"], 3);
    assert_eq!(summary["malformed"], 4);
    assert_eq!(summary["acked"], 8);
    assert_eq!(summary["nacked"], 4);
    assert_eq!(summary["dry_run"], false);
    run.assert_logged("malformed message");

    let kept: Vec<u64> = (1..=20).filter(|id| ![2, 3, 5].contains(id)).collect();
    assert_eq!(env.users().await, kept);
    assert_eq!(
        env.users_with_orders().await,
        kept,
        "orders must go with their users"
    );
    // The malformed messages were handed back, not acknowledged.
    let mut left = env.drain(Duration::ZERO).await;
    let mut expected = malformed;
    left.sort();
    expected.sort();
    assert_eq!(left, expected);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_subscription_ends_the_run_quickly() {
    let env = TestEnv::new(3).await;
    let started = Instant::now();
    // The production default, not the harness's more patient one.
    let run = env.run(&["--pull-timeout-ms", "500"]).await;
    run.assert_code(0);
    assert_eq!(run.count("received"), 0);
    assert_eq!(run.count("deleted_rows"), 0);
    // The old task blocked for 60 s here. A loose bound: figures are the
    // benchmark's job, this only catches a run that waits on a long poll.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(env.users().await, [1, 2, 3]);
    env.cleanup().await;
}

async fn a_dry_run_deletes_nothing_and_hands_everything_back(engine: Engine) {
    let env = TestEnv::on(engine, 10).await;
    env.publish(vec![
        encode(event_type::REMOVED, 1),
        encode(event_type::REMOVED, 2),
        encode(event_type::CHANGED, 3),
        vec![0xff],
    ])
    .await;

    let run = env.run(&["--dry-run"]).await;
    run.assert_code(0);
    let summary = run.summary();
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["received"], 4);
    assert_eq!(summary["removed_ids"], 2);
    assert_eq!(summary["deleted_rows"], 0);
    assert_eq!(summary["acked"], 0);
    assert_eq!(summary["nacked"], 4);
    assert_eq!(env.users().await, (1..=10).collect::<Vec<_>>());
    assert_eq!(env.drain(Duration::ZERO).await.len(), 4);
    env.cleanup().await;
}

async fn an_unreachable_database_exits_4_and_leaves_every_message(engine: Engine) {
    let env = TestEnv::on(engine, 5).await;
    env.publish_removals(1..=5).await;
    let url = engine.unreachable_url(free_port(), &env.database);

    let run = env.run(&["--database-url", &url]).await;
    run.assert_code(4);
    assert_eq!(run.outcome(), "database_error");
    assert_eq!(run.count("acked"), 0);
    assert_eq!(env.users().await, (1..=5).collect::<Vec<_>>());
    let left = decoded(&env.drain(Duration::ZERO).await);
    assert_eq!(
        left,
        (1..=5)
            .map(|id| (event_type::REMOVED, id))
            .collect::<Vec<_>>()
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_pubsub_exits_3() {
    let env = TestEnv::new(1).await;
    let dead = format!("127.0.0.1:{}", free_port());
    let run = env
        .run_with_env(&[], &[("PUBSUB_EMULATOR_HOST", &dead)])
        .await;
    run.assert_code(3);
    assert_eq!(run.outcome(), "pubsub_error");
    assert_eq!(env.users().await, [1]);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_subscription_exits_3() {
    let env = TestEnv::new(1).await;
    let run = env.run(&["--subscription", "no-such-subscription"]).await;
    run.assert_code(3);
    run.assert_logged("NotFound");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_table_name_exits_2_before_contacting_anything() {
    let env = TestEnv::new(2).await;
    env.publish_removals([1]).await;
    let run = env.run(&["--table", "users; DROP TABLE x"]).await;
    run.assert_code(2);
    assert!(
        run.stdout.is_empty(),
        "nothing ran, so no summary: {}",
        run.stdout
    );
    run.assert_logged("--table (PURGE_TABLE)");
    assert_eq!(env.users().await, [1, 2]);
    assert_eq!(env.drain(Duration::ZERO).await.len(), 1);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_table_is_a_database_error_before_anything_is_received() {
    let env = TestEnv::new(3).await;
    env.publish_removals([1, 2]).await;
    let run = env.run(&["--table", "no_such_table"]).await;
    run.assert_code(4);
    assert!(
        run.stderr.contains("`no_such_table`.`id` does not exist"),
        "{}",
        run.stderr
    );
    assert_eq!((run.count("received"), run.count("acked")), (0, 0));
    assert_eq!(env.drain(Duration::ZERO).await.len(), 2);
    env.cleanup().await;
}

async fn a_failed_run_is_finished_by_the_next_one(engine: Engine) {
    let env = TestEnv::on(engine, 10).await;
    env.publish_removals([2, 4, 6]).await;
    let lock = env.lock_rows(Some(4)).await;

    let failed = env.run(&["--lock-wait-timeout", "1"]).await;
    failed.assert_code(4);
    failed.assert_logged(engine.lock_timeout_words());
    assert_eq!(failed.count("acked"), 0);
    assert_eq!(
        env.users().await.len(),
        10,
        "the failed delete must roll back whole"
    );
    drop(lock);

    let next = env.run(&[]).await;
    next.assert_code(0);
    assert_eq!(next.count("received"), 3);
    assert_eq!(next.count("deleted_rows"), 3);
    assert_eq!(env.users().await, [1, 3, 5, 7, 8, 9, 10]);
    assert!(env.drain(Duration::ZERO).await.is_empty());
    env.cleanup().await;
}

async fn sigterm_during_the_delete_hands_everything_back_within_10_s(engine: Engine) {
    let env = TestEnv::on(engine, 10).await;
    env.publish_removals(1..=5).await;
    let lock = env.lock_rows(Some(3)).await;

    let job = env.spawn(&[], &[]);
    // Wait until the delete is blocked on the lock.
    env.wait_for_delete().await;
    let signalled = Instant::now();
    job.signal(libc::SIGTERM);
    let run = job.finish(&env).await;
    let took = signalled.elapsed();
    run.assert_code(143);
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    assert_eq!(run.outcome(), "interrupted");
    run.assert_logged("stopped by Terminate before the delete committed");
    assert_eq!(run.count("acked"), 0);
    assert_eq!(run.count("nacked"), 5);
    drop(lock);
    assert_eq!(
        env.users().await.len(),
        10,
        "the uncommitted delete must roll back"
    );
    assert_eq!(env.drain(Duration::ZERO).await.len(), 5);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_slower_than_the_ack_deadline_keeps_its_messages() {
    let env = TestEnv::new(10).await;
    env.publish_removals(1..=6).await;
    let lock = env.lock_rows(Some(1)).await;

    let mut slow = env.spawn(&["--lock-wait-timeout", "60"], &[]);
    env.wait_for_delete().await;
    // The third renewal, every 4 s from the start of receiving, is past the
    // subscription's 10 s ack deadline: without renewals the messages would
    // now go to another run.
    for _ in 0..3 {
        slow.wait_for("renewed the lease of 6 messages")
            .await
            .expect("the slow run ended before renewing its leases");
    }
    let concurrent = env.run(&[]).await;
    concurrent.assert_code(0);
    assert_eq!(
        concurrent.count("received"),
        0,
        "a held message was redelivered"
    );
    drop(lock);

    let slow = slow.finish(&env).await;
    slow.assert_code(0);
    assert_eq!(slow.count("received"), 6);
    assert_eq!(slow.count("acked"), 6);
    assert_eq!(env.users().await, [7, 8, 9, 10]);
    assert!(env.drain(Duration::from_secs(1)).await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_in_any_output() {
    let env = TestEnv::new(4).await;
    env.publish(vec![encode(event_type::REMOVED, 1), vec![0xff]])
        .await;
    let password = "Pw-7f3a9c-not-in-logs";
    let url = env
        .create_user("p", password, "SELECT, DELETE", "users")
        .await;
    let key = common::fake_key();
    let trace = [
        ("RUST_LOG", "trace"),
        ("PUBSUB_SERVICE_ACCOUNT", key.as_str()),
    ];

    let run = env.run_with_env(&["--database-url", &url], &trace).await;
    run.assert_code(0);
    assert_eq!(run.count("deleted_rows"), 1);
    env.publish_removals([2]).await;
    let bad = env
        .run_with_env(&["--database-url", &url, "--table", "orders"], &trace)
        .await;
    bad.assert_code(4);
    let wrong = url.replace(password, &format!("{password}-wrong"));
    let denied = env.run_with_env(&["--database-url", &wrong], &trace).await;
    denied.assert_code(4);
    let help = job_command(&["--help"])
        .env("DATABASE_URL", &url)
        .env("PUBSUB_SERVICE_ACCOUNT", &key)
        .output()
        .await
        .unwrap();
    let help = common::Run::from(help);
    help.assert_code(0);

    for run in [&run, &bad, &denied, &help] {
        run.assert_no_secret(&[password, "KEY-MATERIAL"]);
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_thousand_messages_go_in_one_run() {
    let env = TestEnv::new(100_500).await;
    env.publish_removals(1..=100_000).await;
    let run = env.run(&["--max-messages", "100000"]).await;
    run.assert_code(0);
    assert_eq!(run.count("received"), 100_000);
    assert_eq!(run.count("removed_ids"), 100_000);
    assert_eq!(run.count("deleted_rows"), 100_000);
    assert_eq!(run.count("acked"), 100_000);
    assert_eq!(env.users().await, (100_001..=100_500).collect::<Vec<_>>());
    assert!(env.drain(Duration::ZERO).await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_with_attributes_and_no_data_is_handed_back_not_dropped() {
    use gcloud_googleapis::pubsub::v1::PubsubMessage;
    let env = TestEnv::new(5).await;
    let mut publisher = env.client.topic(&env.topic).new_publisher(None);
    let attributes_only = PubsubMessage {
        attributes: [("kind".to_owned(), "ping".to_owned())].into(),
        ..PubsubMessage::default()
    };
    let removal = PubsubMessage {
        data: encode(event_type::REMOVED, 2),
        ..PubsubMessage::default()
    };
    for awaiter in publisher.publish_bulk(vec![attributes_only, removal]).await {
        awaiter.get().await.expect("publish failed");
    }
    publisher.shutdown().await;

    let run = env.run(&[]).await;
    run.assert_code(0);
    assert_eq!(
        (
            run.count("received"),
            run.count("malformed"),
            run.count("nacked")
        ),
        (2, 1, 1),
        "{}",
        run.stdout
    );
    assert_eq!(run.count("acked"), 1);
    assert_eq!(env.users().await, [1, 3, 4, 5]);
    // Handed back, so still there for the dead-letter policy: one message, no data.
    assert_eq!(env.drain(Duration::ZERO).await, [Vec::<u8>::new()]);
    env.cleanup().await;
}
