//! `user-purge verify`: erased users stay erased, on MariaDB and (issue 20)
//! on PostgreSQL 15, every test through [`on_both_engines!`]. Each test first
//! runs the real job on the real emulator and the engine's database
//! (USER_REMOVED for users 1, 2 and 3, an erasure map with a `[[delete]]`, a
//! `[[redact]]`, a `via` entry, a VARCHAR user column and the users table,
//! and an erasure record); then writes some of their rows back, as a restore
//! or a stale writer would, and runs `verify`, with a stand-in for Pub/Sub
//! that it must never contact:
//!
//! - rows written back into the users table, a delete entry's table, a table
//!   reached `via` another, and a redacted column are exactly the findings
//!   (exit 1); `--repair` erases them (exit 0) and leaves the record as it
//!   was; `verify` then finds nothing (exit 0);
//! - the same with an integer record and a map without the text column: the
//!   world's record holds every id of the carts' VARCHAR(20), so it is text
//!   on PostgreSQL, which has no unsigned type; an integer record is joined
//!   to each integer entry, page by page;
//! - a user never erased, with rows in every table (one of them an order
//!   whose id is an erased user's), is never reported nor touched;
//! - a user the database refuses during the repair (a trigger) is exit 6 and
//!   keeps every row; the other findings are repaired;
//! - rows written again while the repair runs (a trigger standing in for a
//!   writer) are exit 1, named in the log, and found by the next verify;
//! - a SELECT-only account is enough to verify (exit 1), and is exit 4 with
//!   `--repair`, nothing changed;
//! - ids compare as the erasure compares them: `'01'`, `'1 '` and their kin
//!   in a VARCHAR column are not user 1 (on MariaDB under a PAD SPACE, case-
//!   and accent-blind collation; on PostgreSQL under the database's own);
//! - `--since` checks only the users erased at or after it;
//! - `--max-findings` limits the lines printed, not the totals;
//! - a real Pushgateway gets the places still holding data (after a repair,
//!   the refused users' included) and the time; a `--since` look, nothing;
//! - without `--erasure-record`, or with a `--since` that is no RFC 3339
//!   time, it is exit 2 before anything is contacted (a `mysql://` or a
//!   `postgres://` URL alike).

mod common;

use std::collections::BTreeMap;

use common::private::PrivatePushgateway;
use common::scratch::MapDir;
use common::stand_ins::{StandIns, listener};
use common::{Engine, Run, TestEnv, job_command};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// The world: a shop after a real erasure
// ---------------------------------------------------------------------------

/// A table's index, if it has one besides its key: (name, column).
type Index = Option<(&'static str, &'static str)>;

/// The schema, without foreign keys: each entry reads and erases on its own.
/// Each table as (name, columns, index), `{ID}` the engine's id type; the
/// erasure record is made apart ([`erased_world_with`]).
const SCHEMA: [(&str, &str, Index); 5] = [
    (
        "users",
        "id {ID} PRIMARY KEY, email VARCHAR(100) NOT NULL",
        None,
    ),
    (
        "orders",
        "id {ID} PRIMARY KEY, user_id {ID} NOT NULL",
        Some(("by_user", "user_id")),
    ),
    (
        "order_items",
        "id {ID} PRIMARY KEY, order_id {ID} NOT NULL",
        Some(("by_order", "order_id")),
    ),
    (
        "profiles",
        "user_id {ID} PRIMARY KEY, address VARCHAR(100) NULL, name VARCHAR(40) NOT NULL",
        None,
    ),
    // A legacy table naming its user by text.
    (
        "carts",
        "id {ID} PRIMARY KEY, user_ref VARCHAR(20) NOT NULL",
        Some(("by_user", "user_ref")),
    ),
];

/// The carts' options on MariaDB: a PAD SPACE, case- and accent-blind
/// collation. PostgreSQL's text compares under the database's collation.
const CARTS_COLLATION: &str = "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci";

/// Creates [`SCHEMA`] on the test's engine, and the erasure record
/// `erased` with `record`.
async fn create_schema(env: &TestEnv, record: &str) {
    let engine = env.engine;
    for (name, columns, index) in SCHEMA {
        let mut ddl = engine.create_table(name, &columns.replace("{ID}", engine.id_type()));
        if name == "carts" && engine == Engine::MariaDb {
            ddl = format!("{ddl} {CARTS_COLLATION}");
        }
        env.sql(&ddl).await;
        if let Some((index, column)) = index {
            // An index's name is the schema's on PostgreSQL: the table's prefixes it.
            env.sql(&format!("CREATE INDEX {name}_{index} ON {name} ({column})"))
                .await;
        }
    }
    env.sql(record).await;
}

/// Every table, the record's included, as [`dump`] reads them.
const TABLES: [&str; 6] = [
    "users",
    "orders",
    "order_items",
    "profiles",
    "carts",
    "erased",
];

/// The erasure map: items through the orders, the profile redacted, the
/// carts by their text reference, then the orders and the user.
const MAP: &str = r#"
[[delete]]
table = "order_items"
column = "order_id"
via = [{ table = "orders", key = "user_id", value = "id" }]

[[redact]]
table = "profiles"
column = "user_id"
null = ["address"]
replace = { name = "erased" }

[[delete]]
table = "carts"
column = "user_ref"

[[delete]]
table = "orders"
column = "user_id"

[[delete]]
table = "users"
column = "id"
"#;

/// [`MAP`] without the carts: every id column an integer, which an integer
/// record holds (PostgreSQL's carts need a text one).
fn integer_map() -> String {
    let carts = "[[delete]]\ntable = \"carts\"\ncolumn = \"user_ref\"\n\n";
    assert!(MAP.contains(carts));
    MAP.replace(carts, "")
}

/// Users 1..=USERS; the job erases [`REMOVED`].
const USERS: u64 = 6;
const REMOVED: [u64; 3] = [1, 2, 3];

/// A test's world after the job erased users 1, 2 and 3, and its map.
struct World {
    env: TestEnv,
    map: String,
    /// Holds the map file.
    _maps: MapDir,
}

/// User k has order k·10+1, its item (k·10+1)·10+1, a profile with an
/// address, and cart k (`'k'`). The job erases 1, 2 and 3 with [`MAP`],
/// and records them in a record that holds every id of the carts' text
/// column ([`Engine::wide_record_table`]: VARCHAR(20) on PostgreSQL).
async fn erased_world(engine: Engine) -> World {
    erased_world_with(engine, MAP, &engine.wide_record_table("erased")).await
}

/// [`erased_world`] with `map` and the record made by `record`.
async fn erased_world_with(engine: Engine, map: &str, record: &str) -> World {
    let env = TestEnv::on(engine, 0).await;
    // The harness's users and orders (with a cascade) make way for these.
    env.sql("DROP TABLE orders").await;
    env.sql("DROP TABLE users").await;
    create_schema(&env, record).await;
    for k in 1..=USERS {
        let order = k * 10 + 1;
        env.sql(&format!(
            "INSERT INTO users VALUES ({k}, 'user{k}@example.com')"
        ))
        .await;
        env.sql(&format!("INSERT INTO orders VALUES ({order}, {k})"))
            .await;
        env.sql(&format!(
            "INSERT INTO order_items VALUES ({}, {order})",
            order * 10 + 1
        ))
        .await;
        env.sql(&format!(
            "INSERT INTO profiles VALUES ({k}, '{k} Main Street', 'name-{k}')"
        ))
        .await;
        env.sql(&format!("INSERT INTO carts VALUES ({k}, '{k}')"))
            .await;
    }
    let maps = MapDir::new();
    let map = maps.write_arg(map);
    env.publish_removals(REMOVED).await;
    let run = env
        .run(&["--erasure-map", &map, "--erasure-record", "erased"])
        .await;
    run.assert_code(0);
    assert_eq!(
        (run.count("received"), run.count("acked")),
        (3, 3),
        "{}",
        run.stdout
    );
    assert_eq!(env.users().await, [4, 5, 6]);
    assert_eq!(recorded(&env).await, REMOVED);
    World {
        env,
        map,
        _maps: maps,
    }
}

/// The users in the erasure record.
async fn recorded(env: &TestEnv) -> Vec<u64> {
    env.texts("SELECT user_id FROM erased ORDER BY user_id")
        .await
        .iter()
        .map(|id| id.parse().unwrap())
        .collect()
}

/// Every row of every table (the record's erased_at to the millisecond),
/// each as its values in text (NULL as "NULL"), in the order of the first
/// column.
async fn dump(env: &TestEnv) -> BTreeMap<&'static str, Vec<Vec<String>>> {
    let mut tables = BTreeMap::new();
    for table in TABLES {
        let rows = env.rows(&format!("SELECT * FROM {table} ORDER BY 1")).await;
        tables.insert(table, rows);
    }
    tables
}

/// Writes back five places of the erased users: user 1 in `users`, an
/// order of user 2, an order of user 3 with its item (the hop row and the
/// via row), and user 1's address in the redacted profile.
async fn write_back_five(env: &TestEnv) {
    env.sql("INSERT INTO users VALUES (1, 'user1@example.com')")
        .await;
    env.sql("INSERT INTO orders VALUES (22, 2), (31, 3)").await;
    env.sql("INSERT INTO order_items VALUES (311, 31)").await;
    env.sql("UPDATE profiles SET address = '1 Main Street' WHERE user_id = 1")
        .await;
}

/// A legal hold on user 1: a trigger refuses to delete its users row.
async fn hold_user_1(env: &TestEnv) {
    let hold = env.engine.refusing_trigger(
        "users_hold",
        "DELETE",
        "users",
        "OLD.id = 1",
        "legal hold",
        "",
    );
    env.sql_all(&hold).await;
}

/// The findings [`write_back_five`] leaves, as `verify` prints them.
fn five_findings() -> Vec<String> {
    sorted(vec![
        line("reappeared", "order_items", "order_id", 3, 1),
        line("not redacted", "profiles", "user_id", 1, 1),
        line("reappeared", "orders", "user_id", 2, 1),
        line("reappeared", "orders", "user_id", 3, 1),
        line("reappeared", "users", "id", 1, 1),
    ])
}

/// Their rows per table.
fn five_tables() -> Value {
    json!({"order_items": 1, "profiles": 1, "orders": 2, "users": 1})
}

// ---------------------------------------------------------------------------
// Running verify and reading what it printed
// ---------------------------------------------------------------------------

/// `user-purge verify` with the world's map and record, and `args`, with a
/// stand-in for Pub/Sub that it must never contact; `vars` are more variables.
async fn verify(world: &World, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let pubsub = listener();
    let host = pubsub.local_addr().unwrap().to_string();
    let mut all = vec![
        "verify",
        "--erasure-map",
        &world.map,
        "--erasure-record",
        "erased",
    ];
    all.extend(args);
    let mut vars = vars.to_vec();
    vars.push(("PUBSUB_EMULATOR_HOST", host.as_str()));
    let run = world.env.run_with_env(&all, &vars).await;
    assert!(
        pubsub.accept().is_err(),
        "verify contacted Pub/Sub:\n{}",
        run.stderr
    );
    run
}

/// One finding line, exactly as `verify` prints it.
fn line(finding: &str, table: &str, column: &str, user_id: u64, rows: u64) -> String {
    format!(
        r#"{{"finding":"{finding}","table":"{table}","column":"{column}","user_id":{user_id},"rows":{rows}}}"#
    )
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

/// The finding lines of a run (every line of stdout but the closing one), sorted.
fn findings(run: &Run) -> Vec<String> {
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(!lines.is_empty(), "no closing line:\n{}", run.stderr);
    sorted(
        lines[..lines.len() - 1]
            .iter()
            .map(|l| l.to_string())
            .collect(),
    )
}

/// The closing line, the last of stdout, without its `elapsed_ms` (which
/// must be there, a number).
fn closing(run: &Run) -> Value {
    let last = run.stdout.lines().last().unwrap_or_else(|| {
        panic!("verify printed nothing on stdout:\n{}", run.stderr);
    });
    let mut closing: serde_json::Map<String, Value> = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the closing line is not a JSON object ({e}): {last}"));
    let elapsed = closing.remove("elapsed_ms");
    assert!(
        elapsed.as_ref().is_some_and(Value::is_u64),
        "no elapsed_ms: {last}"
    );
    Value::Object(closing)
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

on_both_engines!(
    rows_written_back_are_found_repaired_and_then_gone,
    an_integer_record_finds_and_repairs_the_same_rows,
    a_user_never_erased_is_never_reported_nor_repaired,
    a_user_refused_during_the_repair_is_exit_6_and_the_others_are_repaired,
    rows_written_again_while_the_repair_runs_are_exit_1_and_named,
    verify_pushes_the_places_still_holding_data_and_a_look_since_pushes_nothing,
    a_select_only_account_verifies_and_cannot_repair,
    text_ids_compare_as_the_erasure_compares_them,
    since_checks_only_the_users_erased_at_or_after_it,
    max_findings_limits_the_lines_not_the_totals,
    a_verify_without_a_record_or_with_a_bad_since_is_exit_2_before_any_contact,
);

async fn rows_written_back_are_found_repaired_and_then_gone(engine: Engine) {
    let world = erased_world(engine).await;
    found_repaired_and_then_gone(&world).await;
    world.env.cleanup().await;
}

/// [`write_back_five`]'s rows in `world`: found, logged, repaired, and
/// then there is nothing left to find.
async fn found_repaired_and_then_gone(world: &World) {
    let env = &world.env;
    let after_job = dump(env).await;
    write_back_five(env).await;

    let run = verify(world, &[], &[]).await;
    run.assert_code(1);
    assert_eq!(findings(&run), five_findings());
    assert_eq!(
        closing(&run),
        json!({"command": "verify", "outcome": "findings", "users_checked": 3,
               "findings": 5, "tables": five_tables()})
    );
    run.assert_logged("reappeared: 1 rows of erased user 1 in users.id")
        .assert_logged("reappeared: 1 rows of erased user 3 in order_items.order_id")
        .assert_logged("not redacted: 1 rows of erased user 1 in profiles.user_id");

    let run = verify(world, &["--repair"], &[]).await;
    run.assert_code(0);
    assert_eq!(findings(&run), five_findings());
    assert_eq!(
        closing(&run),
        json!({"command": "verify", "outcome": "completed", "users_checked": 3,
               "findings": 5, "tables": five_tables(),
               "repaired_rows": 5, "refused": 0, "remaining": 0})
    );
    // Every row written back is gone, the profile redacted again, and the
    // record has the same rows, erased at the same time: nothing recorded.
    assert_eq!(dump(env).await, after_job);

    let run = verify(world, &[], &[]).await;
    run.assert_code(0);
    assert_eq!(findings(&run), Vec::<String>::new());
    assert_eq!(
        closing(&run),
        json!({"command": "verify", "outcome": "completed", "users_checked": 3,
               "findings": 0, "tables": {}})
    );
}

/// The world's record is an integer on MariaDB, text on PostgreSQL: there,
/// an integer record (joined to each integer entry, page by page) is this one.
async fn an_integer_record_finds_and_repairs_the_same_rows(engine: Engine) {
    let world = erased_world_with(engine, &integer_map(), &engine.record_table("erased")).await;
    found_repaired_and_then_gone(&world).await;
    world.env.cleanup().await;
}

async fn a_user_never_erased_is_never_reported_nor_repaired(engine: Engine) {
    let world = erased_world(engine).await;
    let env = &world.env;
    // User 7 was never removed. It has rows in every table, and its order's
    // id is 1, an erased user's id, with an item on it; user 4's cart says '4'.
    env.sql("INSERT INTO users VALUES (7, 'user7@example.com')")
        .await;
    env.sql("INSERT INTO orders VALUES (1, 7)").await;
    env.sql("INSERT INTO order_items VALUES (9001, 1)").await;
    env.sql("INSERT INTO profiles VALUES (7, '7 Main Street', 'name-7')")
        .await;
    env.sql("INSERT INTO carts VALUES (70, '7')").await;
    let before = dump(env).await;
    // And one erased user back, so that the repair has something to do.
    env.sql("INSERT INTO users VALUES (2, 'user2@example.com')")
        .await;

    let run = verify(&world, &[], &[]).await;
    run.assert_code(1);
    assert_eq!(findings(&run), [line("reappeared", "users", "id", 2, 1)]);

    let run = verify(&world, &["--repair"], &[]).await;
    run.assert_code(0);
    assert_eq!(
        closing(&run),
        json!({"command": "verify", "outcome": "completed", "users_checked": 3,
               "findings": 1, "tables": {"users": 1},
               "repaired_rows": 1, "refused": 0, "remaining": 0})
    );
    assert_eq!(dump(env).await, before, "only user 2's row went");
    world.env.cleanup().await;
}

async fn a_user_refused_during_the_repair_is_exit_6_and_the_others_are_repaired(engine: Engine) {
    let world = erased_world(engine).await;
    let env = &world.env;
    hold_user_1(env).await;
    let after_job = dump(env).await;
    // User 1 back with an order, user 2 back, an order of user 3.
    env.sql("INSERT INTO users VALUES (1, 'user1@example.com'), (2, 'user2@example.com')")
        .await;
    env.sql("INSERT INTO orders VALUES (12, 1), (32, 3)").await;

    let run = verify(&world, &["--repair"], &[]).await;
    run.assert_code(6);
    assert_eq!(
        findings(&run),
        sorted(vec![
            line("reappeared", "orders", "user_id", 1, 1),
            line("reappeared", "orders", "user_id", 3, 1),
            line("reappeared", "users", "id", 1, 1),
            line("reappeared", "users", "id", 2, 1),
        ])
    );
    assert_eq!(
        closing(&run),
        json!({"command": "verify", "outcome": "partially_completed", "users_checked": 3,
               "findings": 4, "tables": {"orders": 2, "users": 2},
               "repaired_rows": 2, "refused": 1, "remaining": 0})
    );
    run.assert_logged("legal hold");

    // User 1 keeps every row written back (its order too, which the
    // refusal rolled back); user 2's row and user 3's order are gone.
    let mut expected = after_job;
    let row = |values: &[&str]| -> Vec<String> { values.iter().map(|v| v.to_string()).collect() };
    expected
        .get_mut("users")
        .unwrap()
        .insert(0, row(&["1", "user1@example.com"]));
    expected
        .get_mut("orders")
        .unwrap()
        .insert(0, row(&["12", "1"]));
    assert_eq!(dump(env).await, expected);

    let run = verify(&world, &[], &[]).await;
    run.assert_code(1);
    assert_eq!(
        findings(&run),
        sorted(vec![
            line("reappeared", "orders", "user_id", 1, 1),
            line("reappeared", "users", "id", 1, 1),
        ])
    );
    world.env.cleanup().await;
}

async fn rows_written_again_while_the_repair_runs_are_exit_1_and_named(engine: Engine) {
    let world = erased_world(engine).await;
    let env = &world.env;
    // A writer that re-creates a cart whenever a user row goes: the map
    // erases the carts before the users, so the repair leaves it behind.
    let rewrite = engine.row_trigger(
        "users_rewrite",
        "AFTER DELETE",
        "users",
        "INSERT INTO carts VALUES (OLD.id + 100, OLD.id)",
    );
    env.sql_all(&rewrite).await;
    env.sql("INSERT INTO users VALUES (2, 'user2@example.com')")
        .await;

    let run = verify(&world, &["--repair"], &[]).await;
    run.assert_code(1);
    assert_eq!(findings(&run), [line("reappeared", "users", "id", 2, 1)]);
    assert_eq!(
        closing(&run),
        json!({"command": "verify", "outcome": "findings", "users_checked": 3,
               "findings": 1, "tables": {"users": 1},
               "repaired_rows": 1, "refused": 0, "remaining": 1})
    );
    run.assert_logged("user 2: 1 rows are still in carts after the repair");

    // What the writer wrote is what the next verify finds.
    let run = verify(&world, &[], &[]).await;
    run.assert_code(1);
    assert_eq!(
        findings(&run),
        [line("reappeared", "carts", "user_ref", 2, 1)]
    );
    world.env.cleanup().await;
}

async fn verify_pushes_the_places_still_holding_data_and_a_look_since_pushes_nothing(
    engine: Engine,
) {
    let gateway = PrivatePushgateway::start().await;
    let world = erased_world(engine).await;
    let env = &world.env;
    hold_user_1(env).await;
    write_back_five(env).await;
    let push = ["--pushgateway-url", gateway.url.as_str()];
    let metric = |name| {
        gateway
            .metric_of("user-purge-verify", name)
            .unwrap_or_else(|| panic!("{name} was not pushed"))
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };

    let before = now();
    verify(&world, &push, &[]).await.assert_code(1);
    assert_eq!(metric("user_purge_verify_findings"), 5.0);
    let ran = metric("user_purge_verify_last_run_timestamp_seconds");
    assert!((before..=now()).contains(&ran), "ran at {ran}");

    // User 1 is refused: its row and its address stay, and are pushed as
    // found, though the closing line counts them as refused, not remaining.
    let run = verify(&world, &[&push[..], &["--repair"]].concat(), &[]).await;
    run.assert_code(6);
    assert_eq!(closing(&run)["remaining"], 0);
    assert_eq!(metric("user_purge_verify_findings"), 2.0);
    let repaired = metric("user_purge_verify_last_run_timestamp_seconds");
    assert!(repaired > ran);

    // A look at part of the record replaces neither figure.
    let run = verify(
        &world,
        &[&push[..], &["--since", "2999-01-01T00:00:00Z"]].concat(),
        &[],
    )
    .await;
    run.assert_code(0);
    run.assert_logged("its figures are not pushed");
    assert_eq!(metric("user_purge_verify_findings"), 2.0);
    assert_eq!(
        metric("user_purge_verify_last_run_timestamp_seconds"),
        repaired
    );
    world.env.cleanup().await;
}

async fn a_select_only_account_verifies_and_cannot_repair(engine: Engine) {
    let world = erased_world(engine).await;
    let env = &world.env;
    let password = "Pw-ro-verify-3Kd";
    let url = env.create_user("ro", password, "SELECT", "*").await;
    write_back_five(env).await;
    let before = dump(env).await;

    let run = verify(&world, &[], &[("DATABASE_URL", &url)]).await;
    run.assert_no_secret(&[password]).assert_code(1);
    assert_eq!(findings(&run), five_findings());
    assert_eq!(
        closing(&run),
        json!({"command": "verify", "outcome": "findings", "users_checked": 3,
               "findings": 5, "tables": five_tables()})
    );

    let run = verify(&world, &["--repair"], &[("DATABASE_URL", &url)]).await;
    run.assert_no_secret(&[password]).assert_code(4);
    assert_eq!(closing(&run)["outcome"], "database_error", "{}", run.stdout);
    run.assert_logged(engine.permission_refusal());
    assert_eq!(dump(env).await, before, "a failed repair changes nothing");
    world.env.cleanup().await;
}

async fn text_ids_compare_as_the_erasure_compares_them(engine: Engine) {
    let world = erased_world(engine).await;
    let env = &world.env;
    // Each equals '1' under the column's collation or as a number, none is
    // user 1's id as the job writes it.
    for (id, text) in [
        (71, "01"),
        (72, "1 "),
        (73, " 1"),
        (74, "+1"),
        (75, "1.0"),
        (76, "1abc"),
        (77, "\u{ff11}"), // a full-width 1
    ] {
        env.sql(&format!("INSERT INTO carts VALUES ({id}, '{text}')"))
            .await;
    }
    let look_alikes = dump(env).await;

    let run = verify(&world, &[], &[]).await;
    run.assert_code(0);
    assert_eq!(findings(&run), Vec::<String>::new());
    assert_eq!(
        closing(&run),
        json!({"command": "verify", "outcome": "completed", "users_checked": 3,
               "findings": 0, "tables": {}})
    );
    let run = verify(&world, &["--repair"], &[]).await;
    run.assert_code(0);
    assert_eq!(dump(env).await, look_alikes);

    // '1' itself is user 1's: found, alone, and only it repaired.
    env.sql("INSERT INTO carts VALUES (78, '1')").await;
    let run = verify(&world, &[], &[]).await;
    run.assert_code(1);
    assert_eq!(
        findings(&run),
        [line("reappeared", "carts", "user_ref", 1, 1)]
    );
    let run = verify(&world, &["--repair"], &[]).await;
    run.assert_code(0);
    assert_eq!(closing(&run)["repaired_rows"], 1, "{}", run.stdout);
    assert_eq!(dump(env).await, look_alikes);
    world.env.cleanup().await;
}

async fn since_checks_only_the_users_erased_at_or_after_it(engine: Engine) {
    let world = erased_world(engine).await;
    let env = &world.env;
    // User 1 was erased long ago, user 2 at 2015-06-01 00:00 UTC exactly,
    // user 3 just now; all three are back. (PostgreSQL's record is text.)
    let user = |id: u64| match engine {
        Engine::MariaDb => id.to_string(),
        Engine::Postgres => format!("'{id}'"),
    };
    env.sql(&format!(
        "UPDATE erased SET erased_at = '2000-01-01 00:00:00' WHERE user_id = {}",
        user(1)
    ))
    .await;
    env.sql(&format!(
        "UPDATE erased SET erased_at = '2015-06-01 00:00:00.000' WHERE user_id = {}",
        user(2)
    ))
    .await;
    env.sql(
        "INSERT INTO users VALUES (1, 'user1@example.com'), (2, 'user2@example.com'), \
         (3, 'user3@example.com')",
    )
    .await;
    let users = |ids: &[u64]| -> Vec<String> {
        ids.iter()
            .map(|&id| line("reappeared", "users", "id", id, 1))
            .collect()
    };

    for (since, checked, found) in [
        ("1999-12-31T23:59:59Z", 3, users(&[1, 2, 3])),
        // The same instant as user 2's erasure, written in another offset.
        ("2015-06-01T02:00:00+02:00", 2, users(&[2, 3])),
        ("2015-06-01T00:00:00.001Z", 1, users(&[3])),
    ] {
        let run = verify(&world, &["--since", since], &[]).await;
        run.assert_code(1);
        assert_eq!(findings(&run), found, "--since {since}");
        assert_eq!(
            closing(&run)["users_checked"],
            checked,
            "--since {since}: {}",
            run.stdout
        );
    }

    // The repair erases only those users: user 1 stays.
    let run = verify(
        &world,
        &["--since", "2010-01-01T00:00:00Z", "--repair"],
        &[],
    )
    .await;
    run.assert_code(0);
    assert_eq!(env.users().await, [1, 4, 5, 6]);
    world.env.cleanup().await;
}

async fn max_findings_limits_the_lines_not_the_totals(engine: Engine) {
    let world = erased_world(engine).await;
    write_back_five(&world.env).await;

    let run = verify(&world, &["--max-findings", "2"], &[]).await;
    run.assert_code(1);
    let printed = findings(&run);
    assert_eq!(printed.len(), 2, "{}", run.stdout);
    let all = five_findings();
    assert!(
        printed.iter().all(|l| all.contains(l)) && printed[0] != printed[1],
        "{printed:?}"
    );
    assert_eq!(
        closing(&run),
        json!({"command": "verify", "outcome": "findings", "users_checked": 3,
               "findings": 5, "tables": five_tables()})
    );
    run.assert_logged("3 more findings not printed");
    world.env.cleanup().await;
}

async fn a_verify_without_a_record_or_with_a_bad_since_is_exit_2_before_any_contact(
    engine: Engine,
) {
    let stand_ins = StandIns::new();
    // The stand-in database under the engine's scheme.
    let url = match engine {
        Engine::MariaDb => stand_ins.url(),
        Engine::Postgres => stand_ins.url_with("postgres", "/app"),
    };
    let maps = MapDir::new();
    let map = maps.write_arg(MAP);
    for (args, error) in [
        (
            vec!["verify", "--erasure-map", &map],
            "verify checks the users of the erasure record: give its table",
        ),
        (
            vec![
                "verify",
                "--erasure-map",
                &map,
                "--erasure-record",
                "erased",
                "--since",
                "yesterday",
            ],
            "invalid --since: \"yesterday\" is not an RFC 3339 time",
        ),
    ] {
        let mut command = job_command(&args);
        command.envs(stand_ins.env());
        command.env("DATABASE_URL", &url);
        let run = Run::from(command.output().await.unwrap());
        run.assert_code(2).assert_logged(error);
        assert!(
            stand_ins.database.accept().is_err(),
            "{args:?} contacted the database"
        );
        assert!(
            stand_ins.emulator.accept().is_err(),
            "{args:?} contacted Pub/Sub"
        );
    }
}
