//! `--replica-url` and `--max-replica-lag`, through the real binary on a
//! private MariaDB primary and a private replica of it (`common::replication`):
//!
//! - the replication the tests rely on works: what the primary writes reaches
//!   the replica, and the replica falls behind when a test makes it (its SQL
//!   thread stopped, a row lock, `MASTER_DELAY`); the grant `check --grants`
//!   prints for the replicas lets the job's account read the lag;
//! - a replica whose SQL thread is stopped: the run pulls nothing, erases
//!   nothing and exits 4 naming the replica, every message still there;
//! - a replica that really lags: the run waits while the lag is above the
//!   limit, then erases everything, and its summary says how long it waited;
//! - an unreachable replica: exit 4 with a line naming it, nothing received;
//! - a server that is no replica: exit 4 saying so.
//!
//! Without `--replica-url` nothing changes, which every other test covers.
//! No output may show a password: every run is checked for the job's.

mod common;

use std::time::Duration;

use common::replication::Replication;
use common::{Run, Setup, TestEnv, decoded, removals};
use mysql_async::prelude::Queryable as _;

/// How long the replica may take to apply what the setup wrote.
const CATCH_UP: Duration = Duration::from_secs(30);

/// A primary and its replica, and a test's world on the primary (which the
/// replica copies), whose account may read the replica's lag as the grant
/// `check --grants` prints says.
async fn world(users: u64) -> (Replication, TestEnv) {
    let replication = Replication::start().await;
    let env = Setup::new(users)
        .mysql_root(replication.primary_root_url())
        .create()
        .await;
    let grant = replica_grant(&env).await;
    // Run on the primary: like the account itself, it replicates.
    env.sql(&grant).await;
    replication.wait_until_caught_up(CATCH_UP).await;
    (replication, env)
}

/// The MariaDB grant for the replicas that `check --grants` prints, as a
/// comment, for the job's account, uncommented.
async fn replica_grant(env: &TestEnv) -> String {
    let grantee = format!("'{}'@'%'", env.user);
    let printed = env.run(&["check", "--grants", "--grantee", &grantee]).await;
    printed.assert_code(0);
    let prefix = format!("-- GRANT REPLICA MONITOR ON *.* TO {grantee};");
    let line = printed
        .stdout
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no grant for the replicas:\n{}", printed.stdout));
    line["-- ".len()..prefix.len() - 1].to_owned()
}

/// The job's replica URL: its own account, no password (it takes the
/// primary's). As the job describes it, since it holds none.
fn replica_url(replication: &Replication, env: &TestEnv) -> String {
    replication.replica_url(&env.user, &env.database)
}

/// The log lines that name `replica`.
fn lines_naming<'a>(run: &'a Run, replica: &str) -> Vec<&'a str> {
    run.stderr
        .lines()
        .filter(|line| line.contains(&format!("replica {replica}")))
        .collect()
}

/// Nothing was received, so nothing was erased or settled.
fn assert_nothing_received(run: &Run) {
    assert_eq!(
        (
            run.count("received"),
            run.count("deleted_rows"),
            run.count("acked"),
            run.count("nacked")
        ),
        (0, 0, 0, 0),
        "(received, deleted_rows, acked, nacked)\n{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_replica_follows_the_primary_and_falls_behind_when_told() {
    let (replication, env) = world(10).await;
    let count = format!("SELECT COUNT(*) FROM `{}`.users", env.database);
    assert_eq!(replication.replica_number(&count).await, 10);

    // The job's account, with the primary's password and the printed grant,
    // reads the replica's status.
    let url = format!(
        "mysql://{}:{}@127.0.0.1:{}/{}",
        env.user, env.password, replication.replica.port, env.database
    );
    let mut as_job = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
        .await
        .unwrap();
    let status: Vec<mysql_async::Row> = as_job.query("SHOW REPLICA STATUS").await.unwrap();
    assert_eq!(status.len(), 1, "one replication channel");
    drop(as_job);

    // The SQL thread stopped: the replica stays where it was.
    replication.stop_sql_thread().await;
    assert_eq!(replication.status().await.1, "No");
    env.sql("DELETE FROM users WHERE id = 1").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(replication.replica_number(&count).await, 10);
    replication.start_sql_thread().await;
    replication.wait_until_caught_up(CATCH_UP).await;
    assert_eq!(replication.replica_number(&count).await, 9);

    // A lock on the replica blocks the SQL thread, and the lag grows until
    // it is released.
    let lock = replication.lock_on_replica(&env.database, "users").await;
    env.sql("UPDATE users SET email = 'locked@example.com' WHERE id = 2")
        .await;
    replication.wait_for_lag(2).await;
    drop(lock);
    replication.wait_until_caught_up(CATCH_UP).await;
    assert_eq!(replication.status().await.2, Some(0));

    // MASTER_DELAY: each change waits on the replica before it is applied.
    replication.set_delay(3).await;
    env.sql("DELETE FROM users WHERE id = 2").await;
    replication.wait_for_lag(2).await;
    assert_eq!(replication.replica_number(&count).await, 9);
    replication.wait_until_caught_up(CATCH_UP).await;
    assert_eq!(replication.replica_number(&count).await, 8);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_replica_holds_the_erasure_back_and_every_message_stays() {
    let (replication, env) = world(20).await;
    env.publish_removals([1, 2, 3]).await;
    replication.stop_sql_thread().await;
    let replica = replica_url(&replication, &env);

    let run = env
        .run(&["--replica-url", &replica, "--max-duration", "3"])
        .await;
    run.assert_code(4);
    run.assert_logged(&format!(
        "waiting for replica {replica}: replication stopped (limit 5 s)"
    ));
    assert!(
        lines_naming(&run, &replica)
            .iter()
            .any(|line| line.contains("lagged")),
        "no line says the replica lagged:\n{}",
        run.stderr
    );
    assert_nothing_received(&run);
    assert_eq!(env.users().await, (1..=20).collect::<Vec<u64>>());
    assert_eq!(
        decoded(&env.peek(Duration::from_secs(2)).await),
        removals([1, 2, 3]),
        "every message must still be in the subscription"
    );

    replication.start_sql_thread().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagging_replica_makes_the_erasure_wait_then_it_completes() {
    let (replication, env) = world(20).await;
    env.publish_removals([1, 2, 3]).await;
    let replica = replica_url(&replication, &env);
    // A change the replica cannot apply while the lock is held: its lag
    // grows from the change's time on.
    let lock = replication.lock_on_replica(&env.database, "users").await;
    env.sql("UPDATE users SET email = 'held@example.com' WHERE id = 20")
        .await;
    replication.wait_for_lag(3).await;

    let mut job = env.spawn(
        &[
            "--replica-url",
            &replica,
            "--max-replica-lag",
            "1",
            "--max-duration",
            "60",
        ],
        &[],
    );
    let waiting = job
        .wait_for(&format!("waiting for replica {replica}: "))
        .await
        .expect("the job ended without waiting for the replica");
    assert!(waiting.contains("s behind (limit 1 s)"), "{waiting}");
    // Still waiting: nothing erased yet.
    assert_eq!(env.users().await.len(), 20);
    drop(lock);

    let run = job.finish_within(&env, Duration::from_secs(90)).await;
    run.assert_code(0);
    assert_eq!(
        (run.count("received"), run.count("acked")),
        (3, 3),
        "{}",
        run.stderr
    );
    assert!(run.count("replica_wait_ms") > 0, "{}", run.stdout);
    assert_eq!(env.users().await, (4..=20).collect::<Vec<u64>>());
    assert_eq!(
        env.users_with_orders().await,
        (4..=20).collect::<Vec<u64>>()
    );
    assert!(env.drain(Duration::from_secs(1)).await.is_empty());
    // And the replica has the erasure too.
    replication.wait_until_caught_up(CATCH_UP).await;
    let count = format!("SELECT COUNT(*) FROM `{}`.users", env.database);
    assert_eq!(replication.replica_number(&count).await, 17);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_replica_is_exit_4_naming_it_and_nothing_is_received() {
    let env = TestEnv::new(10).await;
    env.publish_removals([1, 2]).await;
    let port = common::free_port();
    // With the password in it: the line names the replica without it.
    let url = format!(
        "mysql://{}:{}@127.0.0.1:{port}/{}",
        env.user, env.password, env.database
    );
    let described = format!("mysql://{}@127.0.0.1:{port}/{}", env.user, env.database);

    let run = env.run(&["--replica-url", &url]).await;
    run.assert_code(4);
    let named = lines_naming(&run, &described);
    assert!(
        named
            .iter()
            .any(|line| line.contains(&format!("cannot reach replica {described}"))),
        "no line says the replica cannot be reached:\n{}",
        run.stderr
    );
    assert_nothing_received(&run);
    assert_eq!(env.users().await.len(), 10);
    assert_eq!(
        decoded(&env.peek(Duration::from_secs(2)).await),
        removals([1, 2])
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_is_no_replica_is_exit_4_saying_so() {
    let env = TestEnv::new(10).await;
    env.publish_removals([1]).await;
    // The shared server, which replicates from nothing, as the replica.
    env.sql(&replica_grant(&env).await).await;
    let server = mysql_async::Opts::from_url(&env.root_url).unwrap();
    let url = format!(
        "mysql://{}@{}:{}/{}",
        env.user,
        server.ip_or_hostname(),
        server.tcp_port(),
        env.database
    );

    let run = env.run(&["--replica-url", &url]).await;
    run.assert_code(4);
    assert!(
        lines_naming(&run, &url)
            .iter()
            .any(|line| line.contains("not a replica")),
        "no line says the server is not a replica:\n{}",
        run.stderr
    );
    assert_nothing_received(&run);
    assert_eq!(env.users().await.len(), 10);
    env.cleanup().await;
}
