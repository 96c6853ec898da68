//! `user-purge check`: every place a user's data may live that neither the
//! erasure map nor a foreign-key cascade covers, found in the schema's facts
//! (pure logic over [`Schema`]); and the least-privilege grants the map needs.
//!
//! Deletion declared per table is only as good as the declarations: the
//! check looks for what they miss, as Facebook's DELF does for its data types.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::map::{Action, Identifier, Map};
use crate::store::schema::Schema;
use crate::store::sql;

/// What a finding says of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Kind {
    /// A user's data may stay here after an erasure.
    #[serde(rename = "not covered")]
    NotCovered,
    /// A foreign key that will refuse to let the user's rows go: the run
    /// then completes partially.
    #[serde(rename = "refuses delete")]
    RefusesDelete,
    /// A mapped column without an index: each run scans the whole table.
    #[serde(rename = "no index")]
    NoIndex,
}

/// One finding, printed as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub table: String,
    pub column: String,
    pub finding: Kind,
    pub why: String,
}

/// The findings, sorted by table and column.
///
/// `named`: the columns whose names `--user-columns` matched (the database
/// evaluates the REGEXP, so it means what MySQL means by it).
pub fn findings(
    schema: &Schema,
    map: &Map,
    record: Option<&Identifier>,
    named: &BTreeSet<(String, String)>,
) -> Vec<Finding> {
    let pair = |t: &Identifier, c: &Identifier| (t.as_str().to_owned(), c.as_str().to_owned());
    let mapped_tables: BTreeSet<&str> = map.entries().iter().map(|e| e.table.as_str()).collect();
    let mut covered: BTreeSet<(String, String)> = map
        .entries()
        .iter()
        .map(|e| pair(&e.table, &e.column))
        .collect();
    let mut found = BTreeMap::new();

    // Foreign keys, from the tables the map deletes from through every cascade.
    let mut erased: Vec<String> = map
        .entries()
        .iter()
        .filter(|e| e.action == Action::Delete)
        .map(|e| e.table.as_str().to_owned())
        .collect();
    let mut seen: BTreeSet<String> = erased.iter().cloned().collect();
    while let Some(parent) = erased.pop() {
        for fk in schema.foreign_keys.iter().filter(|fk| fk.parent == parent) {
            let key = (fk.child.clone(), fk.column.clone());
            if mapped_tables.contains(fk.child.as_str()) {
                continue;
            }
            let rule = fk.on_delete.to_ascii_uppercase();
            let (kind, why) = match rule.as_str() {
                "CASCADE" => {
                    covered.insert(key);
                    if seen.insert(fk.child.clone()) {
                        erased.push(fk.child.clone());
                    }
                    continue;
                }
                "RESTRICT" | "NO ACTION" => (
                    Kind::RefusesDelete,
                    format!(
                        "a foreign key to {}.{} ON DELETE {rule}: erasing a user who has rows here is refused; \
                         add the table to the map before {parent}, or make the key ON DELETE CASCADE",
                        fk.parent, fk.parent_column
                    ),
                ),
                _ => (
                    Kind::NotCovered,
                    format!(
                        "a foreign key to {}.{} ON DELETE {rule}: the rows stay, with everything else they hold; \
                         add the table to the map",
                        fk.parent, fk.parent_column
                    ),
                ),
            };
            covered.insert(key.clone());
            found.insert(key, (kind, why));
        }
    }

    // Columns whose names refer to the user.
    let users = map.users_table().as_str();
    let singular = users.strip_suffix('s').unwrap_or(users);
    let mut names: BTreeSet<String> = ["user_id".to_owned(), format!("{singular}_id")].into();
    // The mapped columns' names, but the users table's own key (often `id`,
    // which every table has).
    for (i, entry) in map.entries().iter().enumerate() {
        if i != map.users_entry() {
            names.insert(entry.column.as_str().to_ascii_lowercase());
        }
    }
    for (table, column) in schema.columns.keys() {
        let key = (table.clone(), column.clone());
        let by_name = names.contains(&column.to_ascii_lowercase()) || named.contains(&key);
        // A table whose rows go (deleted by the map or by a cascade) takes
        // every column with it.
        let row_goes = seen.contains(table);
        if !by_name
            || row_goes
            || covered.contains(&key)
            || record.is_some_and(|r| r.as_str() == table)
        {
            continue;
        }
        found.entry(key).or_insert_with(|| {
            (
                Kind::NotCovered,
                "its name looks like a reference to the user, and neither the map nor a cascading \
                 foreign key covers it"
                    .to_owned(),
            )
        });
    }

    let mut findings: Vec<Finding> = found
        .into_iter()
        .map(|((table, column), (finding, why))| Finding {
            table,
            column,
            finding,
            why,
        })
        .collect();

    // Mapped columns without an index.
    for entry in map.entries() {
        let key = pair(&entry.table, &entry.column);
        if schema.columns.contains_key(&key) && !schema.indexed.contains(&key) {
            findings.push(Finding {
                table: key.0,
                column: key.1,
                finding: Kind::NoIndex,
                why: "no index starts with this column: each run scans the whole table for the ids"
                    .to_owned(),
            });
        }
    }
    findings.sort();
    findings
}

/// The least-privilege grants the job needs: `SELECT, DELETE` on the tables
/// it deletes from, `SELECT, UPDATE` on those it redacts, `SELECT, INSERT` on
/// the erasure record (`SELECT` because the statements read the id column,
/// and the job reads the columns' types at connect); then, as a comment, the
/// read-only grant for the check's own account.
pub fn grants(database: &str, map: &Map, record: Option<&Identifier>, grantee: &str) -> String {
    let mut privileges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for entry in map.entries() {
        let table = entry.table.as_str();
        if !privileges.contains_key(table) {
            order.push(table);
        }
        let set = privileges.entry(table).or_default();
        set.insert("SELECT");
        set.insert(match entry.action {
            Action::Delete => "DELETE",
            Action::Redact { .. } => "UPDATE",
        });
    }
    if let Some(record) = record {
        let table = record.as_str();
        if !privileges.contains_key(table) {
            order.push(table);
        }
        let set = privileges.entry(table).or_default();
        set.insert("SELECT");
        set.insert("INSERT");
    }
    let mut text = String::from("-- user-purge (the job): least privilege for the erasure map\n");
    for table in order {
        // SELECT first, then the rest in alphabetical order.
        let mut list: Vec<&str> = privileges[table].iter().copied().collect();
        list.sort_by_key(|p| (*p != "SELECT", *p));
        text.push_str(&sql::grant(&list, database, table, grantee));
        text.push('\n');
    }
    text.push_str(&format!(
        "-- user-purge check reads the whole schema; give it an account of its own:\n\
         -- {}\n",
        sql::grant_schema_read(database, "'user_purge_check'@'%'")
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::{Column, ForeignKey};

    fn column() -> Column {
        Column {
            data_type: "bigint".into(),
            column_type: "bigint(20) unsigned".into(),
            nullable: true,
            max_chars: None,
            max_bytes: None,
            charset: None,
            collation: None,
        }
    }

    fn fk(child: &str, parent: &str, on_delete: &str) -> ForeignKey {
        ForeignKey {
            child: child.into(),
            column: "user_id".into(),
            parent: parent.into(),
            parent_column: "id".into(),
            on_delete: on_delete.into(),
        }
    }

    /// users, with: orders (cascade), order_items → orders (cascade), invoices
    /// (redacted by the map), sessions (no foreign key, mapped), analytics
    /// (no foreign key, forgotten), holds (RESTRICT), audit (SET NULL),
    /// notes.owner_id (named only by --user-columns).
    fn schema() -> Schema {
        let columns = [
            ("users", "id"),
            ("users", "email"),
            ("orders", "id"),
            ("orders", "user_id"),
            ("order_items", "order_id"),
            ("order_items", "user_id"),
            ("invoices", "customer_id"),
            ("invoices", "email"),
            ("sessions", "user_id"),
            ("analytics", "user_id"),
            ("holds", "user_id"),
            ("audit", "user_id"),
            ("notes", "owner_id"),
            ("erased", "user_id"),
        ];
        let mut order_items = fk("order_items", "orders", "CASCADE");
        order_items.column = "order_id".into();
        Schema {
            columns: columns
                .iter()
                .map(|(t, c)| ((t.to_string(), c.to_string()), column()))
                .collect(),
            foreign_keys: vec![
                fk("orders", "users", "CASCADE"),
                order_items,
                fk("holds", "users", "RESTRICT"),
                fk("audit", "users", "SET NULL"),
            ],
            indexed: [
                ("users", "id"),
                ("invoices", "customer_id"),
                ("orders", "user_id"),
            ]
            .iter()
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect(),
            ..Schema::default()
        }
    }

    fn map() -> Map {
        crate::config::map::example()
    }

    fn summary(findings: &[Finding]) -> Vec<(String, String, Kind)> {
        findings
            .iter()
            .map(|f| (f.table.clone(), f.column.clone(), f.finding))
            .collect()
    }

    fn row(table: &str, column: &str, kind: Kind) -> (String, String, Kind) {
        (table.into(), column.into(), kind)
    }

    #[test]
    fn it_finds_exactly_what_the_map_and_the_cascades_miss() {
        let erased = Identifier::parse("erased").unwrap();
        let findings = findings(&schema(), &map(), Some(&erased), &BTreeSet::new());
        assert_eq!(
            summary(&findings),
            [
                row("analytics", "user_id", Kind::NotCovered),
                row("audit", "user_id", Kind::NotCovered),
                row("holds", "user_id", Kind::RefusesDelete),
                row("sessions", "user_id", Kind::NoIndex),
            ]
        );
        assert!(findings[1].why.contains("SET NULL"), "{:?}", findings[1]);
        assert!(findings[2].why.contains("RESTRICT"), "{:?}", findings[2]);
    }

    #[test]
    fn user_columns_add_names_and_the_record_is_not_a_gap() {
        let named = BTreeSet::from([("notes".to_owned(), "owner_id".to_owned())]);
        let findings = findings(&schema(), &map(), None, &named);
        let rows = summary(&findings);
        assert!(
            rows.contains(&row("notes", "owner_id", Kind::NotCovered)),
            "{rows:?}"
        );
        // Without --erasure-record, a table named `erased` is just a table.
        assert!(
            rows.contains(&row("erased", "user_id", Kind::NotCovered)),
            "{rows:?}"
        );
    }

    #[test]
    fn a_complete_map_finds_nothing() {
        let mut schema = schema();
        schema
            .columns
            .retain(|(t, _), _| ["users", "orders", "order_items"].contains(&t.as_str()));
        schema.foreign_keys.retain(|fk| fk.on_delete == "CASCADE");
        let map = Map::single(
            Identifier::parse("users").unwrap(),
            Identifier::parse("id").unwrap(),
        );
        assert_eq!(findings(&schema, &map, None, &BTreeSet::new()), []);
    }

    #[test]
    fn findings_print_as_the_documented_json() {
        let finding = Finding {
            table: "holds".into(),
            column: "user_id".into(),
            finding: Kind::RefusesDelete,
            why: "x".into(),
        };
        assert_eq!(
            serde_json::to_string(&finding).unwrap(),
            r#"{"table":"holds","column":"user_id","finding":"refuses delete","why":"x"}"#
        );
    }

    #[test]
    fn grants_are_the_least_the_map_needs() {
        let erased = Identifier::parse("erased").unwrap();
        let text = grants("app", &map(), Some(&erased), "'purger'@'%'");
        let statements: Vec<&str> = text.lines().filter(|l| !l.starts_with("--")).collect();
        assert_eq!(
            statements,
            [
                "GRANT SELECT, DELETE ON `app`.`sessions` TO 'purger'@'%';",
                "GRANT SELECT, UPDATE ON `app`.`invoices` TO 'purger'@'%';",
                "GRANT SELECT, DELETE ON `app`.`users` TO 'purger'@'%';",
                "GRANT SELECT, INSERT ON `app`.`erased` TO 'purger'@'%';",
            ]
        );
    }
}
