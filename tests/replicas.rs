//! `--replica-url` and `--max-replica-lag`, through the real binary on a
//! private primary and a private replica of it (`common::replication`), on
//! both engines: MariaDB's replication, and PostgreSQL's streaming replica
//! made with `pg_basebackup -R`:
//!
//! - the replication the tests rely on works: what the primary writes reaches
//!   the replica, and the replica falls behind when a test makes it (its SQL
//!   thread stopped or its replay paused, a row lock on MariaDB, a
//!   `MASTER_DELAY` or `recovery_min_apply_delay`); the job's own account
//!   reads the lag, with the grant `check --grants` prints for the replicas
//!   on MariaDB and none on PostgreSQL;
//! - a replica that applies nothing (its SQL thread stopped, its replay
//!   paused): the run pulls nothing, erases nothing and exits 4 naming the
//!   replica, every message still there;
//! - a replica that really lags: the run waits while the lag is above the
//!   limit, then erases everything, and its summary says how long it waited;
//! - an unreachable replica: exit 4 with a line naming it, nothing received;
//! - a server that is no replica: exit 4 saying so;
//! - on PostgreSQL, where the lag is the time since the last transaction
//!   replayed, an idle primary is no lag, nor is a replica that has replayed
//!   no transaction yet.
//!
//! Without `--replica-url` nothing changes, which every other test covers.
//! No output may show a password: every run is checked for the job's.

mod common;

use std::time::Duration;

use common::postgres_cluster::PrivatePostgres;
use common::replication::{PostgresReplication, Replication};
use common::{Engine, Run, Setup, TestEnv, decoded, removals};
use mysql_async::prelude::Queryable as _;

/// How long the replica may take to apply what the setup wrote.
const CATCH_UP: Duration = Duration::from_secs(30);

on_both_engines!(
    the_replica_follows_the_primary_and_falls_behind_when_told,
    a_stopped_replica_holds_the_erasure_back_and_every_message_stays,
    a_lagging_replica_makes_the_erasure_wait_then_it_completes,
    an_unreachable_replica_is_exit_4_naming_it_and_nothing_is_received,
    a_server_that_is_no_replica_is_exit_4_saying_so,
);

/// A primary and its replica, and a test's world on the primary (which the
/// replica copies), whose account may read the replica's lag as the grant
/// `check --grants` prints says.
async fn world(engine: Engine, users: u64) -> (Replication, TestEnv) {
    let replication = Replication::start(engine).await;
    let env = replication.setup(users).create().await;
    if let Some(grant) = replica_grant(&env).await {
        // Run on the primary: like the account itself, it replicates.
        env.sql(&grant).await;
    }
    replication.wait_until_caught_up(CATCH_UP).await;
    (replication, env)
}

/// The grant for the replicas that `check --grants` prints, as a comment,
/// for the job's account, uncommented: MariaDB's. PostgreSQL needs none:
/// its lag functions are PUBLIC's, and the tests read the lag as an account
/// granted nothing on the server.
async fn replica_grant(env: &TestEnv) -> Option<String> {
    if env.engine == Engine::Postgres {
        return None;
    }
    let grantee = format!("'{}'@'%'", env.user);
    let printed = env.run(&["check", "--grants", "--grantee", &grantee]).await;
    printed.assert_code(0);
    let prefix = format!("-- GRANT REPLICA MONITOR ON *.* TO {grantee};");
    let line = printed
        .stdout
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no grant for the replicas:\n{}", printed.stdout));
    Some(line["-- ".len()..prefix.len() - 1].to_owned())
}

/// The job's replica URL: its own account, no password (it takes the
/// primary's). As the job describes it, since it holds none.
fn replica_url(replication: &Replication, env: &TestEnv) -> String {
    replication.replica_url(&env.user, &env.database)
}

/// A URL of the engine's scheme for `credentials` on 127.0.0.1:`port`.
fn url_at(engine: Engine, credentials: &str, port: u16, database: &str) -> String {
    let scheme = match engine {
        Engine::MariaDb => "mysql",
        Engine::Postgres => "postgres",
    };
    format!("{scheme}://{credentials}@127.0.0.1:{port}/{database}")
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

/// The job's account, with the primary's password (and on MariaDB the
/// printed grant), reads what the job reads of the replica's state.
async fn the_job_reads_the_lag(replication: &Replication, env: &TestEnv) {
    let url = replication.replica_url_with(&env.user, &env.password, &env.database);
    match env.engine {
        Engine::MariaDb => {
            let mut as_job = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                .await
                .unwrap();
            let status: Vec<mysql_async::Row> = as_job.query("SHOW REPLICA STATUS").await.unwrap();
            assert_eq!(status.len(), 1, "one replication channel");
        }
        Engine::Postgres => {
            let as_job = common::engine::postgres_connect(&url).await;
            let rows = as_job
                .simple_query(
                    "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn() IS NOT NULL, \
                     pg_last_wal_replay_lsn() IS NOT NULL, \
                     pg_last_xact_replay_timestamp() IS NOT NULL, \
                     pg_get_wal_replay_pause_state(), \
                     (SELECT COUNT(*) FROM pg_stat_wal_receiver)",
                )
                .await
                .unwrap();
            let row = rows
                .iter()
                .find_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
                    _ => None,
                })
                .unwrap();
            let values: Vec<&str> = (0..row.len()).map(|i| row.get(i).unwrap()).collect();
            assert_eq!(values, ["t", "t", "t", "t", "not paused", "1"]);
        }
    }
}

async fn the_replica_follows_the_primary_and_falls_behind_when_told(engine: Engine) {
    let (replication, env) = world(engine, 10).await;
    let count = "SELECT COUNT(*) FROM users";
    assert_eq!(replication.replica_number(&env.database, count).await, 10);
    the_job_reads_the_lag(&replication, &env).await;

    // Applying stopped: the replica receives the change and stays where it
    // was.
    replication.stop_applying().await;
    env.sql("DELETE FROM users WHERE id = 1").await;
    replication.wait_until_received().await;
    assert_eq!(replication.replica_number(&env.database, count).await, 10);
    replication.start_applying().await;
    replication.wait_until_caught_up(CATCH_UP).await;
    assert_eq!(replication.replica_number(&env.database, count).await, 9);

    // Held back (a lock on MariaDB, an hour's delay on PostgreSQL): the lag
    // grows until it is released.
    let held = replication.hold_back(&env).await;
    env.sql("UPDATE users SET email = 'locked@example.com' WHERE id = 2")
        .await;
    replication.wait_for_lag(2).await;
    replication.release(held).await;
    replication.wait_until_caught_up(CATCH_UP).await;
    let email = "SELECT COUNT(*) FROM users WHERE email = 'locked@example.com'";
    assert_eq!(replication.replica_number(&env.database, email).await, 1);
    if let Replication::MariaDb(mariadb) = &replication {
        assert_eq!(mariadb.status().await.2, Some(0));
    }

    // A delay: each change waits on the replica before it is applied.
    replication.set_delay(3).await;
    env.sql("DELETE FROM users WHERE id = 2").await;
    replication.wait_for_lag(2).await;
    assert_eq!(replication.replica_number(&env.database, count).await, 9);
    replication.wait_until_caught_up(CATCH_UP).await;
    assert_eq!(replication.replica_number(&env.database, count).await, 8);
    env.cleanup().await;
}

async fn a_stopped_replica_holds_the_erasure_back_and_every_message_stays(engine: Engine) {
    let (replication, env) = world(engine, 20).await;
    env.publish_removals([1, 2, 3]).await;
    replication.stop_applying().await;
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

    replication.start_applying().await;
    env.cleanup().await;
}

async fn a_lagging_replica_makes_the_erasure_wait_then_it_completes(engine: Engine) {
    let (replication, env) = world(engine, 20).await;
    env.publish_removals([1, 2, 3]).await;
    let replica = replica_url(&replication, &env);
    // A change the replica cannot apply while held back: its lag grows from
    // the change's time on (MariaDB), or from its last replayed
    // transaction's (PostgreSQL).
    let held = replication.hold_back(&env).await;
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
    replication.release(held).await;

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
    let count = "SELECT COUNT(*) FROM users";
    assert_eq!(replication.replica_number(&env.database, count).await, 17);
    env.cleanup().await;
}

async fn an_unreachable_replica_is_exit_4_naming_it_and_nothing_is_received(engine: Engine) {
    let env = TestEnv::on(engine, 10).await;
    env.publish_removals([1, 2]).await;
    let port = common::free_port();
    // With the password in it: the line names the replica without it.
    let credentials = format!("{}:{}", env.user, env.password);
    let url = url_at(engine, &credentials, port, &env.database);
    let described = url_at(engine, &env.user, port, &env.database);

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

async fn a_server_that_is_no_replica_is_exit_4_saying_so(engine: Engine) {
    let env = TestEnv::on(engine, 10).await;
    env.publish_removals([1]).await;
    // The shared server, which replicates from nothing, as the replica.
    if let Some(grant) = replica_grant(&env).await {
        env.sql(&grant).await;
    }
    let port = match engine {
        Engine::MariaDb => mysql_async::Opts::from_url(&env.root_url)
            .unwrap()
            .tcp_port(),
        Engine::Postgres => {
            let config: tokio_postgres::Config = env.root_url.parse().unwrap();
            config.get_ports().first().copied().unwrap_or(5432)
        }
    };
    let url = url_at(engine, &env.user, port, &env.database);

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

/// The run that must not wait: the replica's lag counts as 0, so the one
/// round erases all three users without a line saying it waits.
/// `--max-messages 3` ends the run after it, before a second round's wait
/// could see the job's own commit in flight.
async fn assert_no_wait(env: &TestEnv, replica: &str) {
    let run = env
        .run(&[
            "--replica-url",
            replica,
            "--max-replica-lag",
            "1",
            "--max-messages",
            "3",
            "--max-duration",
            "10",
        ])
        .await;
    run.assert_code(0);
    assert!(
        !run.stderr.contains("waiting for replica"),
        "the run waited for the replica:\n{}",
        run.stderr
    );
    assert_eq!(run.count("acked"), 3, "{}", run.stderr);
    assert_eq!(env.users().await, (4..=10).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_postgres_primary_is_no_lag() {
    let (replication, env) = world(Engine::Postgres, 10).await;
    let Replication::Postgres(postgres) = &replication else {
        unreachable!()
    };
    env.publish_removals([1, 2, 3]).await;
    // The last transaction the replica replayed is older than the limit,
    // and it has replayed all it received.
    let idle = "SELECT now() - pg_last_xact_replay_timestamp() > interval '2 s'";
    common::wait::poll_until(
        "the primary to be idle for 2 s",
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || {
            (postgres.replica.text("postgres", idle).await.as_deref() == Some("t")).then_some(())
        },
    )
    .await;
    assert_eq!(postgres.lag().await, Some(0));

    assert_no_wait(&env, &replica_url(&replication, &env)).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_replica_that_replayed_no_transaction_yet_is_no_lag() {
    // The world first, then a replica of it that replays every transaction
    // an hour late: since its start it has replayed none.
    let primary = PrivatePostgres::start(&[]).await;
    let env = Setup::new(10)
        .engine(Engine::Postgres)
        .postgres_root(primary.root_url("postgres"))
        .create()
        .await;
    env.publish_removals([1, 2, 3]).await;
    let replica =
        PrivatePostgres::replica_of(&primary, &["recovery_min_apply_delay=1h".to_owned()]).await;
    let replication = PostgresReplication { primary, replica };
    replication.wait_until_streaming().await;
    // A transaction it receives and does not replay.
    env.sql("UPDATE users SET email = 'late@example.com' WHERE id = 10")
        .await;
    replication.wait_until_received().await;
    let state = "SELECT pg_last_xact_replay_timestamp() IS NULL \
         AND pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()";
    assert_eq!(
        replication.replica.text("postgres", state).await.as_deref(),
        Some("t"),
        "the replica has replayed a transaction, or all it received"
    );

    let replica = replication.replica_url(&env.user, &env.database);
    assert_no_wait(&env, &replica).await;
    env.cleanup().await;
}
