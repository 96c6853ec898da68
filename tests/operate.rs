//! Operating the job: metrics pushed to a real Pushgateway, replay after a
//! database restore (seek to a time or a snapshot), and the drill publisher.

mod common;

use std::time::{Duration, SystemTime};

use common::private::PrivatePushgateway;
use common::{Run, Setup, TestEnv, event_type};
use user_purge::event::encode;

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Runs the job, and returns the run with the Unix times (fractional
/// seconds) just before it started and just after it ended.
async fn timed_run(env: &TestEnv, args: &[&str]) -> (Run, f64, f64) {
    let before = now_seconds();
    let run = env.run(args).await;
    (run, before, now_seconds())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_run_pushes_its_metrics_and_a_failure_keeps_the_last_success() {
    let gateway = PrivatePushgateway::start().await;
    let env = TestEnv::new(10).await;
    env.publish(vec![
        encode(event_type::REMOVED, 1),
        encode(event_type::REMOVED, 2),
        vec![0xff],
    ])
    .await;
    let push = ["--pushgateway-url", gateway.url.as_str()];

    let (run, before, after) = timed_run(&env, &push).await;
    run.assert_code(0);
    let metric = |name| {
        gateway
            .metric(name)
            .unwrap_or_else(|| panic!("{name} was not pushed"))
    };
    assert_eq!(metric("user_purge_messages_received"), 3.0);
    assert_eq!(metric("user_purge_users_deleted"), 2.0);
    assert_eq!(metric("user_purge_messages_malformed"), 1.0);
    assert_eq!(metric("user_purge_messages_acked"), 2.0);
    assert_eq!(metric("user_purge_exit_code"), 0.0);
    // The run's own figure, and no longer than the run measured from outside.
    let duration = metric("user_purge_duration_seconds");
    let elapsed = run.count("elapsed_ms") as f64 / 1000.0;
    assert!(
        duration > 0.0 && duration <= after - before && (duration - elapsed).abs() < 0.001,
        "duration {duration} s; the summary says {elapsed} s, the run took {} s",
        after - before
    );
    // The timestamps are fractional seconds: each must fall within its run.
    let success = metric("user_purge_last_success_timestamp_seconds");
    assert!(
        (before..=after).contains(&success),
        "success at {success}, the run from {before} to {after}"
    );
    assert_eq!(metric("user_purge_last_run_timestamp_seconds"), success);

    // A failing run: new exit code and run time, the old success time.
    let dead = format!("mysql://root:@127.0.0.1:{}/x", common::free_port());
    let (failed, before, after) =
        timed_run(&env, &[&push[..], &["--database-url", &dead]].concat()).await;
    failed.assert_code(4);
    assert_eq!(metric("user_purge_exit_code"), 4.0);
    assert_eq!(metric("user_purge_last_success_timestamp_seconds"), success);
    let last_run = metric("user_purge_last_run_timestamp_seconds");
    assert!(
        (before..=after).contains(&last_run) && last_run > success,
        "the failed run at {last_run}, from {before} to {after}; the success at {success}"
    );

    // A gateway that is down changes nothing about the run: it takes the
    // malformed message that the first run handed back, and hands it back.
    let nowhere = format!("http://127.0.0.1:{}", common::free_port());
    let unpushed = env.run(&["--pushgateway-url", &nowhere]).await;
    unpushed.assert_code(0);
    unpushed.assert_logged("cannot push metrics");
    assert_eq!(
        (
            unpushed.count("received"),
            unpushed.count("malformed"),
            unpushed.count("nacked")
        ),
        (1, 1, 1)
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_after_a_restore_erases_the_users_again() {
    let env = Setup::new(10).retain_acked().create().await;
    let since = user_purge::timestamp::format(SystemTime::now() - Duration::from_secs(1));
    env.publish_removals([2, 3]).await;
    env.run(&[]).await.assert_code(0);
    assert_eq!(env.users().await, [1, 4, 5, 6, 7, 8, 9, 10]);

    // The backup comes back, with users 2 and 3.
    env.sql("INSERT INTO users VALUES (2, 'two@example.com'), (3, 'three@example.com')")
        .await;
    replay_erases_again(&env, &["replay", "--since", &since], &[2, 3]).await;
    env.cleanup().await;
}

/// Replays with `replay`, then a run must delete `users` again, and only them.
async fn replay_erases_again(env: &TestEnv, replay: &[&str], users: &[u64]) {
    let before = env.users().await;
    let replayed = env.run(replay).await;
    replayed.assert_code(0);
    assert_eq!(replayed.outcome(), "completed");
    let again = env.run(&[]).await;
    again.assert_code(0);
    assert_eq!(again.count("deleted_rows"), users.len() as u64);
    let left: Vec<u64> = before
        .into_iter()
        .filter(|id| !users.contains(id))
        .collect();
    assert_eq!(env.users().await, left);
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_from_a_snapshot_erases_the_users_again() {
    let env = TestEnv::new(10).await;
    let snapshot = format!("snap-{}", env.database);
    env.run(&["snapshot", "create", &snapshot])
        .await
        .assert_code(0);
    env.publish_removals([5, 6]).await;
    env.run(&[]).await.assert_code(0);
    env.sql("INSERT INTO users VALUES (5, 'five@example.com'), (6, 'six@example.com')")
        .await;

    replay_erases_again(&env, &["replay", "--snapshot", &snapshot], &[5, 6]).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_explains_a_subscription_that_keeps_no_acknowledged_messages() {
    let env = TestEnv::new(1).await;
    let replay = env
        .run(&["replay", "--since", "2026-01-01T00:00:00Z"])
        .await;
    // The subscription's configuration, not an outage: no retry can help.
    replay.assert_code(2);
    assert_eq!(
        replay.stdout.trim(),
        r#"{"command":"replay","outcome":"refused"}"#
    );
    replay.assert_logged("does not retain acknowledged messages");
    replay.assert_logged("--retain-acked-messages");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_drill_publisher_sends_well_formed_events() {
    let env = TestEnv::new(10).await;
    env.run(&["publish", "--topic", &env.topic, "--removed", "4", "5"])
        .await
        .assert_code(0);
    env.run(&["publish", "--topic", &env.topic, "--event", "changed", "6"])
        .await
        .assert_code(0);
    let run = env.run(&[]).await;
    run.assert_code(0);
    assert_eq!(
        (
            run.count("removed_ids"),
            run.count("ignored"),
            run.count("malformed")
        ),
        (2, 1, 0)
    );
    assert_eq!(env.users().await, [1, 2, 3, 6, 7, 8, 9, 10]);
    env.cleanup().await;
}
