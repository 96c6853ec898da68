//! What the erasure map's tests read back from a run: the summary's rows per
//! table, `check`'s findings and grants; and locks held on the test's tables.

use std::collections::BTreeSet;
use std::net::TcpListener;

use mysql_async::prelude::Queryable as _;
use serde::Deserialize;

use super::stand_ins::listener;
use super::{Run, TestEnv};

impl TestEnv {
    /// A root connection that reads what open transactions have not
    /// committed: what a job stopped mid-transaction has done so far.
    pub async fn dirty_connection(&self) -> mysql_async::Conn {
        let mut dirty = self.own_connection().await;
        dirty
            .query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")
            .await
            .unwrap();
        dirty
    }

    /// `user-purge check` against this test's database, with a stand-in for
    /// Pub/Sub that it must never contact; `vars` are more variables.
    pub async fn check(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let pubsub: TcpListener = listener();
        let host = pubsub.local_addr().unwrap().to_string();
        let mut all = vec!["check"];
        all.extend(args);
        let mut vars = vars.to_vec();
        vars.push(("PUBSUB_EMULATOR_HOST", host.as_str()));
        let run = self.run_with_env(&all, &vars).await;
        assert!(
            pubsub.accept().is_err(),
            "check contacted Pub/Sub:\n{}",
            run.stderr
        );
        run
    }
}

/// The summary's `tables`, in the order the job printed them.
pub fn tables(run: &Run) -> Vec<(String, u64)> {
    struct InOrder(Vec<(String, u64)>);
    impl<'de> Deserialize<'de> for InOrder {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<InOrder, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = InOrder;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object of row counts")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<InOrder, A::Error> {
                    let mut entries = Vec::new();
                    while let Some(entry) = map.next_entry::<String, u64>()? {
                        entries.push(entry);
                    }
                    Ok(InOrder(entries))
                }
            }
            d.deserialize_map(Visitor)
        }
    }
    #[derive(Deserialize)]
    struct Line {
        tables: Option<InOrder>,
    }
    run.summary(); // exactly one line, and JSON
    let line: Line = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("`tables` is not an object of counts ({e}): {}", run.stdout));
    match line.tables {
        Some(tables) => tables.0,
        None => panic!(
            "the summary has no `tables`: {}\nstderr:\n{}",
            run.stdout, run.stderr
        ),
    }
}

pub fn counts(entries: &[(&str, u64)]) -> Vec<(String, u64)> {
    entries.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

pub fn id_list(ids: &BTreeSet<u64>) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// Holds a lock on every row of `table` until the connection is dropped.
pub async fn lock_table(env: &TestEnv, table: &str) -> mysql_async::Conn {
    let mut conn = env.own_connection().await;
    conn.query_drop("START TRANSACTION").await.unwrap();
    conn.query_drop(format!("SELECT * FROM {table} FOR UPDATE"))
        .await
        .unwrap();
    conn
}

/// Rolls back what an [own connection](TestEnv::own_connection) held, and
/// closes it.
pub async fn release(mut conn: mysql_async::Conn) {
    conn.query_drop("ROLLBACK").await.unwrap();
    conn.disconnect().await.unwrap();
}

/// One finding of `check`.
#[derive(Debug, Deserialize)]
pub struct Finding {
    pub table: String,
    pub column: String,
    pub finding: String,
    pub why: String,
}

/// The findings `check` printed, one JSON object a line, as (table, column,
/// finding); each must say why, and come once.
pub fn findings(run: &Run) -> BTreeSet<(String, String, String)> {
    let mut found = BTreeSet::new();
    for line in run.stdout.lines() {
        let finding: Finding = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a line of check's stdout is not a finding ({e}): {line}"));
        assert!(
            !finding.why.trim().is_empty(),
            "a finding without a why: {line}"
        );
        assert!(
            found.insert((finding.table, finding.column, finding.finding)),
            "a finding printed twice: {line}"
        );
    }
    found
}

pub fn finding(table: &str, column: &str, what: &str) -> (String, String, String) {
    (table.to_owned(), column.to_owned(), what.to_owned())
}

/// The GRANT statements `check --grants` printed, normalised: (privileges,
/// sorted; the object without backticks or double quotes; the grantee
/// without spaces). Every
/// line must be a GRANT, a `--` comment or blank.
pub fn grants(run: &Run) -> BTreeSet<(Vec<String>, String, String)> {
    let mut grants = BTreeSet::new();
    for line in run.stdout.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("--") {
            continue;
        }
        let statement = line.trim_end_matches(';');
        let upper = statement.to_uppercase();
        let (Some(on), Some(to)) = (upper.find(" ON "), upper.find(" TO ")) else {
            panic!("not a GRANT statement: {line}");
        };
        assert!(upper.starts_with("GRANT "), "not a GRANT statement: {line}");
        let mut privileges: Vec<String> = upper["GRANT ".len()..on]
            .split(',')
            .map(|p| p.trim().to_owned())
            .collect();
        privileges.sort();
        let object = statement[on + " ON ".len()..to]
            .trim()
            .replace(['`', '"'], "");
        let grantee = statement[to + " TO ".len()..].replace(' ', "");
        assert!(
            grants.insert((privileges, object, grantee)),
            "a GRANT printed twice: {line}"
        );
    }
    grants
}

pub fn grant(privileges: &[&str], object: String, grantee: &str) -> (Vec<String>, String, String) {
    let mut privileges: Vec<String> = privileges.iter().map(|p| p.to_string()).collect();
    privileges.sort();
    (privileges, object, grantee.replace(' ', ""))
}
