//! Operating the job: metrics pushed to a real Pushgateway, replay after a
//! database restore (seek to a time or a snapshot), and the drill publisher.

mod common;

use std::time::{Duration, SystemTime};

use common::private::PrivatePushgateway;
use common::{Setup, TestEnv, event_type};
use user_purge::event::encode;

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_run_pushes_its_metrics_and_a_failure_keeps_the_last_success() {
    let gateway = PrivatePushgateway::start();
    let env = TestEnv::new(10).await;
    env.publish(vec![
        encode(event_type::REMOVED, 1),
        encode(event_type::REMOVED, 2),
        vec![0xff],
    ])
    .await;
    let push = ["--pushgateway-url", gateway.url.as_str()];

    let before = now_seconds();
    let run = env.run(&push).await;
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
    assert!(metric("user_purge_duration_seconds") >= 0.0);
    let success = metric("user_purge_last_success_timestamp_seconds");
    assert!(
        success >= before.floor() && success <= now_seconds() + 1.0,
        "{success}"
    );

    // A failing run: new exit code and run time, the old success time.
    std::thread::sleep(Duration::from_millis(1100));
    let dead = format!("mysql://root:@127.0.0.1:{}/x", common::free_port());
    let failed = env
        .run(&[&push[..], &["--database-url", &dead]].concat())
        .await;
    failed.assert_code(4);
    assert_eq!(metric("user_purge_exit_code"), 4.0);
    assert_eq!(metric("user_purge_last_success_timestamp_seconds"), success);
    assert!(metric("user_purge_last_run_timestamp_seconds") > success);

    // A gateway that is down changes nothing about the run.
    let nowhere = format!("http://127.0.0.1:{}", common::free_port());
    let unpushed = env.run(&["--pushgateway-url", &nowhere]).await;
    unpushed.assert_code(0);
    assert!(
        unpushed.stderr.contains("cannot push metrics"),
        "{}",
        unpushed.stderr
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
    let replay = env.run(&["replay", "--since", &since]).await;
    replay.assert_code(0);
    let again = env.run(&[]).await;
    again.assert_code(0);
    assert_eq!(again.count("deleted_rows"), 2);
    assert_eq!(env.users().await, [1, 4, 5, 6, 7, 8, 9, 10]);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_from_a_snapshot_erases_the_users_again() {
    let env = TestEnv::new(10).await;
    env.run(&["snapshot", "create", &format!("snap-{}", env.database)])
        .await
        .assert_code(0);
    env.publish_removals([5, 6]).await;
    env.run(&[]).await.assert_code(0);
    env.sql("INSERT INTO users VALUES (5, 'five@example.com'), (6, 'six@example.com')")
        .await;

    let replay = env
        .run(&["replay", "--snapshot", &format!("snap-{}", env.database)])
        .await;
    replay.assert_code(0);
    let again = env.run(&[]).await;
    again.assert_code(0);
    assert_eq!(again.count("deleted_rows"), 2);
    assert_eq!(env.users().await, [1, 2, 3, 4, 7, 8, 9, 10]);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_explains_a_subscription_that_keeps_no_acknowledged_messages() {
    let env = TestEnv::new(1).await;
    let replay = env
        .run(&["replay", "--since", "2026-01-01T00:00:00Z"])
        .await;
    replay.assert_code(3);
    assert!(
        replay
            .stderr
            .contains("does not retain acknowledged messages"),
        "{}",
        replay.stderr
    );
    assert!(
        replay.stderr.contains("--retain-acked-messages"),
        "{}",
        replay.stderr
    );
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
