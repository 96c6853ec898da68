//! Issue #18, erasing in chunks, through the real binary on the real emulator
//! and the real MariaDB, and (issue 20) on PostgreSQL 15 where a test runs
//! through [`on_both_engines!`]. No statement touches more than
//! `--chunk-rows` rows, and a user with millions of rows neither fails a
//! batch nor holds it back:
//!
//! - a heavy user (2,000,000 rows in a table the atomic part deletes from)
//!   under `--statement-timeout 3`: the 999 others are erased and acknowledged
//!   in the first run, the heavy one in that run or the next, and nobody
//!   else's row is touched;
//! - a `chunked = true` entry over 300,000 rows: no transaction of the job
//!   ever modifies more than twice `--chunk-rows` rows (on MariaDB a second
//!   connection watches `information_schema.innodb_trx`; on PostgreSQL a
//!   statement trigger counts each transaction's deleted rows), every row is
//!   gone in one run, and the summary counts the committed chunks;
//! - a legal hold on `users` keeps every row of the held user, the chunked
//!   table's included (exit 6); a chunk the database refuses is that user's
//!   refusal (exit 6), with no erasure record;
//! - a SIGKILL between two chunks, or between the atomic part and the first
//!   chunk, loses nothing: the messages stay in the subscription until every
//!   row is gone, and recovery runs finish the erasure;
//! - a chunked redaction over more rows than a chunk (some already NULL)
//!   terminates, and redacts every row once;
//! - `--max-duration` stops a heavy chunked erasure at a chunk boundary (a
//!   chunk held on a locked row past the deadline): the user is carried over
//!   (exit 0, `"carried_over": 1`, the message handed back) and the next run
//!   finishes it; with a refused user as well, exit 6;
//! - a chunked table with a foreign key to a mapped table, or without a
//!   single-column primary key, is exit 4 at connect.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::backlog::quiet_after;
use common::erasure::{lock_table, release, tables};
use common::scratch::MapDir;
use common::wait::until_recovered;
use common::{Engine, Run, TestEnv, decoded, removals, users_refused_in_log};
use mysql_async::prelude::Queryable as _;

// ---------------------------------------------------------------------------
// The world: users, and tables of many rows per user
// ---------------------------------------------------------------------------

/// Adds a table of many rows per user: a key numbered by the server, an
/// index on the user, no foreign key (a chunked entry may have none to a
/// mapped table).
async fn add_rows_table(env: &TestEnv, table: &str) {
    let engine = env.engine;
    env.sql(&engine.create_table(
        table,
        &format!(
            "id {}, user_id {} NOT NULL, payload VARCHAR(20) NOT NULL",
            engine.serial_key(),
            engine.id_type()
        ),
    ))
    .await;
    env.sql(&format!(
        "CREATE INDEX {table}_by_user ON {table} (user_id)"
    ))
    .await;
}

/// The erasure record, as the README creates it.
const RECORD: &str = "erasures";

/// Users 1..=users on `engine` and nothing else: the harness's orders (and
/// their cascade) make way for the tables each test adds.
async fn world(engine: Engine, users: u64) -> TestEnv {
    let env = TestEnv::on(engine, users).await;
    env.sql("DROP TABLE orders").await;
    env
}

/// Adds `rows` rows of `user` to `table`, in one statement, their keys
/// contiguous.
async fn add_rows(env: &TestEnv, table: &str, user: u64, rows: u64) {
    add_rows_each(env, table, (user, user), rows).await;
}

/// Adds `rows` rows to `table` for each user of `users` (a range of ids).
async fn add_rows_each(env: &TestEnv, table: &str, users: (u64, u64), rows: u64) {
    env.sql(&env.engine.insert_rows_each(table, users, rows))
        .await;
}

/// How many rows of `table` each user has (users without any are absent).
async fn per_user(env: &TestEnv, table: &str) -> BTreeMap<u64, u64> {
    env.rows(&format!(
        "SELECT user_id, COUNT(*) FROM {table} GROUP BY user_id ORDER BY user_id"
    ))
    .await
    .iter()
    .map(|row| (row[0].parse().unwrap(), row[1].parse().unwrap()))
    .collect()
}

/// The users the erasure record names.
async fn recorded(env: &TestEnv) -> BTreeSet<u64> {
    env.texts(&format!("SELECT user_id FROM {RECORD}"))
        .await
        .iter()
        .map(|id| id.parse().unwrap())
        .collect()
}

/// Every row of the users table and of `tables`, per user.
#[derive(Debug, Clone, PartialEq)]
struct Rows {
    users: BTreeSet<u64>,
    tables: BTreeMap<String, BTreeMap<u64, u64>>,
}

async fn rows(env: &TestEnv, tables: &[&str]) -> Rows {
    let mut by_table = BTreeMap::new();
    for table in tables {
        by_table.insert(table.to_string(), per_user(env, table).await);
    }
    Rows {
        users: env.users().await.into_iter().collect(),
        tables: by_table,
    }
}

impl Rows {
    /// What erasing `gone` must leave: their rows gone from every table,
    /// everyone else's as they were.
    fn without(&self, gone: &BTreeSet<u64>) -> Rows {
        Rows {
            users: self.users.difference(gone).copied().collect(),
            tables: self
                .tables
                .iter()
                .map(|(table, rows)| {
                    let kept = rows
                        .iter()
                        .filter(|(user, _)| !gone.contains(user))
                        .map(|(user, n)| (*user, *n))
                        .collect();
                    (table.clone(), kept)
                })
                .collect(),
        }
    }

    /// The rows `users` have in `table`.
    fn of(&self, table: &str, users: &BTreeSet<u64>) -> u64 {
        self.tables[table]
            .iter()
            .filter(|(user, _)| users.contains(user))
            .map(|(_, n)| n)
            .sum()
    }
}

fn set(ids: impl IntoIterator<Item = u64>) -> BTreeSet<u64> {
    ids.into_iter().collect()
}

// ---------------------------------------------------------------------------
// Maps
// ---------------------------------------------------------------------------

/// `[[delete]]` of the rows whose `user_id` is the user's.
fn delete(table: &str) -> String {
    format!("[[delete]]\ntable = \"{table}\"\ncolumn = \"user_id\"\n")
}

/// The same, `chunked = true`.
fn chunked(table: &str) -> String {
    format!("{}chunked = true\n", delete(table))
}

/// The users table's entry, the last of every map.
const USERS: &str = "[[delete]]\ntable = \"users\"\ncolumn = \"id\"\n";

fn map(entries: &[String]) -> String {
    entries.join("\n")
}

// ---------------------------------------------------------------------------
// Reading runs
// ---------------------------------------------------------------------------

/// The rows a run's `tables` gives `table` (0 when it does not name it).
fn rows_in(run: &Run, table: &str) -> u64 {
    tables(run)
        .into_iter()
        .find(|(name, _)| name == table)
        .map_or(0, |(_, rows)| rows)
}

/// The log's lines that contain `text`.
fn lines_with<'a>(run: &'a Run, text: &str) -> Vec<&'a str> {
    run.stderr.lines().filter(|l| l.contains(text)).collect()
}

/// Asserts what the summary says of one run: exit `code`, then each field.
fn assert_summary(run: &Run, code: i32, fields: &[(&str, u64)]) {
    run.assert_code(code);
    let wrong: Vec<String> = fields
        .iter()
        .filter(|(field, value)| run.count(field) != *value)
        .map(|(field, value)| format!("{field}: {} (expected {value})", run.count(field)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{}\nsummary: {}\nstderr:\n{}",
        wrong.join("; "),
        run.stdout,
        run.stderr
    );
}

/// A run must end within this, or the test fails with its log: longer than
/// the longest `--max-duration` of these tests.
const RUN_LIMIT: Duration = Duration::from_secs(700);

/// Runs the job to its end (at most [`RUN_LIMIT`]), at the debug level, so
/// that each committed chunk shows in the log.
async fn purge(env: &TestEnv, args: &[&str]) -> Run {
    env.spawn(args, &[("RUST_LOG", "debug")])
        .finish_within(env, RUN_LIMIT)
        .await
}

// ---------------------------------------------------------------------------
// A heavy user in an atomic entry
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_heavy_user_neither_fails_the_batch_nor_holds_back_the_others() {
    // Users 1..=1000 are removed; 1001..=1100 stay. User 1 has 2,000,000
    // events, everyone else 10: one DELETE of them all takes longer than
    // the statement timeout.
    let env = world(Engine::MariaDb, 1_100).await;
    add_rows_table(&env, "events").await;
    env.sql(&env.engine.record_table(RECORD)).await;
    add_rows(&env, "events", 1, 2_000_000).await;
    add_rows_each(&env, "events", (2, 1_100), 10).await;
    let before = rows(&env, &["events"]).await;
    assert_eq!(before.of("events", &set([1])), 2_000_000);
    let removed = set(1..=1_000);
    let others = set(2..=1_000);
    env.publish_removals(removed.iter().copied()).await;

    let maps = MapDir::new();
    let map = maps.write_arg(&map(&[delete("events"), USERS.to_owned()]));
    let args = [
        "--erasure-map",
        map.as_str(),
        "--erasure-record",
        RECORD,
        "--statement-timeout",
        "3",
        // A heavy user of an atomic entry is erased in one transaction, and
        // rolled back when the run's time is up: on two shared cores its
        // 200 chunks take longer than the default 120 s.
        "--max-duration",
        "600",
    ];
    let first = purge(&env, &args).await;
    println!("first run: {}", first.stdout.trim());
    first.assert_code(0);
    assert_eq!(first.count("received"), 1_000);
    assert_eq!(first.count("refused"), 0, "{}", first.stderr);
    let now = rows(&env, &["events"]).await;
    assert_eq!(
        now.of("events", &others),
        0,
        "the 999 light users' events must be gone after the first run"
    );
    assert!(
        now.users.is_disjoint(&others),
        "the 999 light users must be gone after the first run"
    );
    assert!(
        recorded(&env).await.is_superset(&others),
        "the 999 light users must be recorded in the first run"
    );
    let heavy_done = first.count("acked") == 1_000;
    let mut runs = vec![first];
    if !heavy_done {
        let first = &runs[0];
        assert_eq!(
            (first.count("acked"), first.count("carried_over")),
            (999, 1),
            "the light users acknowledged, the heavy one carried over:\n{}",
            first.stderr
        );
        first.assert_logged("user 1 carried over to the next run");
        let second = purge(&env, &args).await;
        println!("second run: {}", second.stdout.trim());
        assert_summary(&second, 0, &[("received", 1), ("acked", 1), ("refused", 0)]);
        runs.push(second);
    }
    let after = rows(&env, &["events"]).await;
    assert_eq!(
        after,
        before.without(&removed),
        "exactly the removed users' rows are gone; every other user's are intact"
    );
    assert_eq!(after.of("events", &set(1_001..=1_100)), 1_000);
    assert_eq!(after.users, set(1_001..=1_100));
    let events: u64 = runs.iter().map(|r| rows_in(r, "events")).sum();
    let users: u64 = runs.iter().map(|r| rows_in(r, "users")).sum();
    assert_eq!(
        (events, users),
        (2_000_000 + 999 * 10, 1_000),
        "the runs' `tables` count each row once"
    );
    assert_eq!(recorded(&env).await, removed);
    assert!(
        env.drain(Duration::from_secs(1)).await.is_empty(),
        "every removal is acknowledged"
    );
    env.cleanup().await;
}

// ---------------------------------------------------------------------------
// A chunked entry: bounded transactions
// ---------------------------------------------------------------------------

/// The most rows any open transaction of the job's user has modified, as
/// `information_schema.innodb_trx` says now (0 when it has none open).
fn largest_transaction(env: &TestEnv) -> String {
    format!(
        "SELECT COALESCE(MAX(t.trx_rows_modified), 0) FROM information_schema.INNODB_TRX t \
         JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
         WHERE p.USER = '{}'",
        env.user
    )
}

on_both_engines!(
    a_chunked_entry_commits_transactions_of_at_most_the_chunk_rows,
    a_user_on_legal_hold_keeps_every_row_the_chunked_ones_included,
    a_chunk_the_database_refuses_is_that_users_refusal,
    a_kill_between_two_chunks_loses_nothing,
    a_chunked_redaction_terminates_and_redacts_every_row,
    a_chunked_table_without_a_key_to_walk_or_with_a_foreign_key_is_exit_4_at_connect,
);

/// What a PostgreSQL test reads of the job's transactions instead of
/// `innodb_trx`: a statement trigger on `table` that writes each DELETE's
/// row count and transaction id into `deletions`, which commits or rolls
/// back with the job's transaction.
async fn count_deletions(env: &TestEnv, table: &str) {
    env.sql("CREATE TABLE deletions (xid BIGINT NOT NULL, rows BIGINT NOT NULL)")
        .await;
    env.sql(
        "CREATE FUNCTION count_deletions() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           INSERT INTO deletions SELECT txid_current(), COUNT(*) FROM gone; \
           RETURN NULL; \
         END $$",
    )
    .await;
    env.sql(&format!(
        "CREATE TRIGGER count_deletions AFTER DELETE ON {table} \
         REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION count_deletions()"
    ))
    .await;
}

/// The most rows one committed transaction deleted, and how many
/// transactions deleted any, as [`count_deletions`] counted them.
async fn largest_deletion(env: &TestEnv) -> (u64, u64) {
    let row = &env
        .rows(
            "SELECT COALESCE(MAX(n), 0), COUNT(*) FROM \
             (SELECT SUM(rows) AS n FROM deletions GROUP BY xid HAVING SUM(rows) > 0) t",
        )
        .await[0];
    (row[0].parse().unwrap(), row[1].parse().unwrap())
}

async fn a_chunked_entry_commits_transactions_of_at_most_the_chunk_rows(engine: Engine) {
    // Users 1, 2 and 3 are removed, with 100,000 activity rows each; 4 and 5
    // stay, with 1,000.
    let env = world(engine, 5).await;
    add_rows_table(&env, "activity").await;
    add_rows_table(&env, "sessions").await;
    env.sql(&engine.record_table(RECORD)).await;
    if engine == Engine::Postgres {
        count_deletions(&env, "activity").await;
    }
    for user in 1..=3 {
        add_rows(&env, "activity", user, 100_000).await;
    }
    add_rows_each(&env, "activity", (4, 5), 1_000).await;
    add_rows_each(&env, "sessions", (1, 5), 2).await;
    let before = rows(&env, &["activity", "sessions"]).await;
    let removed = set([1, 2, 3]);
    env.publish_removals(removed.iter().copied()).await;

    // The chunked entry first in the file: it still runs after the others.
    let maps = MapDir::new();
    let map = maps.write_arg(&map(&[
        chunked("activity"),
        delete("sessions"),
        USERS.to_owned(),
    ]));
    let args = [
        "--erasure-map",
        map.as_str(),
        "--erasure-record",
        RECORD,
        "--chunk-rows",
        "10000",
    ];
    let mut job = env.spawn(&args, &[("RUST_LOG", "debug")]);
    let (mut largest, mut seen) = (0u64, 0u64);
    if engine == Engine::MariaDb {
        let mut watcher = env.own_connection().await;
        let query = largest_transaction(&env);
        let watch = async {
            loop {
                let rows: Option<u64> = watcher.query_first(query.as_str()).await.unwrap();
                let rows = rows.unwrap_or(0);
                largest = largest.max(rows);
                seen += u64::from(rows > 0);
                // InnoDB refreshes what innodb_trx shows only when nobody has
                // read it for 100 ms: a faster poll would read one stale
                // snapshot forever.
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        };
        assert!(
            !job.until(watch).await,
            "the watch ends only when the job does"
        );
    }
    let run = job.finish_within(&env, RUN_LIMIT).await;
    if engine == Engine::Postgres {
        (largest, seen) = largest_deletion(&env).await;
    }
    println!("{}", run.stdout.trim());
    println!("largest transaction: {largest} rows; seen open {seen} times");
    assert_summary(
        &run,
        0,
        &[
            ("received", 3),
            ("acked", 3),
            ("refused", 0),
            ("carried_over", 0),
        ],
    );
    assert!(
        seen > 0,
        "the watch never saw the job's transactions modify a row"
    );
    assert!(
        largest <= 2 * 10_000,
        "a transaction of the job modified {largest} rows, more than twice --chunk-rows"
    );
    assert!(
        run.count("chunks") >= 300_000 / 10_000,
        "300,000 rows in chunks of 10,000 are at least 30 chunks: {}",
        run.stdout
    );
    assert_eq!(rows_in(&run, "activity"), 300_000);
    assert_eq!(rows_in(&run, "sessions"), 6);
    assert_eq!(rows_in(&run, "users"), 3);
    run.assert_logged("erasing the chunked entries of 3 users: activity");
    assert!(
        lines_with(&run, "committed chunk ").len() as u64 >= run.count("chunks"),
        "each committed chunk has its debug line:\n{}",
        run.stderr
    );
    assert_eq!(
        rows(&env, &["activity", "sessions"]).await,
        before.without(&removed),
        "every row of the removed users is gone in one run; the others' are intact"
    );
    assert_eq!(recorded(&env).await, removed);
    assert!(env.drain(Duration::from_secs(1)).await.is_empty());
    env.cleanup().await;
}

// ---------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------

/// Users 1..=6, each with 1,500 rows of `activity` (keys contiguous per
/// user) and 2 of `sessions`, and the erasure record.
async fn held_world(engine: Engine) -> (TestEnv, Rows) {
    let env = world(engine, 6).await;
    add_rows_table(&env, "activity").await;
    add_rows_table(&env, "sessions").await;
    env.sql(&engine.record_table(RECORD)).await;
    add_rows_each(&env, "activity", (1, 6), 1_500).await;
    add_rows_each(&env, "sessions", (1, 6), 2).await;
    let before = rows(&env, &["activity", "sessions"]).await;
    (env, before)
}

/// The map of [`held_world`]: activity chunked, in chunks of 1,000.
fn held_args(maps: &MapDir) -> Vec<String> {
    let map = maps.write_arg(&map(&[
        chunked("activity"),
        delete("sessions"),
        USERS.to_owned(),
    ]));
    [
        "--erasure-map",
        &map,
        "--erasure-record",
        RECORD,
        "--chunk-rows",
        "1000",
    ]
    .map(str::to_owned)
    .to_vec()
}

async fn a_user_on_legal_hold_keeps_every_row_the_chunked_ones_included(engine: Engine) {
    let (env, before) = held_world(engine).await;
    env.sql_all(&engine.refusing_trigger(
        "hold",
        "DELETE",
        "users",
        "OLD.id = 2",
        "legal hold",
        "",
    ))
    .await;
    env.publish_removals([1, 2, 3]).await;
    let maps = MapDir::new();
    let args = held_args(&maps);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let run = purge(&env, &args).await;
    println!("{}", run.stdout.trim());
    assert_summary(
        &run,
        6,
        &[("received", 3), ("acked", 2), ("nacked", 1), ("refused", 1)],
    );
    assert_eq!(run.outcome(), "partially_completed");
    assert_eq!(
        users_refused_in_log(&run.stderr, "users", "legal hold"),
        set([2]),
        "one line must name user 2, the users entry and the reason:\n{}",
        run.stderr
    );
    assert_eq!(rows_in(&run, "activity"), 3_000);
    assert_eq!(rows_in(&run, "users"), 2);
    let after = rows(&env, &["activity", "sessions"]).await;
    assert_eq!(
        after.of("activity", &set([2])),
        1_500,
        "the held user keeps every chunked row"
    );
    assert_eq!(
        after,
        before.without(&set([1, 3])),
        "the held user keeps every row in every table; 1 and 3 are erased"
    );
    assert_eq!(recorded(&env).await, set([1, 3]));
    assert_eq!(
        decoded(&env.drain(Duration::from_secs(1)).await),
        removals([2]),
        "exactly the held user's removal is handed back"
    );
    env.cleanup().await;
}

async fn a_chunk_the_database_refuses_is_that_users_refusal(engine: Engine) {
    let (env, before) = held_world(engine).await;
    env.sql_all(&engine.refusing_trigger(
        "archive",
        "DELETE",
        "activity",
        "OLD.user_id = 3",
        "archive hold",
        "",
    ))
    .await;
    env.publish_removals([1, 2, 3, 4]).await;
    let maps = MapDir::new();
    let args = held_args(&maps);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let run = purge(&env, &args).await;
    println!("{}", run.stdout.trim());
    assert_summary(
        &run,
        6,
        &[("received", 4), ("acked", 3), ("nacked", 1), ("refused", 1)],
    );
    assert_eq!(
        users_refused_in_log(&run.stderr, "activity", "archive hold"),
        set([3]),
        "one line must name user 3, the activity entry and the reason:\n{}",
        run.stderr
    );
    let after = rows(&env, &["activity", "sessions"]).await;
    assert_eq!(
        after.of("activity", &set([3])),
        1_500,
        "the trigger refuses every row of user 3: none can be gone"
    );
    let erased = set([1, 2, 4]);
    assert_eq!(after.of("activity", &erased), 0);
    assert_eq!(
        after.without(&set([3])),
        before.without(&set([1, 2, 3, 4])),
        "1, 2 and 4 are erased; 5 and 6 untouched"
    );
    assert_eq!(
        recorded(&env).await,
        erased,
        "no erasure record for the refused user"
    );
    assert_eq!(
        decoded(&env.drain(Duration::from_secs(1)).await),
        removals([3]),
        "exactly the refused user's removal is handed back"
    );
    env.cleanup().await;
}

// ---------------------------------------------------------------------------
// Kills
// ---------------------------------------------------------------------------

/// Users 1..=20: 1..=5 removed, each with 3,000 activity rows (three chunks
/// of 1,000 each); the others with 100; everyone with 2 sessions.
async fn kill_world(engine: Engine) -> (TestEnv, Rows, BTreeSet<u64>) {
    let env = world(engine, 20).await;
    add_rows_table(&env, "activity").await;
    add_rows_table(&env, "sessions").await;
    env.sql(&engine.record_table(RECORD)).await;
    add_rows_each(&env, "activity", (1, 5), 3_000).await;
    add_rows_each(&env, "activity", (6, 20), 100).await;
    add_rows_each(&env, "sessions", (1, 20), 2).await;
    let before = rows(&env, &["activity", "sessions"]).await;
    let removed = set(1..=5);
    env.publish_removals(removed.iter().copied()).await;
    (env, before, removed)
}

/// The erasure record never runs ahead: each recorded user has no row left.
async fn assert_recorded_only_when_gone(env: &TestEnv) {
    let activity = per_user(env, "activity").await;
    let users: BTreeSet<u64> = env.users().await.into_iter().collect();
    for user in recorded(env).await {
        assert!(
            !activity.contains_key(&user) && !users.contains(&user),
            "user {user} is recorded with rows left: {:?} activity rows",
            activity.get(&user)
        );
    }
}

/// Recovery runs until every removed user is gone, recorded and
/// acknowledged; then the invariant.
async fn recover_and_check(
    env: &TestEnv,
    args: &[&str],
    before: &Rows,
    removed: &BTreeSet<u64>,
    lived: Duration,
) {
    let expected = before.without(removed);
    let runs = until_recovered(
        quiet_after(lived),
        async || {
            let run = purge(env, args).await;
            run.assert_code(0);
            assert_recorded_only_when_gone(env).await;
            run
        },
        async || rows(env, &["activity", "sessions"]).await == expected,
    )
    .await;
    println!("killed after {lived:?}; recovered in {} runs", runs.len());
    assert_eq!(
        rows(env, &["activity", "sessions"]).await,
        expected,
        "every removed user fully erased, nothing else touched"
    );
    assert_eq!(&recorded(env).await, removed);
    assert!(
        env.drain(Duration::from_secs(1)).await.is_empty(),
        "every removal acknowledged, nothing else left"
    );
}

fn kill_args(maps: &MapDir) -> Vec<String> {
    held_args(maps)
}

async fn a_kill_between_two_chunks_loses_nothing(engine: Engine) {
    let (env, before, removed) = kill_world(engine).await;
    let maps = MapDir::new();
    let args = kill_args(&maps);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let mut job = env.spawn(&args, &[("RUST_LOG", "debug")]);
    let started = Instant::now();
    let line = job.wait_for("committed chunk ").await;
    assert!(
        line.is_some(),
        "the job ended before its first chunk:\n{}",
        job.log()
    );
    assert!(job.kill().await, "the job was gone before the kill");
    let lived = started.elapsed();
    env.wait_until_disconnected().await;
    let now = rows(&env, &["activity", "sessions"]).await;
    assert!(
        now.users.is_disjoint(&removed),
        "the atomic part committed before the chunks"
    );
    assert_eq!(now.of("sessions", &removed), 0);
    let left = now.of("activity", &removed);
    assert!(
        left > 0 && left < 15_000,
        "killed between chunks: some chunked rows gone, not all ({left} left)"
    );
    assert_recorded_only_when_gone(&env).await;

    recover_and_check(&env, &args, &before, &removed, lived).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_the_atomic_part_and_the_chunks_loses_nothing() {
    let (env, before, removed) = kill_world(Engine::MariaDb).await;
    let maps = MapDir::new();
    let args = kill_args(&maps);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Every activity row locked: no chunk can commit before the kill.
    let lock = lock_table(&env, "activity").await;
    let mut job = env.spawn(&args, &[("RUST_LOG", "debug")]);
    let started = Instant::now();
    let line = job.wait_for("erasing the chunked entries").await;
    assert!(
        line.is_some(),
        "the job ended before its chunked entries:\n{}",
        job.log()
    );
    assert!(job.kill().await, "the job was gone before the kill");
    let lived = started.elapsed();
    release(lock).await;
    env.wait_until_disconnected().await;
    let now = rows(&env, &["activity", "sessions"]).await;
    assert!(
        now.users.is_disjoint(&removed),
        "the atomic part committed before the chunks"
    );
    assert_eq!(now.of("sessions", &removed), 0);
    assert_eq!(
        now.tables["activity"], before.tables["activity"],
        "no chunk committed"
    );
    assert!(
        recorded(&env).await.is_empty(),
        "nobody is recorded before their chunked rows are gone"
    );

    // The users are gone already: the next runs find them in no atomic
    // table, and must still erase their chunked rows.
    recover_and_check(&env, &args, &before, &removed, lived).await;
    env.cleanup().await;
}

// ---------------------------------------------------------------------------
// A chunked redaction
// ---------------------------------------------------------------------------

async fn a_chunked_redaction_terminates_and_redacts_every_row(engine: Engine) {
    let env = world(engine, 4).await;
    env.sql(&engine.create_table(
        "addresses",
        &format!(
            "id {}, user_id {} NOT NULL, name VARCHAR(40) NOT NULL, address VARCHAR(100) NULL",
            engine.serial_key(),
            engine.id_type()
        ),
    ))
    .await;
    env.sql("CREATE INDEX addresses_by_user ON addresses (user_id)")
        .await;
    // User 1: 5,500 rows (more than five chunks of 1,000), every third with
    // its address already NULL; user 2: 10; users 3 and 4 (who stay): 10.
    let (rows, users) = match engine {
        Engine::MariaDb => ("seq_1_to_5500", "seq_2_to_4 u JOIN seq_1_to_10 r"),
        Engine::Postgres => (
            "generate_series(1, 5500) AS s(seq)",
            "generate_series(2, 4) AS u(seq), generate_series(1, 10) AS r(seq)",
        ),
    };
    env.sql(&format!(
        "INSERT INTO addresses (user_id, name, address) \
         SELECT 1, CONCAT('name ', seq), \
         CASE WHEN seq % 3 = 0 THEN NULL ELSE CONCAT(seq, ' Main Street') END \
         FROM {rows}"
    ))
    .await;
    env.sql(&format!(
        "INSERT INTO addresses (user_id, name, address) \
         SELECT u.seq, CONCAT('name ', r.seq), CONCAT(r.seq, ' Side Street') FROM {users}"
    ))
    .await;
    let kept_query = "SELECT user_id, name, address FROM addresses WHERE user_id > 2 ORDER BY id";
    let kept_before = env.rows(kept_query).await;
    env.publish_removals([1, 2]).await;
    let maps = MapDir::new();
    let map = maps.write_arg(&map(&[
        "[[redact]]\ntable = \"addresses\"\ncolumn = \"user_id\"\nchunked = true\n\
         null = [\"address\"]\nreplace = { name = \"erased user\" }\n"
            .to_owned(),
        USERS.to_owned(),
    ]));
    let args = ["--erasure-map", map.as_str(), "--chunk-rows", "1000"];

    // A redaction leaves its rows in place: a chunk loop that picked "the
    // user's rows" again would never end.
    let run = env
        .spawn(&args, &[("RUST_LOG", "debug")])
        .finish_within(&env, Duration::from_secs(120))
        .await;
    println!("{}", run.stdout.trim());
    assert_summary(&run, 0, &[("received", 2), ("acked", 2), ("refused", 0)]);
    assert_eq!(
        rows_in(&run, "addresses"),
        5_510,
        "every row of users 1 and 2 is redacted once (the NULL addresses still get the name)"
    );
    assert!(run.count("chunks") >= 6, "{}", run.stdout);
    let redacted = env
        .rows(
            "SELECT user_id, COUNT(*), \
             SUM(CASE WHEN name = 'erased user' AND address IS NULL THEN 1 ELSE 0 END) \
             FROM addresses WHERE user_id <= 2 GROUP BY user_id ORDER BY user_id",
        )
        .await;
    assert_eq!(
        redacted,
        [["1", "5500", "5500"], ["2", "10", "10"]],
        "(user, rows, rows redacted): every row stays, and every row is redacted"
    );
    assert_eq!(
        env.rows(kept_query).await,
        kept_before,
        "users 3 and 4's rows are untouched"
    );
    assert_eq!(env.users().await, [3, 4]);
    env.cleanup().await;
}

// ---------------------------------------------------------------------------
// Carried over
// ---------------------------------------------------------------------------

/// User 1's activity rows: 50 chunks of 1,000.
const HEAVY_ROWS: u64 = 50_000;

/// Users 1..=4; user 1 with [`HEAVY_ROWS`] activity rows (keys 1 to
/// 50,000), the others with 10.
async fn carry_world() -> (TestEnv, Rows) {
    let env = world(Engine::MariaDb, 4).await;
    add_rows_table(&env, "activity").await;
    env.sql(&env.engine.record_table(RECORD)).await;
    add_rows(&env, "activity", 1, HEAVY_ROWS).await;
    add_rows_each(&env, "activity", (2, 4), 10).await;
    let before = rows(&env, &["activity"]).await;
    (env, before)
}

/// The first run's `--max-duration`.
const SHORT_RUN: u64 = 10;

fn carry_args(map: &str, max_duration: u64) -> Vec<String> {
    [
        "--erasure-map",
        map,
        "--erasure-record",
        RECORD,
        "--chunk-rows",
        "1000",
        "--max-duration",
        &max_duration.to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs the job with a [`SHORT_RUN`] whose erasure of user 1 cannot be done
/// in time on any machine: a row early in user 1's activity (key 5,000) is
/// locked, and released only once the job's chunk has waited on it for
/// longer than the whole `--max-duration` (as the server's processlist
/// tells). That chunk then commits after the deadline, and the job must
/// stop at the next chunk boundary, with user 1 half done.
async fn run_past_the_deadline(env: &TestEnv, args: &[&str]) -> Run {
    let mut lock = env.own_connection().await;
    lock.query_drop("START TRANSACTION").await.unwrap();
    lock.query_drop("SELECT id FROM activity WHERE id = 5000 FOR UPDATE")
        .await
        .unwrap();
    let mut job = env.spawn(args, &[("RUST_LOG", "debug")]);
    let blocked = format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE DB = '{}' AND USER = '{}' AND INFO LIKE '%activity%' AND TIME_MS > {}",
        env.database,
        env.user,
        SHORT_RUN * 1_000 + 500
    );
    let what = "a chunk of the job to wait on the locked row past --max-duration";
    let waited = job
        .until(env.wait_for_number(what, &blocked, Duration::from_millis(100), |n| n > 0))
        .await;
    assert!(
        waited,
        "the job ended before its chunk reached the locked row:\n{}",
        job.log()
    );
    release(lock).await;
    job.finish_within(env, RUN_LIMIT).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_too_heavy_for_one_run_is_carried_over_to_the_next() {
    let (env, before) = carry_world().await;
    env.publish_removals([1, 2]).await;
    let maps = MapDir::new();
    let map = maps.write_arg(&map(&[chunked("activity"), USERS.to_owned()]));

    let args = carry_args(&map, SHORT_RUN);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = run_past_the_deadline(&env, &args).await;
    println!("first run: {}", first.stdout.trim());
    assert_summary(
        &first,
        0,
        &[
            ("received", 2),
            ("acked", 1),
            ("nacked", 1),
            ("carried_over", 1),
            ("refused", 0),
        ],
    );
    assert_eq!(first.outcome(), "completed");
    assert_eq!(
        lines_with(&first, "carried over to the next run:").len(),
        1,
        "one line for the one carried-over user:\n{}",
        first.stderr
    );
    first.assert_logged("user 1 carried over to the next run: ");
    let now = rows(&env, &["activity"]).await;
    assert_eq!(now.of("activity", &set([2])), 0, "user 2 is erased");
    let left = now.of("activity", &set([1]));
    assert!(
        left > 0 && left <= HEAVY_ROWS - 5_000,
        "user 1's chunks up to the locked row committed, not the rest: {left} rows left"
    );
    assert_eq!(
        first.count("chunks"),
        lines_with(&first, "committed chunk ").len() as u64
    );
    assert_eq!(
        recorded(&env).await,
        set([2]),
        "the carried-over user is not recorded yet"
    );
    assert_eq!(
        decoded(&env.peek(Duration::from_secs(1)).await),
        removals([1]),
        "the carried-over user's message is handed back"
    );

    let args = carry_args(&map, 600);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let second = purge(&env, &args).await;
    println!("second run: {}", second.stdout.trim());
    assert_summary(
        &second,
        0,
        &[
            ("received", 1),
            ("acked", 1),
            ("carried_over", 0),
            ("refused", 0),
        ],
    );
    assert_eq!(
        rows_in(&first, "activity") + rows_in(&second, "activity"),
        HEAVY_ROWS + 10,
        "the two runs' `tables` count each row once"
    );
    assert_eq!(
        rows(&env, &["activity"]).await,
        before.without(&set([1, 2]))
    );
    assert_eq!(recorded(&env).await, set([1, 2]));
    assert!(env.drain(Duration::from_secs(1)).await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_with_refused_and_carried_over_users_exits_6() {
    let (env, before) = carry_world().await;
    env.sql(
        "CREATE TRIGGER hold BEFORE DELETE ON users FOR EACH ROW \
         IF OLD.id = 3 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'legal hold'; END IF",
    )
    .await;
    env.publish_removals([1, 2, 3]).await;
    let maps = MapDir::new();
    let map = maps.write_arg(&map(&[chunked("activity"), USERS.to_owned()]));
    let args = carry_args(&map, SHORT_RUN);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let run = run_past_the_deadline(&env, &args).await;
    println!("{}", run.stdout.trim());
    assert_summary(
        &run,
        6,
        &[
            ("received", 3),
            ("acked", 1),
            ("nacked", 2),
            ("refused", 1),
            ("carried_over", 1),
        ],
    );
    assert_eq!(run.outcome(), "partially_completed");
    run.assert_logged("user 1 carried over to the next run: ");
    assert_eq!(
        users_refused_in_log(&run.stderr, "users", "legal hold"),
        set([3])
    );
    let now = rows(&env, &["activity"]).await;
    assert_eq!(now.of("activity", &set([2])), 0);
    assert!(now.of("activity", &set([1])) > 0);
    assert_eq!(now.tables["activity"][&3], before.tables["activity"][&3]);
    assert!(now.users.contains(&3));
    assert_eq!(recorded(&env).await, set([2]));
    assert_eq!(
        decoded(&env.drain(Duration::from_secs(1)).await),
        removals([1, 3])
    );
    env.cleanup().await;
}

// ---------------------------------------------------------------------------
// Chunked entries the database cannot carry out: exit 4 at connect
// ---------------------------------------------------------------------------

async fn a_chunked_table_without_a_key_to_walk_or_with_a_foreign_key_is_exit_4_at_connect(
    engine: Engine,
) {
    let env = world(engine, 5).await;
    let (key, id) = (engine.serial_key(), engine.id_type());
    env.sql(&engine.create_table(
        "activity",
        &format!(
            "id {key}, user_id {id} NOT NULL, \
             CONSTRAINT activity_user FOREIGN KEY (user_id) REFERENCES users (id)"
        ),
    ))
    .await;
    env.sql(&engine.create_table(
        "visits",
        &format!("user_id {id} NOT NULL, day DATE NOT NULL, PRIMARY KEY (user_id, day)"),
    ))
    .await;
    env.sql(&engine.create_table("clicks", &format!("user_id {id} NOT NULL")))
        .await;
    env.sql("CREATE INDEX clicks_by_user ON clicks (user_id)")
        .await;
    env.sql("INSERT INTO activity (user_id) VALUES (1), (2)")
        .await;
    env.sql("INSERT INTO visits VALUES (1, '2024-01-01'), (1, '2024-01-02')")
        .await;
    env.sql("INSERT INTO clicks VALUES (1), (2)").await;
    env.publish_removals([1, 2]).await;
    let maps = MapDir::new();
    // (what, the chunked table, what its log line must say besides the entry)
    let cases = [
        (
            "a foreign key to the users table",
            "activity",
            "foreign key activity.user_id -> users.id",
        ),
        ("a two-column primary key", "visits", "primary key"),
        ("no primary key", "clicks", "primary key"),
    ];
    let mut failures = Vec::new();
    for (what, table, says) in cases {
        let map = maps.write_arg(&map(&[chunked(table), USERS.to_owned()]));
        let run = env.run(&["--erasure-map", &map]).await;
        if run.code != Some(4) {
            failures.push(format!(
                "{what}: exit {:?}, not 4:\n{}",
                run.code, run.stderr
            ));
            continue;
        }
        for field in ["received", "acked", "deleted_rows"] {
            if run.count(field) != 0 {
                failures.push(format!("{what}: {field} {}", run.count(field)));
            }
        }
        let entry = format!("entry 1 ([[delete]] {table})");
        if !run
            .stderr
            .lines()
            .any(|l| l.contains(&entry) && l.contains(says))
        {
            failures.push(format!(
                "{what}: no line names {entry} and {says:?}:\n{}",
                run.stderr
            ));
        }
    }
    common::assert_no_failures(&failures, cases.len());
    assert_eq!(env.users().await, [1, 2, 3, 4, 5]);
    assert_eq!(per_user(&env, "visits").await[&1], 2);
    assert_eq!(
        decoded(&env.drain(Duration::from_secs(1)).await),
        removals([1, 2]),
        "nothing was received: both messages are still there"
    );
    env.cleanup().await;
}
