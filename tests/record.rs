//! Issue #16, part 1: nothing the job writes, the erasure record included, is
//! ever silently changed by the database. Through the real binary, on the
//! real emulator and MariaDB (and a private MariaDB that runs non-strict):
//!
//! - a record whose `user_id` cannot hold every id of the users table is
//!   exit 4 at connect, naming both columns and their types, before anything
//!   is received; a record that can, records the ids exactly (both on
//!   MariaDB and on PostgreSQL, through [`on_both_engines!`]);
//! - a value `INSERT IGNORE` would change in the record (a message id too
//!   long for its column) rolls the round back: exit 4, the warning named,
//!   nothing erased, recorded or acknowledged;
//! - a `replace` text that does not fit its column is exit 4 at connect,
//!   the rows untouched;
//! - on a server without a strict `sql_mode`, the job's session is strict:
//!   a text its column's character set cannot hold is refused, not stored
//!   with `?` in it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::private::PrivateMariaDb;
use common::scratch::MapDir;
use common::{Engine, Run, Setup, TestEnv, decoded, event_type, removals};
use gcloud_googleapis::pubsub::v1::PubsubMessage;
use mysql_async::prelude::Queryable as _;
use serde_json::Value;
use user_purge::event::encode;

on_both_engines!(
    a_record_too_narrow_for_the_user_ids_is_exit_4_before_anything_is_received,
    a_record_that_holds_every_id_records_each_exactly,
);

/// A user beyond a signed 32-bit column's range (the issue's).
const BIG: u64 = 3_000_000_001;

/// The erasure record on `engine`, with this `user_id` and `message_id` type.
fn record_ddl(engine: Engine, user_id: &str, message_id: &str) -> String {
    engine.create_table(
        "erased",
        &format!(
            "user_id {user_id} NOT NULL PRIMARY KEY, \
             erased_at {} NOT NULL, message_id {message_id} NOT NULL",
            engine.timestamp_type()
        ),
    )
}

/// Publishes a removal for each id, and returns the message ids the emulator
/// gave them, in order.
async fn publish(env: &TestEnv, ids: &[u64]) -> Vec<String> {
    let mut publisher = env.client.topic(&env.topic).new_publisher(None);
    let messages = ids
        .iter()
        .map(|&id| PubsubMessage {
            data: encode(event_type::REMOVED, id),
            ..PubsubMessage::default()
        })
        .collect();
    let mut message_ids = Vec::new();
    for awaiter in publisher.publish_bulk(messages).await {
        message_ids.push(awaiter.get().await.expect("publish failed"));
    }
    publisher.shutdown().await;
    message_ids
}

/// The record's rows: user id (as the column holds it, in text) → message id.
async fn recorded(env: &TestEnv) -> BTreeMap<String, String> {
    let rows = env.rows("SELECT user_id, message_id FROM erased").await;
    rows.into_iter()
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect()
}

/// One column of a table, in the order of `user_id`.
async fn column(env: &TestEnv, table: &str, column: &str) -> Vec<(u64, String)> {
    let mut conn = env.pool().get_conn().await.unwrap();
    conn.query(format!(
        "SELECT user_id, {column} FROM {table} ORDER BY user_id"
    ))
    .await
    .unwrap()
}

/// Runs the job with JSON logs, so that its error line can be read exactly.
async fn purge(env: &TestEnv, args: &[&str]) -> Run {
    env.run_with_env(args, &[("LOG_FORMAT", "json")]).await
}

/// The messages of the run's ERROR records.
fn errors(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|record| record["severity"] == "ERROR")
        .map(|record| record["message"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Asserts a database failure (exit 4) whose summary counts nothing received.
fn assert_nothing_received(run: &Run) {
    run.assert_code(4);
    assert_eq!(run.outcome(), "database_error");
    for field in ["received", "acked", "deleted_rows"] {
        assert_eq!(run.count(field), 0, "{field}: {}", run.stdout);
    }
}

/// A map that redacts `profiles.name` to `text`, then deletes the user.
fn redact_name(text: &str) -> String {
    format!(
        "[[redact]]\ntable = \"profiles\"\ncolumn = \"user_id\"\nreplace = {{ name = {text:?} }}\n\n\
         [[delete]]\ntable = \"users\"\ncolumn = \"id\"\n"
    )
}

/// `profiles (user_id, name)` with this type of `name`, a profile for each
/// of `users`: `n-<id>`.
async fn profiles(env: &TestEnv, name_type: &str, users: &[u64]) {
    env.sql(&format!(
        "CREATE TABLE profiles (user_id BIGINT UNSIGNED NOT NULL PRIMARY KEY, \
         name {name_type} NOT NULL) ENGINE=InnoDB"
    ))
    .await;
    for user in users {
        env.sql(&format!("INSERT INTO profiles VALUES ({user}, 'n-{user}')"))
            .await;
    }
}

/// The profiles' names as [`profiles`] wrote them.
fn names(users: &[u64]) -> Vec<(u64, String)> {
    users.iter().map(|&u| (u, format!("n-{u}"))).collect()
}

async fn a_record_too_narrow_for_the_user_ids_is_exit_4_before_anything_is_received(
    engine: Engine,
) {
    let env = TestEnv::on(engine, 10).await;
    env.sql(&format!(
        "INSERT INTO users VALUES ({BIG}, 'big@example.com')"
    ))
    .await;
    // The mistake: a signed 32-bit user_id for BIGINT users.
    env.sql(&record_ddl(engine, "INT", "VARCHAR(128)")).await;
    publish(&env, &[5, BIG]).await;

    let run = purge(&env, &["--erasure-record", "erased"]).await;
    assert_nothing_received(&run);
    let errors = errors(&run);
    match engine {
        Engine::MariaDb => assert_eq!(
            errors,
            [
                "no message was received; every one stays in the subscription: \
                 the erasure record's `erased`.`user_id` (int(11)) cannot hold every id of \
                 `users`.`id` (bigint(20) unsigned): it holds ids up to 2147483647, that column \
                 up to 18446744073709551615; give user_id a type as wide as `users`.`id`'s; \
                 nothing was received"
            ]
        ),
        // The same sentence; PostgreSQL's names of the types, and no unsigned.
        Engine::Postgres => {
            assert_eq!(errors.len(), 1, "{errors:?}");
            for words in [
                "cannot hold every id of",
                "it holds ids up to 2147483647, that column up to 9223372036854775807",
                "nothing was received",
            ] {
                assert!(errors[0].contains(words), "no {words:?} in {errors:?}");
            }
        }
    }
    let mut everyone: Vec<u64> = (1..=10).collect();
    everyone.push(BIG);
    assert_eq!(env.users().await, everyone);
    assert!(recorded(&env).await.is_empty());
    assert_eq!(
        decoded(&env.drain(Duration::ZERO).await),
        removals([5, BIG]),
        "both messages are still in the subscription"
    );
    env.cleanup().await;
}

async fn a_record_that_holds_every_id_records_each_exactly(engine: Engine) {
    let env = TestEnv::on(engine, 10).await;
    env.sql(&format!(
        "INSERT INTO users VALUES ({BIG}, 'big@example.com')"
    ))
    .await;
    env.sql(&record_ddl(engine, engine.id_type(), "VARCHAR(128)"))
        .await;
    let message_ids = publish(&env, &[5, BIG]).await;

    let run = purge(&env, &["--erasure-record", "erased"]).await;
    run.assert_code(0);
    assert_eq!((run.count("received"), run.count("acked")), (2, 2));
    assert_eq!(run.count("deleted_rows"), 2);
    assert!(errors(&run).is_empty(), "{}", run.stderr);
    assert_eq!(env.users().await, [1, 2, 3, 4, 6, 7, 8, 9, 10]);
    assert_eq!(
        recorded(&env).await,
        BTreeMap::from([
            ("5".to_owned(), message_ids[0].clone()),
            (BIG.to_string(), message_ids[1].clone()),
        ])
    );
    assert!(env.drain(Duration::ZERO).await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_id_the_record_would_truncate_rolls_the_round_back() {
    let env = TestEnv::new(10).await;
    env.sql(&record_ddl(
        Engine::MariaDb,
        "BIGINT UNSIGNED",
        "VARCHAR(3)",
    ))
    .await;
    let message_ids = publish(&env, &[2, 3]).await;
    assert!(
        message_ids.iter().all(|id| id.len() > 3),
        "the emulator's message ids must not fit in 3 characters: {message_ids:?}"
    );

    let run = purge(&env, &["--erasure-record", "erased"]).await;
    run.assert_code(4);
    assert_eq!(run.outcome(), "database_error");
    assert_eq!(
        (
            run.count("received"),
            run.count("acked"),
            run.count("nacked")
        ),
        (2, 0, 2)
    );
    let errors = errors(&run);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(
            "the erasure record erased would not hold what was written (Warning 1265: Data \
             truncated for column 'message_id' at row 1); the round was rolled back"
        ),
        "{errors:?}"
    );
    // Rolled back: the users and their orders are all there, nothing recorded.
    assert_eq!(env.users().await, (1..=10).collect::<Vec<_>>());
    assert_eq!(env.users_with_orders().await, (1..=10).collect::<Vec<_>>());
    assert!(recorded(&env).await.is_empty());
    assert_eq!(
        decoded(&env.drain(Duration::ZERO).await),
        removals([2, 3]),
        "both messages came back"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replace_text_that_does_not_fit_its_column_is_exit_4_at_connect() {
    let env = TestEnv::new(10).await;
    profiles(&env, "VARCHAR(5) CHARACTER SET utf8mb4", &[1, 2, 3]).await;
    env.sql(
        "CREATE TABLE labels (user_id BIGINT UNSIGNED NOT NULL PRIMARY KEY, \
             name VARCHAR(40) CHARACTER SET latin1 NOT NULL) ENGINE=InnoDB",
    )
    .await;
    env.sql("INSERT INTO labels VALUES (1, 'n-1')").await;
    publish(&env, &[1, 2]).await;

    let maps = MapDir::new();
    let too_long = maps.write(&redact_name("erased user"));
    let run = purge(&env, &["--erasure-map", too_long.to_str().unwrap()]).await;
    assert_nothing_received(&run);
    assert_eq!(
        errors(&run),
        [
            "no message was received; every one stays in the subscription: \
             entry 1 ([[redact]] profiles): the replace text of `profiles`.`name` (11 \
             characters) does not fit its type, varchar(5) CHARACTER SET utf8mb4: it holds 5 \
             characters; nothing was received"
        ]
    );

    // latin1 has ö and €, not an arrow.
    let arrow = maps.write(
        "[[redact]]\ntable = \"labels\"\ncolumn = \"user_id\"\nreplace = { name = \"gelöscht € →\" }\n\n\
         [[delete]]\ntable = \"users\"\ncolumn = \"id\"\n",
    );
    let run = purge(&env, &["--erasure-map", arrow.to_str().unwrap()]).await;
    assert_nothing_received(&run);
    assert_eq!(
        errors(&run),
        [
            "no message was received; every one stays in the subscription: \
             entry 1 ([[redact]] labels): the replace text of `labels`.`name` (12 characters) \
             does not fit its type, varchar(40) CHARACTER SET latin1: its character set latin1 \
             cannot hold U+2192; nothing was received"
        ]
    );

    assert_eq!(column(&env, "profiles", "name").await, names(&[1, 2, 3]));
    assert_eq!(column(&env, "labels", "name").await, names(&[1]));
    assert_eq!(env.users().await, (1..=10).collect::<Vec<_>>());
    assert_eq!(decoded(&env.drain(Duration::ZERO).await), removals([1, 2]));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_server_that_is_not_strict_the_session_is() {
    let db = PrivateMariaDb::start(&["--sql-mode=".to_string()]).await;
    let env = Setup::new(10)
        .mysql_root(db.url("root", "", "mysql"))
        .create()
        .await;
    let global: String = {
        let mut conn = env.pool().get_conn().await.unwrap();
        conn.query_first("SELECT @@GLOBAL.sql_mode")
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(global, "", "the server must run without any sql_mode");

    // The measurement: a text too long is caught at connect here too,
    // where the server would have stored 'erase'.
    profiles(&env, "VARCHAR(5) CHARACTER SET utf8mb4", &[1, 2]).await;
    publish(&env, &[1, 2, 3]).await;
    let maps = MapDir::new();
    let too_long = maps.write(&redact_name("erased user"));
    let run = purge(&env, &["--erasure-map", too_long.to_str().unwrap()]).await;
    assert_nothing_received(&run);
    let errors = errors(&run);
    assert!(
        errors.len() == 1 && errors[0].contains("it holds 5 characters; nothing was received"),
        "{errors:?}"
    );
    assert_eq!(column(&env, "profiles", "name").await, names(&[1, 2]));

    // A character set the connect check does not know (greek), and a text
    // it cannot hold. Without the job's strict session the server stores it
    // with '?' for what it lacks, and says so only in a warning:
    env.sql("DROP TABLE profiles").await;
    profiles(&env, "VARCHAR(20) CHARACTER SET greek", &[1, 2]).await;
    let text = "gelöscht →";
    {
        let mut conn = env.pool().get_conn().await.unwrap();
        conn.query_drop("CREATE TABLE scratch LIKE profiles")
            .await
            .unwrap();
        conn.query_drop("INSERT INTO scratch VALUES (1, 'x')")
            .await
            .unwrap();
        conn.query_drop(format!("UPDATE scratch SET name = {text:?}"))
            .await
            .unwrap();
        assert_eq!(conn.get_warnings(), 1);
        let stored: Option<String> = conn.query_first("SELECT name FROM scratch").await.unwrap();
        assert_eq!(stored.as_deref(), Some("gel?scht ?"));
    }
    // The job's session refuses it: users 1 and 2 keep every row, user 3
    // (no profile) is erased, and 1's and 2's messages come back.
    let greek = maps.write(&redact_name(text));
    let run = purge(&env, &["--erasure-map", greek.to_str().unwrap()]).await;
    run.assert_code(6);
    assert_eq!(run.outcome(), "partially_completed");
    assert_eq!(
        (
            run.count("received"),
            run.count("refused"),
            run.count("acked")
        ),
        (3, 2, 1)
    );
    assert_eq!(run.count("deleted_rows"), 1);
    run.assert_logged("error 1366 (SQLSTATE 22007)");
    assert_eq!(column(&env, "profiles", "name").await, names(&[1, 2]));
    assert_eq!(env.users().await, [1, 2, 4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(decoded(&env.drain(Duration::ZERO).await), removals([1, 2]));
    env.cleanup().await;
}
