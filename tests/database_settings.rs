//! Servers as GKE and VMs run them: a binary log in STATEMENT format, which
//! refuses READ COMMITTED writes, and a statement that outlives its timeout.
//! On private MariaDB servers where the server's settings differ.

mod common;

use std::time::Duration;

use common::private::PrivateMariaDb;
use common::{Setup, TestEnv};
use mysql_async::prelude::Queryable as _;

#[tokio::test(flavor = "multi_thread")]
async fn a_server_logging_statements_is_erased_under_repeatable_read_and_says_so() {
    let db = PrivateMariaDb::start(&[
        "--log-bin=binlog".to_string(),
        "--binlog-format=STATEMENT".to_string(),
        "--server-id=1".to_string(),
    ])
    .await;
    let env = Setup::new(20)
        .mysql_root(db.url("root", "", "mysql"))
        .create()
        .await;

    // The setting is real: such a server refuses a READ COMMITTED delete.
    let mut conn = env.pool().get_conn().await.unwrap();
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .unwrap();
    let refused = conn.query_drop("DELETE FROM users WHERE id = 20").await;
    let error = format!("{refused:?}");
    assert!(
        error.contains("1665"),
        "READ COMMITTED was not refused: {error}"
    );
    drop(conn);

    env.publish_removals([2, 3, 5]).await;
    let run = env.run(&[]).await;
    run.assert_code(0);
    run.assert_logged("binlog_format=STATEMENT");
    assert_eq!(run.count("deleted_rows"), 3);
    assert_eq!(
        env.users().await,
        [1, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    );
    assert!(env.drain(Duration::ZERO).await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_past_its_timeout_carries_its_users_over_and_hands_their_messages_back() {
    let env = TestEnv::new(10).await;
    // Each deleted row takes five seconds, far past the limit of one (a
    // sleep of one second raced the limit, and sometimes won): so each user
    // alone is split off and carried over. The timeout cuts each sleep short.
    env.sql("CREATE TRIGGER slow BEFORE DELETE ON users FOR EACH ROW DO SLEEP(5)")
        .await;
    env.publish_removals(1..=5).await;

    let run = env.run(&["--statement-timeout", "1"]).await;
    run.assert_code(0);
    run.assert_logged("ran past --statement-timeout");
    assert_eq!((run.count("received"), run.count("acked")), (5, 0));
    assert_eq!(run.count("nacked"), 5);
    assert_eq!(run.count("carried_over"), 5);
    assert_eq!(env.users().await, (1..=10).collect::<Vec<_>>());
    assert_eq!(env.drain(Duration::ZERO).await.len(), 5);
    env.cleanup().await;
}
