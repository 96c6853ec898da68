//! Issue #11, the erasure map, through the real binary on the real emulator and
//! the real MariaDB.
//!
//! A realistic schema: `users` and `orders` (ON DELETE CASCADE) from the
//! harness; `sessions` with no foreign key; `invoices` kept for the books and
//! redacted; `profiles` keyed by a string, with look-alike values; a legal
//! document under ON DELETE RESTRICT; `analytics_events`, which the map
//! forgets; and the erasure record. Against it:
//!
//! - a run erases exactly the removed users' rows from every table, in the
//!   map's order and in one transaction, redacts what must be kept, reports
//!   the rows of each entry, and records each erasure once, with the message
//!   that asked;
//! - a user refused by any entry keeps every row in every table;
//! - a bad map, or a map with `--table`/`--id-column`, is exit 2 before
//!   anything is contacted; missing tables and columns, NOT NULL columns set
//!   to NULL, id columns of other types and an unwritable record are exit 4 at
//!   connect, before anything is received;
//! - replacement texts land byte for byte;
//! - a kill between two statements, or a table dropped mid-run, leaves nothing
//!   half-erased; the grants `check --grants` prints are enough to run;
//! - `user-purge check` reports exactly the gaps of a schema.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::backlog::quiet_after;
use common::erasure::{
    counts, finding, findings, grant, grants, id_list, lock_table, release, tables,
};
use common::scratch::MapDir;
use common::stand_ins::{Bad, PASSWORD, StandIns, listener, refuse_all};
use common::wait::until_recovered;
use common::{
    Job, Run, TestEnv, assert_no_failures, decoded, event_type, job_command, removals,
    users_refused_in_log,
};
use mysql_async::prelude::Queryable as _;
use user_purge::event::encode;

// ---------------------------------------------------------------------------
// Erasure maps
// ---------------------------------------------------------------------------

/// One entry of an erasure map.
enum Entry {
    Delete {
        table: &'static str,
        column: &'static str,
    },
    Redact {
        table: &'static str,
        column: &'static str,
        null: Vec<&'static str>,
        replace: Vec<(&'static str, String)>,
    },
}

fn delete(table: &'static str, column: &'static str) -> Entry {
    Entry::Delete { table, column }
}

fn redact(
    table: &'static str,
    column: &'static str,
    null: &[&'static str],
    replace: &[(&'static str, &str)],
) -> Entry {
    Entry::Redact {
        table,
        column,
        null: null.to_vec(),
        replace: replace
            .iter()
            .map(|(column, text)| (*column, text.to_string()))
            .collect(),
    }
}

/// The map as TOML, its entries in this order.
fn toml(entries: &[Entry]) -> String {
    let mut text = String::from("# An erasure map written by tests/erasure_map.rs\n");
    for entry in entries {
        match entry {
            Entry::Delete { table, column } => {
                text.push_str(&format!(
                    "\n[[delete]]\ntable = {}\ncolumn = {}\n",
                    quoted(table),
                    quoted(column)
                ));
            }
            Entry::Redact {
                table,
                column,
                null,
                replace,
            } => {
                text.push_str(&format!(
                    "\n[[redact]]\ntable = {}\ncolumn = {}\n",
                    quoted(table),
                    quoted(column)
                ));
                if !null.is_empty() {
                    let null: Vec<String> = null.iter().map(|c| quoted(c)).collect();
                    text.push_str(&format!("null = [{}]\n", null.join(", ")));
                }
                if !replace.is_empty() {
                    let pairs: Vec<String> = replace
                        .iter()
                        .map(|(column, value)| format!("{} = {}", quoted(column), quoted(value)))
                        .collect();
                    text.push_str(&format!("replace = {{ {} }}\n", pairs.join(", ")));
                }
            }
        }
    }
    text
}

/// A TOML basic string: every character as itself but `"`, `\` and control
/// characters, which are escaped (so the string stays on one line).
fn quoted(value: &str) -> String {
    let mut out = String::from('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

// ---------------------------------------------------------------------------
// The realistic schema
// ---------------------------------------------------------------------------

/// Users 1..=USERS, each with one order (the harness's table and cascade).
const USERS: u64 = 40;

/// The user with a legal document under ON DELETE RESTRICT.
const HELD: u64 = 7;

/// The erasure record's table.
const RECORD: &str = "erasure_record";

const RECORD_DDL: &str = "CREATE TABLE erasure_record ( \
    user_id BIGINT UNSIGNED NOT NULL PRIMARY KEY, \
    erased_at DATETIME(3) NOT NULL, \
    message_id VARCHAR(128) NOT NULL) ENGINE=InnoDB";

/// What a redacted invoice's name becomes.
const ERASED_NAME: &str = "erased user";

/// Look-alikes of user `k`'s string id in `profiles`: none of them is `k`.
fn lookalikes(k: u64) -> [String; 6] {
    [
        format!("0{k}"),
        format!("{k}abc"),
        format!(" {k}"),
        format!("{k} "),
        format!("{k}.0"),
        format!("+{k}"),
    ]
}

/// The realistic schema, in a new test world. User `k` has `k % 3` sessions
/// and `k % 4` invoices (so some have none); every user has a profile and
/// six look-alike profiles (`01`, `1abc`, ` 1`, `1 `, `1.0`, `+1` for user
/// 1); one guest invoice has no customer; user [`HELD`] has a legal document.
async fn realistic() -> TestEnv {
    let env = TestEnv::new(USERS).await;
    env.sql(
        "CREATE TABLE sessions (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
         user_id BIGINT UNSIGNED NOT NULL, token VARCHAR(64) NOT NULL, \
         INDEX by_user (user_id, token)) ENGINE=InnoDB",
    )
    .await;
    // customer_id is indexed only as the second column of an index, so
    // `check` must call it unindexed.
    env.sql(
        "CREATE TABLE invoices (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
         customer_id BIGINT UNSIGNED NULL, email VARCHAR(100) NULL, phone VARCHAR(30) NULL, \
         billing_name VARCHAR(100) NOT NULL, total_cents BIGINT NOT NULL, \
         INDEX by_total (total_cents, customer_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )
    .await;
    env.sql(
        "CREATE TABLE profiles (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
         uid VARCHAR(20) NOT NULL, display_name VARCHAR(50) NOT NULL, \
         INDEX by_uid (uid)) ENGINE=InnoDB",
    )
    .await;
    env.sql(
        "CREATE TABLE legal_docs (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
         user_id BIGINT UNSIGNED NOT NULL, title VARCHAR(50) NOT NULL, \
         FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE RESTRICT) ENGINE=InnoDB",
    )
    .await;
    env.sql(
        "CREATE TABLE analytics_events (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
         user_id BIGINT UNSIGNED NOT NULL, kind VARCHAR(20) NOT NULL) ENGINE=InnoDB",
    )
    .await;
    env.sql(RECORD_DDL).await;

    let mut sessions = Vec::new();
    let mut invoices = vec!["(NULL, 'guest@example.com', NULL, 'Guest', 999)".to_owned()];
    let mut profiles = Vec::new();
    let mut events = Vec::new();
    for k in 1..=USERS {
        for i in 0..k % 3 {
            sessions.push(format!("({k}, 'tok-{k}-{i}')"));
        }
        for i in 0..k % 4 {
            let email = if k == 2 && i == 0 {
                "NULL".to_owned()
            } else {
                format!("'user{k}@example.com'")
            };
            let phone = if k % 5 == 0 {
                "NULL".to_owned()
            } else {
                format!("'+1-555-{k:04}'")
            };
            invoices.push(format!(
                "({k}, {email}, {phone}, 'Customer {k}', {})",
                k * 100 + i
            ));
        }
        profiles.push(format!("('{k}', 'Profile {k}')"));
        for lookalike in lookalikes(k) {
            profiles.push(format!("('{lookalike}', 'Not user {k}')"));
        }
        events.push(format!("({k}, 'login')"));
    }
    env.sql(&format!(
        "INSERT INTO sessions (user_id, token) VALUES {}",
        sessions.join(",")
    ))
    .await;
    env.sql(&format!(
        "INSERT INTO invoices (customer_id, email, phone, billing_name, total_cents) VALUES {}",
        invoices.join(",")
    ))
    .await;
    env.sql(&format!(
        "INSERT INTO profiles (uid, display_name) VALUES {}",
        profiles.join(",")
    ))
    .await;
    env.sql(&format!(
        "INSERT INTO analytics_events (user_id, kind) VALUES {}",
        events.join(",")
    ))
    .await;
    env.sql(&format!(
        "INSERT INTO legal_docs (user_id, title) VALUES ({HELD}, 'contract')"
    ))
    .await;
    env
}

/// The map over the realistic schema: children first, invoices redacted
/// between two deletes (so the file order of [[delete]] and [[redact]] shows).
fn full_map() -> Vec<Entry> {
    vec![
        delete("sessions", "user_id"),
        redact(
            "invoices",
            "customer_id",
            &["email", "phone"],
            &[("billing_name", ERASED_NAME)],
        ),
        delete("profiles", "uid"),
        delete("users", "id"),
    ]
}

type Invoice = (
    u64,
    Option<u64>,
    Option<String>,
    Option<String>,
    String,
    i64,
);

/// Every row of every table of the realistic schema but the record, by id.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    users: Vec<(u64, String)>,
    orders: Vec<(u64, u64)>,
    sessions: Vec<(u64, u64, String)>,
    invoices: Vec<Invoice>,
    profiles: Vec<(u64, String, String)>,
    legal_docs: Vec<(u64, u64, String)>,
    analytics_events: Vec<(u64, u64, String)>,
}

async fn snapshot(env: &TestEnv) -> Snapshot {
    snapshot_with(env, true).await
}

/// A snapshot, with `invoices` left empty when `invoices` is false (the
/// table was dropped).
async fn snapshot_with(env: &TestEnv, invoices: bool) -> Snapshot {
    let mut conn = env.pool().get_conn().await.unwrap();
    Snapshot {
        users: conn
            .query("SELECT id, email FROM users ORDER BY id")
            .await
            .unwrap(),
        orders: conn
            .query("SELECT id, user_id FROM orders ORDER BY id")
            .await
            .unwrap(),
        sessions: conn
            .query("SELECT id, user_id, token FROM sessions ORDER BY id")
            .await
            .unwrap(),
        invoices: if invoices {
            conn.query(
                "SELECT id, customer_id, email, phone, billing_name, total_cents \
                 FROM invoices ORDER BY id",
            )
            .await
            .unwrap()
        } else {
            Vec::new()
        },
        profiles: conn
            .query("SELECT id, uid, display_name FROM profiles ORDER BY id")
            .await
            .unwrap(),
        legal_docs: conn
            .query("SELECT id, user_id, title FROM legal_docs ORDER BY id")
            .await
            .unwrap(),
        analytics_events: conn
            .query("SELECT id, user_id, kind FROM analytics_events ORDER BY id")
            .await
            .unwrap(),
    }
}

impl Snapshot {
    /// What the full map must leave after erasing these users: their rows
    /// gone from users, orders (by the cascade), sessions and profiles (the
    /// exact string id only), their invoices kept with email and phone NULL
    /// and the name replaced; every other row as it was.
    fn erased(&self, users: &BTreeSet<u64>) -> Snapshot {
        let names: BTreeSet<String> = users.iter().map(u64::to_string).collect();
        Snapshot {
            users: self
                .users
                .iter()
                .filter(|(id, _)| !users.contains(id))
                .cloned()
                .collect(),
            orders: self
                .orders
                .iter()
                .filter(|(_, user)| !users.contains(user))
                .cloned()
                .collect(),
            sessions: self
                .sessions
                .iter()
                .filter(|(_, user, _)| !users.contains(user))
                .cloned()
                .collect(),
            invoices: self
                .invoices
                .iter()
                .map(|invoice| match invoice.1 {
                    Some(customer) if users.contains(&customer) => (
                        invoice.0,
                        invoice.1,
                        None,
                        None,
                        ERASED_NAME.to_owned(),
                        invoice.5,
                    ),
                    _ => invoice.clone(),
                })
                .collect(),
            profiles: self
                .profiles
                .iter()
                .filter(|(_, uid, _)| !names.contains(uid))
                .cloned()
                .collect(),
            legal_docs: self.legal_docs.clone(),
            analytics_events: self.analytics_events.clone(),
        }
    }

    /// The rows each entry of the full map affects when erasing these users,
    /// in map order: the summary's `tables`.
    fn affected(&self, users: &BTreeSet<u64>) -> Vec<(String, u64)> {
        let names: BTreeSet<String> = users.iter().map(u64::to_string).collect();
        let count = |n: usize| n as u64;
        vec![
            (
                "sessions".to_owned(),
                count(
                    self.sessions
                        .iter()
                        .filter(|(_, user, _)| users.contains(user))
                        .count(),
                ),
            ),
            (
                "invoices".to_owned(),
                count(
                    self.invoices
                        .iter()
                        .filter(|invoice| invoice.1.is_some_and(|c| users.contains(&c)))
                        .count(),
                ),
            ),
            (
                "profiles".to_owned(),
                count(
                    self.profiles
                        .iter()
                        .filter(|(_, uid, _)| names.contains(uid))
                        .count(),
                ),
            ),
            (
                "users".to_owned(),
                count(
                    self.users
                        .iter()
                        .filter(|(id, _)| users.contains(id))
                        .count(),
                ),
            ),
        ]
    }
}

/// The erasure record: user id → (message id, `erased_at` in milliseconds
/// since the epoch, the column read as UTC).
async fn record(env: &TestEnv) -> BTreeMap<u64, (String, i64)> {
    let mut conn = env.pool().get_conn().await.unwrap();
    let rows: Vec<(u64, String, i64)> = conn
        .query(
            "SELECT user_id, message_id, \
             TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', erased_at) DIV 1000 \
             FROM erasure_record",
        )
        .await
        .unwrap();
    rows.into_iter()
        .map(|(user, message, at)| (user, (message, at)))
        .collect()
}

/// Now, in milliseconds since the epoch (UTC).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Asserts that the erasure record holds exactly one row per erased user,
/// naming a message that asked for that user (the one, when one asked), with
/// a time within the runs' window.
async fn assert_record(
    env: &TestEnv,
    published: &Published,
    erased: &BTreeSet<u64>,
    (from, to): (i64, i64),
) {
    let record = record(env).await;
    assert_eq!(
        &record.keys().copied().collect::<BTreeSet<u64>>(),
        erased,
        "the erasure record must have one row for each erased user and no other: {record:?}"
    );
    for (user, (message, at)) in &record {
        let asked = &published.asked[user];
        assert!(
            asked.contains(message),
            "user {user}'s record names message {message:?}, not one that asked for the user \
             ({asked:?})"
        );
        assert!(
            (from..=to).contains(at),
            "user {user} was recorded as erased at {at} ms since the epoch (UTC), outside the \
             run's window {from}..={to}"
        );
    }
}

// ---------------------------------------------------------------------------
// Publishing and running
// ---------------------------------------------------------------------------

/// What a test published: every payload, and for each removed user the ids
/// of the messages that asked for the removal.
struct Published {
    payloads: Vec<Vec<u8>>,
    asked: BTreeMap<u64, BTreeSet<String>>,
    malformed: Vec<Vec<u8>>,
}

impl Published {
    fn removed(&self) -> BTreeSet<u64> {
        self.asked.keys().copied().collect()
    }
}

/// Publishes a removal for each of `removals` (repeat an id for a
/// duplicate), then the other valid events, then the malformed payloads,
/// and keeps the message ids the emulator gave them.
async fn publish_events(
    env: &TestEnv,
    removals: &[u64],
    others: &[(i32, u64)],
    malformed: &[Vec<u8>],
) -> Published {
    let mut payloads: Vec<Vec<u8>> = removals
        .iter()
        .map(|&id| encode(event_type::REMOVED, id))
        .collect();
    payloads.extend(others.iter().map(|&(kind, id)| encode(kind, id)));
    payloads.extend(malformed.iter().cloned());
    let ids = env.publish(payloads.clone()).await;
    let mut asked: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for (&user, id) in removals.iter().zip(&ids) {
        asked.entry(user).or_default().insert(id.clone());
    }
    Published {
        payloads,
        asked,
        malformed: malformed.to_vec(),
    }
}

/// Two kinds of malformed message: a removal of user 0, and bytes that are
/// not a protobuf.
fn malformed() -> Vec<Vec<u8>> {
    vec![encode(event_type::REMOVED, 0), vec![0xff, 0xfe, 0x01]]
}

fn sorted(mut payloads: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    payloads.sort();
    payloads
}

/// The settings of issue #11 a run must not inherit from the test's environment.
const NEW_VARIABLES: [&str; 2] = ["ERASURE_MAP", "ERASURE_RECORD"];

/// The job's command against this test's world, with these arguments and
/// variables on top.
fn command(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = env.command(args, &[]);
    for key in NEW_VARIABLES {
        command.env_remove(key);
    }
    for (key, value) in vars {
        command.env(key, value);
    }
    command
}

async fn run(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> Run {
    env.checked(command(env, args, vars).output().await.unwrap())
}

/// The arguments of a run with this map and the erasure record.
fn with_map(map: &Path) -> [&str; 4] {
    ["--erasure-map", path_str(map), "--erasure-record", RECORD]
}

// ---------------------------------------------------------------------------
// The database side
// ---------------------------------------------------------------------------

/// Logs, in a MyISAM table that no rollback undoes, the table of each row
/// the job deletes or updates, in order.
async fn log_statements(env: &TestEnv) {
    env.sql(
        "CREATE TABLE statement_log (seq INT AUTO_INCREMENT PRIMARY KEY, \
         tbl VARCHAR(64) NOT NULL) ENGINE=MyISAM",
    )
    .await;
    for (table, event) in [
        ("sessions", "DELETE"),
        ("invoices", "UPDATE"),
        ("profiles", "DELETE"),
        ("users", "DELETE"),
    ] {
        env.sql(&format!(
            "CREATE TRIGGER log_{table} AFTER {event} ON {table} FOR EACH ROW \
             INSERT INTO statement_log (tbl) VALUES ('{table}')"
        ))
        .await;
    }
}

/// The tables the job changed, in the order it changed them, each run of
/// rows of one table once.
async fn statement_order(env: &TestEnv) -> Vec<String> {
    let mut conn = env.pool().get_conn().await.unwrap();
    let mut tables: Vec<String> = conn
        .query("SELECT tbl FROM statement_log ORDER BY seq")
        .await
        .unwrap();
    tables.dedup();
    tables
}

// ---------------------------------------------------------------------------
// A run with the map
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_map_erases_exactly_the_removed_users_in_every_table_in_order() {
    let env = realistic().await;
    log_statements(&env).await;
    let maps = MapDir::new();
    let map = maps.write(&toml(&full_map()));
    let before = snapshot(&env).await;
    // Users with and without sessions and invoices; 2 and 5 twice; other
    // events for users who stay, and for one who goes; malformed messages,
    // one of them naming user 8.
    let published = publish_events(
        &env,
        &[1, 2, 5, 10, 11, 12, 13, 22, 34, 2, 5],
        &[
            (event_type::CREATED, 3),
            (event_type::CHANGED, 4),
            (event_type::ACCESS_CHANGED, 6),
            (event_type::CHANGED, 1),
        ],
        &[
            encode(event_type::REMOVED, 0),
            encode(event_type::UNSPECIFIED, 8),
            vec![0xff, 0xfe, 0x01],
        ],
    )
    .await;
    let erased = published.removed();

    let from = now_ms();
    let run = run(&env, &with_map(&map), &[]).await;
    let to = now_ms();
    println!("{}", run.stdout.trim());
    run.assert_code(0);
    assert_eq!(run.outcome(), "completed");
    assert_eq!(run.count("received"), 18);
    assert_eq!(run.count("removed_ids"), 9);
    assert_eq!(run.count("ignored"), 4);
    assert_eq!(run.count("malformed"), 3);
    assert_eq!(run.count("acked"), 15);
    assert_eq!(run.count("nacked"), 3);
    assert_eq!(run.count("refused"), 0);
    let expected_tables = before.affected(&erased);
    assert!(
        expected_tables.iter().all(|(_, n)| *n > 0),
        "every entry must have rows to erase: {expected_tables:?}"
    );
    assert_eq!(
        tables(&run),
        expected_tables,
        "`tables` must give each entry's rows, in map order"
    );
    assert_eq!(
        run.count("deleted_rows"),
        9,
        "deleted_rows is the last entry's (users)"
    );

    let after = snapshot(&env).await;
    let expected = before.erased(&erased);
    assert_eq!(after.users, expected.users, "users");
    assert_eq!(after.orders, expected.orders, "orders (the cascade)");
    assert_eq!(after.sessions, expected.sessions, "sessions");
    assert_eq!(
        after.invoices, expected.invoices,
        "invoices: the erased users' rows kept, email and phone NULL, the name replaced"
    );
    assert_eq!(
        after.profiles, expected.profiles,
        "profiles: exactly the string ids of the erased users, no look-alike"
    );
    assert_eq!(after, expected);
    assert_eq!(
        statement_order(&env).await,
        ["sessions", "invoices", "profiles", "users"],
        "the entries must run in the file's order, each once"
    );
    assert_record(&env, &published, &erased, (from, to)).await;
    assert_eq!(
        sorted(env.drain(Duration::from_secs(1)).await),
        sorted(published.malformed.clone()),
        "only the malformed messages may be left"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_map_one_table_is_erased_and_reported() {
    let env = TestEnv::new(10).await;
    env.sql(RECORD_DDL).await;
    let published = publish_events(&env, &[2, 3, 5], &[], &[]).await;

    let from = now_ms();
    let run = run(&env, &["--erasure-record", RECORD], &[]).await;
    let to = now_ms();
    run.assert_code(0);
    assert_eq!(run.count("deleted_rows"), 3);
    assert_eq!(tables(&run), counts(&[("users", 3)]));
    let kept = [1, 4, 6, 7, 8, 9, 10];
    assert_eq!(env.users().await, kept);
    assert_eq!(env.users_with_orders().await, kept);
    assert_record(&env, &published, &BTreeSet::from([2, 3, 5]), (from, to)).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_refused_by_any_entry_keeps_every_row_in_every_table() {
    let env = realistic().await;
    // User 5 is refused by the first entry (a legal hold on sessions), user
    // HELD by the last (its legal document, ON DELETE RESTRICT); both have
    // rows in the entries before and after the refusing one.
    env.sql(
        "CREATE TRIGGER sessions_hold BEFORE DELETE ON sessions FOR EACH ROW \
         IF OLD.user_id = 5 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'legal hold'; END IF",
    )
    .await;
    let maps = MapDir::new();
    let map = maps.write(&toml(&full_map()));
    let before = snapshot(&env).await;
    let published = publish_events(&env, &[1, 2, 5, HELD, 10, 13], &[], &[]).await;
    let refused = BTreeSet::from([5, HELD]);
    let erased: BTreeSet<u64> = published.removed().difference(&refused).copied().collect();

    let from = now_ms();
    let run = run(&env, &with_map(&map), &[]).await;
    let to = now_ms();
    println!("{}", run.stdout.trim());
    run.assert_code(6);
    assert_eq!(run.outcome(), "partially_completed");
    assert_eq!(run.count("refused"), 2);
    assert_eq!((run.count("received"), run.count("acked")), (6, 4));
    assert_eq!(
        run.count("nacked"),
        2,
        "the refused users' messages are handed back"
    );
    assert_eq!(
        tables(&run),
        before.affected(&erased),
        "`tables` counts what was committed"
    );
    assert_eq!(run.count("deleted_rows"), 4);
    assert_eq!(
        users_refused_in_log(&run.stderr, "sessions", "legal hold"),
        BTreeSet::from([5]),
        "one line must name user 5, the sessions entry and the reason:\n{}",
        run.stderr
    );
    assert_eq!(
        users_refused_in_log(&run.stderr, "users", "foreign key constraint fails"),
        BTreeSet::from([HELD]),
        "one line must name user {HELD}, the users entry and the reason:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("@example.com"),
        "row contents leaked into the log"
    );

    let after = snapshot(&env).await;
    assert_eq!(
        after,
        before.erased(&erased),
        "the refused users' rows must be untouched in every table, the others' erased"
    );
    assert_record(&env, &published, &erased, (from, to)).await;
    assert_eq!(
        decoded(&env.drain(Duration::from_secs(1)).await),
        removals(refused.iter().copied()),
        "exactly the refused users' removals are handed back"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replacement_texts_land_byte_for_byte() {
    const TEXTS: [&str; 4] = [
        r#"O'Brien "x" \ ; DROP TABLE users; --"#,
        r#"'); DELETE FROM users; -- \' \" \0 \Z \n %_ `id` $1 ?"#,
        "line one\nline two\ttab\r\u{1}end",
        "Zoë Ørsted 李 😀 \u{a0}",
    ];
    let env = TestEnv::new(3).await;
    env.sql(
        "CREATE TABLE contacts (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
         user_id BIGINT UNSIGNED NOT NULL, a VARCHAR(200) NOT NULL, b TEXT NOT NULL, \
         c VARCHAR(200) NULL, d VARCHAR(200) NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )
    .await;
    env.sql(
        "INSERT INTO contacts (user_id, a, b, c, d) VALUES \
         (1,'a1','b1','c1','d1'), (2,'a2','b2','c2','d2'), (3,'a3','b3','c3','d3')",
    )
    .await;
    let maps = MapDir::new();
    let map = maps.write(&toml(&[
        redact(
            "contacts",
            "user_id",
            &[],
            &[
                ("a", TEXTS[0]),
                ("b", TEXTS[1]),
                ("c", TEXTS[2]),
                ("d", TEXTS[3]),
            ],
        ),
        delete("users", "id"),
    ]));
    env.publish_removals([2]).await;

    let run = run(&env, &["--erasure-map", path_str(&map)], &[]).await;
    run.assert_code(0);
    assert_eq!(tables(&run), counts(&[("contacts", 1), ("users", 1)]));
    let mut conn = env.pool().get_conn().await.unwrap();
    // user id, a, b, c, d: as bytes.
    type Contact = (u64, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);
    let rows: Vec<Contact> = conn
        .query("SELECT user_id, a, b, c, d FROM contacts ORDER BY user_id")
        .await
        .unwrap();
    drop(conn);
    let text = |s: &str| s.as_bytes().to_vec();
    let expected = vec![
        (1, text("a1"), text("b1"), text("c1"), text("d1")),
        (
            2,
            text(TEXTS[0]),
            text(TEXTS[1]),
            text(TEXTS[2]),
            text(TEXTS[3]),
        ),
        (3, text("a3"), text("b3"), text("c3"), text("d3")),
    ];
    for (row, want) in rows.iter().zip(&expected) {
        assert_eq!(
            row,
            want,
            "user {}'s contact is not byte for byte what the map says:\n{:?}\n{:?}",
            want.0,
            (
                String::from_utf8_lossy(&row.1),
                String::from_utf8_lossy(&row.2),
                String::from_utf8_lossy(&row.3),
                String::from_utf8_lossy(&row.4)
            ),
            TEXTS
        );
    }
    assert_eq!(rows.len(), 3);
    assert_eq!(env.users().await, [1, 3]);
    assert_eq!(env.users_with_orders().await, [1, 3]);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_is_recorded_once_and_a_second_removal_adds_nothing() {
    let env = TestEnv::new(5).await;
    env.sql(RECORD_DDL).await;
    let maps = MapDir::new();
    let map = maps.write(&toml(&[delete("users", "id")]));
    let first = publish_events(&env, &[3], &[], &[]).await;
    let from = now_ms();
    let run1 = run(&env, &with_map(&map), &[]).await;
    run1.assert_code(0);
    assert_eq!(run1.count("deleted_rows"), 1);
    assert_record(&env, &first, &BTreeSet::from([3]), (from, now_ms())).await;
    let recorded = record(&env).await[&3].clone();

    // The same removal again (a new message), and a new one.
    let second = publish_events(&env, &[3, 4], &[], &[]).await;
    let from4 = now_ms();
    let run2 = run(&env, &with_map(&map), &[]).await;
    let to4 = now_ms();
    run2.assert_code(0);
    assert_eq!(run2.outcome(), "completed");
    assert_eq!(run2.count("acked"), 2);
    assert_eq!(run2.count("deleted_rows"), 1);
    let record = record(&env).await;
    assert_eq!(
        record.keys().copied().collect::<Vec<_>>(),
        [3, 4],
        "one row per user: {record:?}"
    );
    assert_eq!(
        record[&3], recorded,
        "the first erasure stays: message id and time unchanged"
    );
    let (message, at) = &record[&4];
    assert!(second.asked[&4].contains(message), "{record:?}");
    assert!((from4..=to4).contains(at), "{record:?}");
    assert_eq!(env.users().await, [1, 2, 5]);
    env.cleanup().await;
}

// ---------------------------------------------------------------------------
// Bad maps and conflicting settings: exit 2, nothing contacted
// ---------------------------------------------------------------------------

/// A map file with this text, given by --erasure-map: the error line must
/// name the file.
fn bad_map(maps: &MapDir, what: &str, text: &str) -> Bad {
    let path = maps.write(text);
    let path = path_str(&path);
    Bad::new(what).arg("--erasure-map").arg(path).names(&[path])
}

const SESSIONS_ENTRY: &str = "[[delete]]\ntable = \"sessions\"\ncolumn = \"user_id\"\n";
const INVOICES_ENTRY: &str =
    "[[redact]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\nnull = [\"email\"]\n";
const USERS_ENTRY: &str = "[[delete]]\ntable = \"users\"\ncolumn = \"id\"\n";

/// The words an error line may use to say the same column comes twice.
const TWICE: &[&str] = &["twice", "duplicate", "already", "more than once", "entry 1"];

/// The words an error line may use to say a redact sets nothing.
const SETS_NOTHING: &[&str] = &["nothing", "at least one", "no column", "sets no"];

#[tokio::test]
async fn a_bad_map_is_exit_2_naming_the_file_the_entry_and_the_problem() {
    let stand_ins = StandIns::new();
    let maps = MapDir::new();
    let m = &maps;
    let mut cases = vec![
        // Unknown keys. Entries are numbered in file order across [[delete]]
        // and [[redact]]: the third entry is the second [[delete]].
        bad_map(
            m,
            "an unknown key in an entry",
            &format!(
                "{SESSIONS_ENTRY}\n{INVOICES_ENTRY}\n[[delete]]\ntable = \"profiles\"\n\
                 colunm = \"uid\"\n\n{USERS_ENTRY}"
            ),
        )
        .entry(3)
        .names(&["profiles"])
        .names(&["colunm"]),
        bad_map(
            m,
            "an unknown key in a redact",
            &format!(
                "{SESSIONS_ENTRY}\n[[redact]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\n\
                 nullify = [\"email\"]\n\n{USERS_ENTRY}"
            ),
        )
        .entry(2)
        .names(&["invoices"])
        .names(&["nullify"]),
        bad_map(
            m,
            "an unknown kind of entry",
            &format!("{SESSIONS_ENTRY}\n[[wipe]]\ntable = \"users\"\ncolumn = \"id\"\n"),
        )
        .names(&["wipe"]),
        // No entries.
        bad_map(m, "an empty file", "").names(&["no entr", "empty", "at least one"]),
        bad_map(m, "only comments", "# to do: list the tables\n").names(&[
            "no entr",
            "empty",
            "at least one",
        ]),
        // Identifiers that are not plain.
        bad_map(
            m,
            "a table that is not an identifier",
            &format!("[[delete]]\ntable = \"users; DROP\"\ncolumn = \"id\"\n\n{USERS_ENTRY}"),
        )
        .entry(1)
        .names(&["users; DROP"]),
        bad_map(
            m,
            "a column that is not an identifier",
            &format!(
                "{INVOICES_ENTRY}\n[[delete]]\ntable = \"sessions\"\ncolumn = \"user_id`\"\n\n\
                 {USERS_ENTRY}"
            ),
        )
        .entry(2)
        .names(&["sessions"])
        .names(&["user_id`"]),
        bad_map(
            m,
            "a nulled column that is not an identifier",
            &format!(
                "[[redact]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\n\
                 null = [\"e mail\"]\n\n{USERS_ENTRY}"
            ),
        )
        .entry(1)
        .names(&["invoices"])
        .names(&["e mail"]),
        bad_map(
            m,
            "a replaced column that is not an identifier",
            &format!(
                "[[redact]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\n\
                 replace = {{ \"name;--\" = \"x\" }}\n\n{USERS_ENTRY}"
            ),
        )
        .entry(1)
        .names(&["invoices"])
        .names(&["name;--"]),
        bad_map(
            m,
            "an empty column name",
            &format!("[[delete]]\ntable = \"sessions\"\ncolumn = \"\"\n\n{USERS_ENTRY}"),
        )
        .entry(1)
        .names(&["sessions"]),
        // A redact that sets nothing.
        bad_map(
            m,
            "a redact with neither null nor replace",
            &format!(
                "{SESSIONS_ENTRY}\n[[redact]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\n\n\
                 {USERS_ENTRY}"
            ),
        )
        .entry(2)
        .names(&["invoices"])
        .names(SETS_NOTHING),
        bad_map(
            m,
            "a redact with empty null and replace",
            &format!(
                "{SESSIONS_ENTRY}\n[[redact]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\n\
                 null = []\nreplace = {{}}\n\n{USERS_ENTRY}"
            ),
        )
        .entry(2)
        .names(&["invoices"])
        .names(SETS_NOTHING),
        // A column both nulled and replaced.
        bad_map(
            m,
            "a column both nulled and replaced",
            &format!(
                "[[redact]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\n\
                 null = [\"email\", \"phone\"]\nreplace = {{ email = \"x\" }}\n\n{USERS_ENTRY}"
            ),
        )
        .entry(1)
        .names(&["invoices"])
        .names(&["email"])
        .names(&["both", "nulled and replaced", "null and replace"]),
        // The same table and column twice.
        bad_map(
            m,
            "the same delete twice",
            &format!("{SESSIONS_ENTRY}\n{USERS_ENTRY}\n{SESSIONS_ENTRY}"),
        )
        .entry(3)
        .names(&["sessions"])
        .names(&["user_id"])
        .names(TWICE),
        bad_map(
            m,
            "a delete and a redact of the same table and column",
            &format!(
                "[[delete]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\n\n\
                 {INVOICES_ENTRY}\n{USERS_ENTRY}"
            ),
        )
        .entry(2)
        .names(&["invoices"])
        .names(&["customer_id"])
        .names(TWICE),
        // Missing keys and wrong types.
        bad_map(
            m,
            "an entry without a table",
            &format!("[[delete]]\ncolumn = \"user_id\"\n\n{USERS_ENTRY}"),
        )
        .entry(1)
        .names(&["table"]),
        bad_map(
            m,
            "an entry without a column",
            &format!("{SESSIONS_ENTRY}\n[[delete]]\ntable = \"users\"\n"),
        )
        .entry(2)
        .names(&["users"])
        .names(&["column"]),
        bad_map(
            m,
            "null as a string, not a list",
            &format!(
                "[[redact]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\nnull = \"email\"\n\n\
                 {USERS_ENTRY}"
            ),
        )
        .entry(1)
        .names(&["invoices"])
        .names(&["null"]),
        bad_map(
            m,
            "a replacement that is not text",
            &format!(
                "[[redact]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\n\
                 replace = {{ billing_name = 5 }}\n\n{USERS_ENTRY}"
            ),
        )
        .entry(1)
        .names(&["invoices"])
        .names(&["billing_name"]),
        // Not TOML: the line is named.
        bad_map(
            m,
            "an unterminated string on line 6",
            "[[delete]]\ntable = \"sessions\"\ncolumn = \"user_id\"\n\n[[delete]]\n\
             table = \"users\ncolumn = \"id\"\n",
        )
        .names(&["line 6"]),
        bad_map(
            m,
            "a broken header on line 5",
            "[[delete]]\ntable = \"sessions\"\ncolumn = \"user_id\"\n\n[[delete]\n\
             table = \"users\"\ncolumn = \"id\"\n",
        )
        .names(&["line 5"]),
        bad_map(
            m,
            "a key given twice on line 4",
            "[[delete]]\ntable = \"sessions\"\ncolumn = \"user_id\"\ntable = \"users\"\n",
        )
        .names(&["line 4"]),
    ];
    // No such file.
    let missing = maps.missing();
    let missing = path_str(&missing);
    cases.push(
        Bad::new("a map file that does not exist")
            .arg("--erasure-map")
            .arg(missing)
            .names(&[missing])
            .names(&[
                "no such file",
                "not found",
                "cannot read",
                "does not exist",
                "cannot open",
            ]),
    );
    cases.push(
        Bad::new("ERASURE_MAP naming a file that does not exist")
            .set("ERASURE_MAP", missing)
            .names(&[missing]),
    );
    // `check` reads the map the same way.
    cases.push(
        bad_map(
            m,
            "an unknown key in an entry",
            &format!("{SESSIONS_ENTRY}\n[[delete]]\ntable = \"users\"\ncolunm = \"id\"\n"),
        )
        .entry(2)
        .names(&["users"])
        .names(&["colunm"])
        .in_check(),
    );
    refuse_all(&stand_ins, cases).await;
}

#[tokio::test]
async fn a_map_with_table_or_id_column_settings_is_exit_2() {
    let stand_ins = StandIns::new();
    let maps = MapDir::new();
    let map = maps.write(&toml(&full_map()));
    let map = path_str(&map);
    let the_map = ["--erasure-map", "ERASURE_MAP"];
    let table = ["--table", "PURGE_TABLE"];
    let id_column = ["--id-column", "PURGE_ID_COLUMN"];
    let record = ["--erasure-record", "ERASURE_RECORD"];
    let cases = vec![
        Bad::new("--erasure-map with --table")
            .arg("--erasure-map")
            .arg(map)
            .arg("--table")
            .arg("users")
            .names(&the_map)
            .names(&table),
        Bad::new("--erasure-map with --id-column")
            .arg("--erasure-map")
            .arg(map)
            .arg("--id-column")
            .arg("id")
            .names(&the_map)
            .names(&id_column),
        Bad::new("ERASURE_MAP with PURGE_TABLE")
            .set("ERASURE_MAP", map)
            .set("PURGE_TABLE", "users")
            .names(&the_map)
            .names(&table),
        Bad::new("ERASURE_MAP with PURGE_ID_COLUMN")
            .set("ERASURE_MAP", map)
            .set("PURGE_ID_COLUMN", "id")
            .names(&the_map)
            .names(&id_column),
        Bad::new("--erasure-map with PURGE_TABLE")
            .arg("--erasure-map")
            .arg(map)
            .set("PURGE_TABLE", "users")
            .names(&the_map)
            .names(&table),
        Bad::new("ERASURE_MAP with --id-column")
            .set("ERASURE_MAP", map)
            .arg("--id-column")
            .arg("id")
            .names(&the_map)
            .names(&id_column),
        Bad::new("--erasure-map with --table")
            .arg("--erasure-map")
            .arg(map)
            .arg("--table")
            .arg("users")
            .names(&the_map)
            .names(&table)
            .in_check(),
        Bad::new("an erasure record that is not an identifier")
            .arg("--erasure-record")
            .arg("erasure record")
            .names(&record),
        Bad::new("ERASURE_RECORD that is not an identifier")
            .set("ERASURE_RECORD", "record;DROP")
            .names(&record),
    ];
    refuse_all(&stand_ins, cases).await;
}

/// The stand-in checks above are worth something only if a valid map gets
/// as far as contacting the database.
#[tokio::test]
async fn a_valid_map_passes_configuration_and_contacts_the_database() {
    let stand_ins = StandIns::new();
    let maps = MapDir::new();
    let map = maps.write(&toml(&full_map()));
    let mut child = stand_ins.command(&with_map(&map)).spawn().unwrap();
    // A valid map gets as far as the database.
    stand_ins
        .wait_for_contact(&mut child, &["the database"])
        .await;
    child.kill().await.unwrap();
}

// ---------------------------------------------------------------------------
// Checked at connect: exit 4, nothing received
// ---------------------------------------------------------------------------

/// A map (and record) that this database cannot carry out.
struct Unworkable<'a> {
    what: &'a str,
    map: Vec<Entry>,
    /// The erasure record's table, if any.
    record: Option<&'a str>,
    /// Another database URL than the test's user's.
    url: Option<&'a str>,
    /// What stderr must name.
    names: Vec<&'a str>,
}

impl<'a> Unworkable<'a> {
    /// This map, with the test's user's URL and no record.
    fn new(what: &'a str, map: Vec<Entry>, names: &[&'a str]) -> Unworkable<'a> {
        Unworkable {
            what,
            map,
            record: None,
            url: None,
            names: names.to_vec(),
        }
    }

    fn record(mut self, table: &'a str) -> Unworkable<'a> {
        self.record = Some(table);
        self
    }

    fn url(mut self, url: &'a str) -> Unworkable<'a> {
        self.url = Some(url);
        self
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_map_the_database_cannot_carry_out_is_exit_4_before_anything_is_received() {
    let env = realistic().await;
    env.sql("CREATE TABLE devices (serial DECIMAL(20,0) NOT NULL) ENGINE=InnoDB")
        .await;
    env.sql("CREATE TABLE gauges (reading DOUBLE NOT NULL) ENGINE=InnoDB")
        .await;
    env.sql("INSERT INTO devices VALUES (1),(2)").await;
    env.sql("INSERT INTO gauges VALUES (1),(2)").await;
    let no_insert = env
        .create_user("ro", "Pw-ro-7Hq", "SELECT, DELETE, UPDATE", "*")
        .await;
    let maps = MapDir::new();
    let before = snapshot(&env).await;
    let published = publish_events(&env, &[1, 2, 5, 10], &[], &[]).await;

    let with_users =
        |entry: Entry| vec![delete("sessions", "user_id"), entry, delete("users", "id")];
    let cases = vec![
        Unworkable::new(
            "a missing table",
            with_users(delete("user_sessions", "user_id")),
            &["user_sessions"],
        ),
        Unworkable::new(
            "a missing id column",
            with_users(delete("profiles", "member_id")),
            &["profiles", "member_id"],
        ),
        Unworkable::new(
            "a missing column to null",
            with_users(redact("invoices", "customer_id", &["fax"], &[])),
            &["invoices", "fax"],
        ),
        Unworkable::new(
            "a missing column to replace",
            with_users(redact("invoices", "customer_id", &[], &[("nickname", "x")])),
            &["invoices", "nickname"],
        ),
        Unworkable::new(
            "a NOT NULL column set to NULL",
            with_users(redact(
                "invoices",
                "customer_id",
                &["email", "total_cents"],
                &[],
            )),
            &["invoices", "total_cents"],
        ),
        Unworkable::new(
            "a DECIMAL id column",
            with_users(delete("devices", "serial")),
            &["devices", "serial"],
        ),
        Unworkable::new(
            "a DOUBLE id column",
            with_users(delete("gauges", "reading")),
            &["gauges", "reading"],
        ),
        Unworkable::new("a missing erasure record", full_map(), &["erasure_log"])
            .record("erasure_log"),
        Unworkable::new("an erasure record without INSERT", full_map(), &[RECORD])
            .record(RECORD)
            .url(no_insert.as_str()),
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let map = maps.write(&toml(&case.map));
        let mut args = vec!["--erasure-map", path_str(&map)];
        if let Some(table) = case.record {
            args.extend(["--erasure-record", table]);
        }
        let mut vars = Vec::new();
        if let Some(url) = case.url {
            vars.push(("DATABASE_URL", url));
        }
        let run = run(&env, &args, &vars).await;
        let mut wrong = Vec::new();
        if run.code != Some(4) {
            wrong.push(format!("exit {:?}, not 4", run.code));
        }
        if run.stdout.lines().count() == 1 {
            if run.outcome() != "database_error" {
                wrong.push(format!("outcome {}", run.outcome()));
            }
            for field in ["received", "acked", "deleted_rows"] {
                if run.count(field) != 0 {
                    wrong.push(format!("{field} {}", run.count(field)));
                }
            }
        } else {
            wrong.push("not one summary line".to_owned());
        }
        for name in &case.names {
            if !run.stderr.contains(name) {
                wrong.push(format!("stderr does not name {name}"));
            }
        }
        if snapshot(&env).await != before || !record(&env).await.is_empty() {
            wrong.push("rows changed".to_owned());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n  stdout {}\n  stderr (last lines) {:?}",
                case.what,
                wrong.join("; "),
                run.stdout.trim(),
                run.stderr.lines().rev().take(3).collect::<Vec<_>>()
            ));
        }
    }
    assert_no_failures(&failures, cases.len());

    // Nothing was received: a run with the right map takes every message.
    let map = maps.write(&toml(&full_map()));
    let from = now_ms();
    let run = run(&env, &with_map(&map), &[]).await;
    run.assert_code(0);
    assert_eq!(
        run.count("received"),
        published.payloads.len() as u64,
        "every message must still be in the subscription"
    );
    let erased = published.removed();
    assert_eq!(snapshot(&env).await, before.erased(&erased));
    assert_record(&env, &published, &erased, (from, now_ms())).await;
    env.cleanup().await;
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_two_statements_of_the_map_leaves_nothing_half_erased() {
    let env = realistic().await;
    let maps = MapDir::new();
    let map = maps.write(&toml(&full_map()));
    let args = with_map(&map);
    let before = snapshot(&env).await;
    // Users who all have sessions, so the first entry has rows to delete.
    let published = publish_events(
        &env,
        &[1, 2, 4, 5, 10, 11, 14, 20, 25, 31],
        &[],
        &malformed(),
    )
    .await;
    let erased = published.removed();
    let sessions = format!(
        "SELECT COUNT(*) FROM sessions WHERE user_id IN ({})",
        id_list(&erased)
    );
    assert!(env.number(&sessions).await > 0);

    // The second entry waits for a lock: the kill lands after the first.
    let from = now_ms();
    let lock = lock_table(&env, "invoices").await;
    let mut job = Job::spawn(command(&env, &args, &[("RUST_LOG", "debug")]));
    let started = Instant::now();
    let blocked = job
        .until(env.wait_for_statement("UPDATE", "invoices"))
        .await;
    assert!(
        blocked,
        "the job ended before it updated invoices:\n{}",
        job.log()
    );
    // The first entry has run, inside the open transaction: a dirty read
    // sees the sessions gone.
    let mut dirty = env.dirty_connection().await;
    let uncommitted: Option<u64> = dirty.query_first(&sessions).await.unwrap();
    release(dirty).await;
    assert_eq!(
        uncommitted,
        Some(0),
        "the job updated invoices before the sessions entry had run"
    );
    assert!(job.kill().await, "the job was gone before the kill");
    let lived = started.elapsed();
    release(lock).await;
    env.wait_until_disconnected().await;
    assert_eq!(
        snapshot(&env).await,
        before,
        "a kill between two statements left part of the erasure behind"
    );
    assert!(
        record(&env).await.is_empty(),
        "the erasure record kept rows of a transaction that never committed"
    );

    // Runs until the tables are as expected, waiting out the killed run's
    // leases; each run exits 0.
    let expected = before.erased(&erased);
    let runs = until_recovered(
        quiet_after(lived),
        async || {
            let run = run(&env, &args, &[]).await;
            run.assert_code(0);
            run
        },
        async || snapshot(&env).await == expected,
    )
    .await;
    println!("killed after {lived:?}; recovered in {} runs", runs.len());
    assert_eq!(snapshot(&env).await, expected);
    assert_record(&env, &published, &erased, (from, now_ms())).await;
    assert_eq!(
        sorted(env.drain(Duration::from_secs(1)).await),
        sorted(published.malformed.clone()),
        "only the malformed messages may be left"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_dropped_mid_run_is_exit_4_and_nothing_is_half_erased() {
    let env = realistic().await;
    let maps = MapDir::new();
    let map = maps.write(&toml(&full_map()));
    let before = snapshot(&env).await;
    let published = publish_events(&env, &[1, 2, 4, 5], &[], &malformed()).await;

    // The job waits at its first entry; meanwhile the second's table goes.
    let lock = lock_table(&env, "sessions").await;
    let job = {
        let mut job = Job::spawn(command(&env, &with_map(&map), &[("RUST_LOG", "debug")]));
        let waiting = job
            .until(env.wait_for_statement("DELETE", "sessions"))
            .await;
        assert!(
            waiting,
            "the job ended before it deleted sessions:\n{}",
            job.log()
        );
        job
    };
    let mut dropper = env.own_connection().await;
    dropper
        .query_drop("SET SESSION lock_wait_timeout = 10")
        .await
        .unwrap();
    dropper
        .query_drop("DROP TABLE invoices")
        .await
        .expect("the job must hold no lock on a table it has not reached");
    release(dropper).await;
    release(lock).await;

    let run = job.finish_within(&env, Duration::from_secs(60)).await;
    println!("{}", run.stdout.trim());
    run.assert_code(4);
    assert_eq!(run.outcome(), "database_error");
    assert!(run.stderr.contains("invoices"), "{}", run.stderr);
    let received = run.count("received");
    assert_eq!(received, published.payloads.len() as u64);
    assert_eq!(run.count("acked"), 0, "nothing may be acknowledged");
    assert_eq!(run.count("nacked"), received, "everything is handed back");
    assert_eq!(run.count("deleted_rows"), 0);
    assert_eq!(
        snapshot_with(&env, false).await,
        Snapshot {
            invoices: Vec::new(),
            ..before
        },
        "the first entry's deletes must be rolled back"
    );
    assert!(record(&env).await.is_empty());
    assert_eq!(
        sorted(env.drain(Duration::from_secs(1)).await),
        sorted(published.payloads.clone()),
        "every message must be handed back"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grants_check_prints_are_enough_to_run_the_map() {
    let env = realistic().await;
    let maps = MapDir::new();
    let map = maps.write(&toml(&full_map()));
    let url = env.create_user("lp", "Pw-lp-4Tz", "USAGE", "*").await;
    let user = format!("lp{}", &env.user[1..]);
    let grantee = format!("'{user}'@'%'");
    let pubsub = listener();

    let printed = check(
        &env,
        &[
            "--grants",
            "--erasure-map",
            path_str(&map),
            "--erasure-record",
            RECORD,
            "--grantee",
            &grantee,
        ],
        &pubsub,
    )
    .await;
    printed.assert_code(0);
    assert_eq!(grants(&printed), full_map_grants(&env, &grantee));
    for line in printed.stdout.lines() {
        let statement = line.trim().trim_end_matches(';');
        if statement.to_uppercase().starts_with("GRANT ") {
            env.sql(statement).await;
        }
    }

    let before = snapshot(&env).await;
    let published = publish_events(&env, &[1, 2, 5, 10, 13], &[], &[]).await;
    let erased = published.removed();
    let from = now_ms();
    let run = run(&env, &with_map(&map), &[("DATABASE_URL", &url)]).await;
    println!("{}", run.stdout.trim());
    run.assert_code(0);
    assert_eq!(tables(&run), before.affected(&erased));
    assert_eq!(snapshot(&env).await, before.erased(&erased));
    assert_record(&env, &published, &erased, (from, now_ms())).await;
    env.cleanup().await;
}

// ---------------------------------------------------------------------------
// user-purge check
// ---------------------------------------------------------------------------

/// `user-purge check` against this test's database, with a stand-in for
/// Pub/Sub that it must never contact.
async fn check(env: &TestEnv, args: &[&str], pubsub: &TcpListener) -> Run {
    let mut all = vec!["check"];
    all.extend(args);
    let host = pubsub.local_addr().unwrap().to_string();
    let run = run(env, &all, &[("PUBSUB_EMULATOR_HOST", &host)]).await;
    assert!(
        pubsub.accept().is_err(),
        "check contacted Pub/Sub:\n{}",
        run.stderr
    );
    run
}

/// The least privileges of the full map and the record.
fn full_map_grants(env: &TestEnv, grantee: &str) -> BTreeSet<(Vec<String>, String, String)> {
    let on = |table: &str| format!("{}.{table}", env.database);
    BTreeSet::from([
        grant(&["SELECT", "DELETE"], on("sessions"), grantee),
        grant(&["SELECT", "UPDATE"], on("invoices"), grantee),
        grant(&["SELECT", "DELETE"], on("profiles"), grantee),
        grant(&["SELECT", "DELETE"], on("users"), grantee),
        grant(&["SELECT", "INSERT"], on(RECORD), grantee),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn check_finds_exactly_the_gaps_of_the_realistic_schema() {
    let env = realistic().await;
    let maps = MapDir::new();
    let map = maps.write(&toml(&full_map()));
    let pubsub = listener();
    let before = snapshot(&env).await;

    let run = check(
        &env,
        &["--erasure-map", path_str(&map), "--erasure-record", RECORD],
        &pubsub,
    )
    .await;
    println!("{}\n{}", run.stdout, run.stderr);
    run.assert_code(1);
    // orders.user_id cascades; the record's user_id is the record; `id`
    // columns are not references to the user (it is the users table's own).
    assert_eq!(
        findings(&run),
        BTreeSet::from([
            finding("analytics_events", "user_id", "not covered"),
            finding("legal_docs", "user_id", "refuses delete"),
            finding("invoices", "customer_id", "no index"),
        ])
    );
    for table in ["analytics_events", "legal_docs", "invoices"] {
        assert!(
            run.stderr.contains(table),
            "the report on stderr must name {table}:\n{}",
            run.stderr
        );
    }
    assert_eq!(snapshot(&env).await, before, "check must change nothing");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_of_a_schema_without_gaps_finds_nothing_until_user_columns_widen_it() {
    let env = TestEnv::new(3).await;
    let maps = MapDir::new();
    let map = maps.write(&toml(&[delete("users", "id")]));
    let pubsub = listener();
    // A cascade of a cascade, and a column only a pattern names.
    env.sql(
        "CREATE TABLE order_notes (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
         order_id BIGINT UNSIGNED NOT NULL, \
         FOREIGN KEY (order_id) REFERENCES orders(id) ON DELETE CASCADE) ENGINE=InnoDB",
    )
    .await;
    env.sql(
        "CREATE TABLE documents (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
         owner_id BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB",
    )
    .await;

    for args in [vec![], vec!["--erasure-map", path_str(&map)]] {
        let run = check(&env, &args, &pubsub).await;
        run.assert_code(0);
        assert_eq!(run.stdout, "", "check {args:?} found something");
    }
    let run = check(
        &env,
        &[
            "--erasure-map",
            path_str(&map),
            "--user-columns",
            "owner_id",
        ],
        &pubsub,
    )
    .await;
    run.assert_code(1);
    assert_eq!(
        findings(&run),
        BTreeSet::from([finding("documents", "owner_id", "not covered")])
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_the_foreign_keys_that_do_not_cascade() {
    let env = TestEnv::new(3).await;
    let fk = |table: &str, column: &str, parent: &str, action: &str| {
        format!(
            "CREATE TABLE {table} (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
             {column} BIGINT UNSIGNED NULL, \
             FOREIGN KEY ({column}) REFERENCES {parent}(id) ON DELETE {action}) ENGINE=InnoDB"
        )
    };
    for statement in [
        fk("comments", "author_id", "users", "SET NULL"),
        fk("order_items", "order_id", "orders", "RESTRICT"),
        fk("audits", "user_id", "users", "NO ACTION"),
        fk("attachments", "user_id", "users", "RESTRICT"),
        fk("avatars", "user_id", "users", "CASCADE"),
    ] {
        env.sql(&statement).await;
    }
    let maps = MapDir::new();
    // attachments would refuse, but the map deletes from it first.
    let map = maps.write(&toml(&[
        delete("attachments", "user_id"),
        delete("users", "id"),
    ]));
    let pubsub = listener();

    let run = check(&env, &["--erasure-map", path_str(&map)], &pubsub).await;
    println!("{}\n{}", run.stdout, run.stderr);
    run.assert_code(1);
    assert_eq!(
        findings(&run),
        BTreeSet::from([
            finding("comments", "author_id", "not covered"),
            finding("order_items", "order_id", "refuses delete"),
            finding("audits", "user_id", "refuses delete"),
        ])
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_grants_prints_exactly_the_least_privileges() {
    let env = realistic().await;
    let maps = MapDir::new();
    let map = maps.write(&toml(&full_map()));
    let pubsub = listener();
    let default = "'user_purge'@'%'";

    let run = check(
        &env,
        &[
            "--grants",
            "--erasure-map",
            path_str(&map),
            "--erasure-record",
            RECORD,
        ],
        &pubsub,
    )
    .await;
    run.assert_code(0);
    assert_eq!(grants(&run), full_map_grants(&env, default));
    // What --replica-url needs, as a comment: the check knows no replica.
    assert!(
        run.stdout
            .lines()
            .any(|line| line.starts_with("-- GRANT REPLICA MONITOR ON *.* TO 'user_purge'@'%';")),
        "no grant for the replicas' lag:\n{}",
        run.stdout
    );

    let run = check(&env, &["--grants"], &pubsub).await;
    run.assert_code(0);
    assert_eq!(
        grants(&run),
        BTreeSet::from([grant(
            &["SELECT", "DELETE"],
            format!("{}.users", env.database),
            default
        )]),
        "without a map: the one table"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn check_on_an_unreachable_database_is_exit_4() {
    let maps = MapDir::new();
    let map = maps.write(&toml(&full_map()));
    let pubsub = listener();
    let port = common::free_port();
    let mut command = job_command(&["check", "--erasure-map", path_str(&map)]);
    for key in NEW_VARIABLES {
        command.env_remove(key);
    }
    command
        .env(
            "DATABASE_URL",
            format!("mysql://purger:{PASSWORD}@127.0.0.1:{port}/app"),
        )
        .env(
            "PUBSUB_EMULATOR_HOST",
            pubsub.local_addr().unwrap().to_string(),
        )
        .env("RUST_LOG", "trace");
    let output = command.output().await.unwrap();
    let run = Run::from(output);
    run.assert_code(4);
    assert!(
        run.stdout.lines().all(|line| !line.contains("\"finding\"")),
        "no findings from a database it could not read: {}",
        run.stdout
    );
    assert!(
        run.stderr
            .lines()
            .any(|line| line.contains("ERROR") || line.starts_with("error")),
        "one line must say what failed:\n{}",
        run.stderr
    );
    run.assert_no_secret(&[PASSWORD]);
    assert!(pubsub.accept().is_err(), "check contacted Pub/Sub");
}
