//! `user-purge check`: every place a user's data may live that neither the
//! erasure map nor a foreign-key cascade covers, found in the schema's facts
//! (pure logic over [`Schema`]); and the least-privilege grants the map needs.
//!
//! Deletion declared per table is only as good as the declarations: the
//! check looks for what they miss, as Facebook's DELF does for its data types,
//! and follows the graph as Fides does: from the users table through every
//! mapped table's key, every foreign key, and every column that holds an email.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::map::{Action, Entry, Identifier, Map};
use crate::store::schema::Schema;
use crate::store::sql::{self, Dialect};

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
    /// A personal column (an email) that a `[[redact]]` entry of its table
    /// leaves as it is.
    #[serde(rename = "kept personal column")]
    KeptPersonal,
    /// A mapped column without an index: each run scans the whole table.
    #[serde(rename = "no index")]
    NoIndex,
    /// The check's account may not see every table: a clean result would
    /// say nothing of the tables it cannot see.
    #[serde(rename = "not visible")]
    NotVisible,
}

/// One finding, printed as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub table: String,
    pub column: String,
    pub finding: Kind,
    pub why: String,
}

/// What the check read of the database.
#[derive(Debug, Default)]
pub struct Seen {
    pub schema: Schema,
    /// Columns whose names `--user-columns` matched (the database evaluates
    /// the REGEXP, so it means what MySQL means by it).
    pub user_named: BTreeSet<(String, String)>,
    /// Columns whose names `--personal-columns` matched.
    pub personal_named: BTreeSet<(String, String)>,
    /// Why the account may not see every table, when its grants say so.
    pub hidden: Option<String>,
}

/// (table, column), as the schema names them.
type Place = (String, String);

fn place(table: &Identifier, column: &Identifier) -> Place {
    (table.as_str().to_owned(), column.as_str().to_owned())
}

/// An email column by its name: `email`, `*_email`, `email_*`.
fn names_an_email(column: &str) -> bool {
    let column = column.to_ascii_lowercase();
    column == "email" || column.ends_with("_email") || column.starts_with("email_")
}

/// The findings, sorted by table and column.
pub fn findings(seen: &Seen, map: &Map, record: Option<&Identifier>) -> Vec<Finding> {
    let schema = &seen.schema;
    let mapped_tables: BTreeSet<&str> = map.entries().iter().map(|e| e.table.as_str()).collect();
    let mut covered: BTreeSet<Place> = map
        .entries()
        .iter()
        .map(|e| place(&e.table, &e.column))
        .collect();
    let mut found: BTreeMap<Place, (Kind, String)> = BTreeMap::new();
    let is_record = |table: &str| record.is_some_and(|r| r.as_str() == table);

    // Foreign keys, from the tables the map deletes from through every
    // cascade: any mapped table, not only the users table.
    let mut erased: Vec<String> = map
        .entries()
        .iter()
        .filter(|e| e.action == Action::Delete)
        .map(|e| e.table.as_str().to_owned())
        .collect();
    let mut seen_tables: BTreeSet<String> = erased.iter().cloned().collect();
    while let Some(parent) = erased.pop() {
        for fk in schema.foreign_keys.iter().filter(|fk| fk.parent == parent) {
            let key = (fk.child.clone(), fk.column.clone());
            let rule = fk.on_delete.to_ascii_uppercase();
            if mapped_tables.contains(fk.child.as_str()) {
                // A child the map deletes from before its parent has no rows
                // left to hold the parent back; one it only redacts (or
                // deletes after) keeps them, and a RESTRICT key then refuses.
                let restricts = matches!(rule.as_str(), "RESTRICT" | "NO ACTION");
                if restricts && !deleted_before(map, &fk.child, &parent) {
                    covered.insert(key.clone());
                    found.insert(
                        key,
                        (
                            Kind::RefusesDelete,
                            format!(
                                "a foreign key to {}.{} ON DELETE {rule} from rows the map keeps \
                                 (it redacts them, or deletes them only after {parent}): erasing a \
                                 user who has rows here is refused; make the key ON DELETE SET NULL, \
                                 or delete the rows before {parent}",
                                fk.parent, fk.parent_column
                            ),
                        ),
                    );
                }
                continue;
            }
            let (kind, why) = match rule.as_str() {
                "CASCADE" => {
                    covered.insert(key);
                    if seen_tables.insert(fk.child.clone()) {
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
    // A table whose rows go (deleted by the map or by a cascade) takes every
    // column with it; the record is the job's own.
    let open = |(table, column): &Place| {
        !seen_tables.contains(table)
            && !covered.contains(&(table.clone(), column.clone()))
            && !is_record(table)
    };

    // Columns whose names refer to the user.
    let users = map.users_table().as_str();
    let unqualified = map.users_table().unqualified();
    let singular = unqualified.strip_suffix('s').unwrap_or(unqualified);
    let mut names: BTreeSet<String> = ["user_id".to_owned(), format!("{singular}_id")].into();
    // The mapped columns that hold the user id, but the users table's own key
    // (often `id`, which every table has).
    for (i, entry) in map.entries().iter().enumerate() {
        if i != map.users_entry() && entry.via.is_empty() {
            names.insert(entry.column.as_str().to_ascii_lowercase());
        }
    }
    for key in schema.columns.keys() {
        let by_name = names.contains(&key.1.to_ascii_lowercase()) || seen.user_named.contains(key);
        if by_name && open(key) {
            found.entry(key.clone()).or_insert_with(|| {
                (
                    Kind::NotCovered,
                    "its name looks like a reference to the user, and neither the map nor a cascading \
                     foreign key covers it"
                        .to_owned(),
                )
            });
        }
    }

    // Columns named after a mapped table's key: `order_id` or `orders_id`
    // when `orders` is mapped, rows that belong to the user through it.
    for entry in map.entries() {
        let table = entry.table.as_str();
        if table == users {
            continue;
        }
        let key = schema.primary.get(table).map_or("id", String::as_str);
        let unqualified = entry.table.unqualified();
        let singular = unqualified.strip_suffix('s').unwrap_or(unqualified);
        let names = [format!("{singular}_{key}"), format!("{unqualified}_{key}")];
        for column in schema.columns.keys() {
            if column.0 == table || !names.contains(&column.1.to_ascii_lowercase()) || !open(column)
            {
                continue;
            }
            found.entry(column.clone()).or_insert_with(|| {
                (
                    Kind::NotCovered,
                    format!(
                        "its name refers to {table}.{key}, the key of a mapped table: the rows of a \
                         removed user's {table} stay; add an entry{}",
                        suggest_via(entry, key)
                    ),
                )
            });
        }
    }

    // Columns that hold an email address, or personal data by --personal-columns.
    for key in schema.columns.keys() {
        let personal = names_an_email(&key.1) || seen.personal_named.contains(key);
        if !personal || seen_tables.contains(&key.0) || is_record(&key.0) {
            continue;
        }
        let redactions: Vec<&Entry> = map
            .entries()
            .iter()
            .filter(|e| e.table.as_str() == key.0 && e.action != Action::Delete)
            .collect();
        let finding = if redactions.is_empty() {
            (
                Kind::NotCovered,
                "it holds personal data (an email address, by its name), and no entry covers its \
                 table; a via through the users table's email reaches such rows"
                    .to_owned(),
            )
        } else if redactions
            .iter()
            .any(|e| e.redacted().iter().any(|c| c.as_str() == key.1))
        {
            continue;
        } else {
            (
                Kind::KeptPersonal,
                "it holds personal data (an email address, by its name), and the [[redact]] entry \
                 of its table keeps it; add it to null or replace"
                    .to_owned(),
            )
        };
        found.entry(key.clone()).or_insert(finding);
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

    // Mapped columns without an index: the entry's own, and each hop's key.
    let mut probed: Vec<Place> = Vec::new();
    for entry in map.entries() {
        probed.push(place(&entry.table, &entry.column));
        probed.extend(entry.via.iter().map(|hop| place(&hop.table, &hop.key)));
    }
    let mut reported = BTreeSet::new();
    for key in probed {
        if schema.columns.contains_key(&key)
            && !schema.indexed.contains(&key)
            && reported.insert(key.clone())
        {
            findings.push(Finding {
                table: key.0,
                column: key.1,
                finding: Kind::NoIndex,
                why: "no index starts with this column: each run scans the whole table for the ids"
                    .to_owned(),
            });
        }
    }
    if let Some(why) = &seen.hidden {
        findings.push(Finding {
            table: "*".to_owned(),
            column: "*".to_owned(),
            finding: Kind::NotVisible,
            why: why.clone(),
        });
    }
    findings.sort();
    findings
}

/// Whether the map deletes from `child` before its first delete from
/// `parent`; a parent reached only by a cascade counts as deleted last.
fn deleted_before(map: &Map, child: &str, parent: &str) -> bool {
    let first_delete = |table: &str| {
        map.entries()
            .iter()
            .position(|e| e.action == Action::Delete && e.table.as_str() == table)
    };
    match (first_delete(child), first_delete(parent)) {
        (Some(child), Some(parent)) => child < parent,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The `via` that reaches a mapped table's rows by its key, as a hint.
fn suggest_via(entry: &Entry, key: &str) -> String {
    if entry.via.is_empty() {
        format!(
            " with via = [{{ table = \"{}\", key = \"{}\", value = \"{key}\" }}]",
            entry.table, entry.column
        )
    } else {
        format!(" that goes via {} as that table's entry does", entry.table)
    }
}

/// The least-privilege grants the job needs: `SELECT, DELETE` on the tables
/// it deletes from, `SELECT, UPDATE` on those it redacts, `SELECT, INSERT` on
/// the erasure record (`SELECT` because the statements read the id column,
/// and the job reads the columns' types at connect); then, as comments, what
/// the job's account needs on each replica to read its lag, and what the
/// check's and verify's own accounts need. The replicas' lines are comments:
/// the check knows neither whether there are any nor which server they run.
pub fn grants(
    dialect: Dialect,
    database: &str,
    map: &Map,
    record: Option<&Identifier>,
    grantee: &str,
) -> String {
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
        // A via reads its hop tables.
        for hop in &entry.via {
            let table = hop.table.as_str();
            if !privileges.contains_key(table) {
                order.push(table);
            }
            privileges.entry(table).or_default().insert("SELECT");
        }
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
    for table in &order {
        // SELECT first, then the rest in alphabetical order.
        let mut list: Vec<&str> = privileges[table].iter().copied().collect();
        list.sort_by_key(|p| (*p != "SELECT", *p));
        text.push_str(&sql::grant(dialect, &list, database, table, grantee));
        text.push('\n');
    }
    let (check_account, verify_account) = match dialect {
        Dialect::MySql => ("'user_purge_check'@'%'", "'user_purge_verify'@'%'"),
        Dialect::Postgres => ("user_purge_check", "user_purge_verify"),
    };
    match dialect {
        // MariaDB split the old REPLICATION CLIENT in 10.5; SHOW REPLICA
        // STATUS moved to REPLICATION SLAVE ADMIN, then, from 10.5.9, to
        // REPLICA MONITOR.
        Dialect::MySql => {
            text.push_str(&format!(
                "-- on each --replica-url, for its lag (SHOW REPLICA STATUS):\n\
                 -- {} -- MariaDB 10.5.9 and later (SLAVE MONITOR is the same; \
                 REPLICATION SLAVE ADMIN on 10.5.0 to 10.5.8)\n\
                 -- {} -- MySQL, and MariaDB before 10.5\n",
                sql::grant_global("REPLICA MONITOR", grantee),
                sql::grant_global("REPLICATION CLIENT", grantee)
            ));
            text.push_str(&format!(
                "-- user-purge check reads the whole schema; give it an account of its own:\n\
                 -- {}\n",
                sql::grant_schema_read(database, check_account)
            ));
        }
        // PUBLIC may connect, use the public schema and call the recovery
        // functions by default; a hardened database may have revoked the first two.
        Dialect::Postgres => {
            let database = dialect.quote(database);
            text.push_str(&format!(
                "-- where PUBLIC's defaults were revoked, also:\n\
                 -- GRANT CONNECT ON DATABASE {database} TO {grantee};\n\
                 -- GRANT USAGE ON SCHEMA \"public\" TO {grantee}; -- and each schema of the map's tables\n\
                 -- on each --replica-url, for its lag: nothing more (pg_is_in_recovery(),\n\
                 -- pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp(),\n\
                 -- pg_get_wal_replay_pause_state() and pg_stat_wal_receiver are PUBLIC's; where that\n\
                 -- was revoked: GRANT pg_monitor TO {grantee};)\n\
                 -- user-purge check reads pg_catalog only, which every role may read: CONNECT is enough\n\
                 -- for {check_account}\n"
            ));
        }
    }
    // verify reads what the job erases and the record; --repair erases with
    // the job's own statements and writes nothing to the record.
    if record.is_some() {
        text.push_str(
            "-- user-purge verify reads the same tables and the record: SELECT only, e.g.\n",
        );
        for table in &order {
            text.push_str(&format!(
                "-- {}\n",
                sql::grant(dialect, &["SELECT"], database, table, verify_account)
            ));
        }
        text.push_str(
            "-- user-purge verify --repair needs the job's privileges above (no INSERT is used)\n",
        );
    }
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

    fn seen(schema: Schema) -> Seen {
        Seen {
            schema,
            ..Seen::default()
        }
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
        let findings = findings(&seen(schema()), &map(), Some(&erased));
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
        let seen = Seen {
            user_named: named,
            ..seen(schema())
        };
        let findings = findings(&seen, &map(), None);
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
        assert_eq!(findings(&seen(schema), &map, None), []);
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
        let text = grants(Dialect::MySql, "app", &map(), Some(&erased), "'purger'@'%'");
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
        // verify's account reads the same tables and the record.
        let verify: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("'user_purge_verify'"))
            .collect();
        assert_eq!(
            verify,
            [
                "-- GRANT SELECT ON `app`.`sessions` TO 'user_purge_verify'@'%';",
                "-- GRANT SELECT ON `app`.`invoices` TO 'user_purge_verify'@'%';",
                "-- GRANT SELECT ON `app`.`users` TO 'user_purge_verify'@'%';",
                "-- GRANT SELECT ON `app`.`erased` TO 'user_purge_verify'@'%';",
            ]
        );
        // What the lag query needs on each replica, for the same account.
        let replicas: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("-- on each --replica-url"))
            .take(3)
            .collect();
        assert_eq!(
            replicas[..],
            [
                "-- on each --replica-url, for its lag (SHOW REPLICA STATUS):",
                "-- GRANT REPLICA MONITOR ON *.* TO 'purger'@'%'; -- MariaDB 10.5.9 and later \
                 (SLAVE MONITOR is the same; REPLICATION SLAVE ADMIN on 10.5.0 to 10.5.8)",
                "-- GRANT REPLICATION CLIENT ON *.* TO 'purger'@'%'; -- MySQL, and MariaDB before 10.5",
            ]
        );
    }

    /// The issue's shop: orders (user_id), order_items and shipping keyed
    /// by order_id, a newsletter keyed by email, tickets naming the requester
    /// by email; no foreign keys. Every column indexed.
    fn shop() -> Seen {
        let columns = [
            ("users", "id"),
            ("users", "email"),
            ("orders", "id"),
            ("orders", "user_id"),
            ("order_items", "id"),
            ("order_items", "order_id"),
            ("shipping", "order_id"),
            ("shipping", "address"),
            ("shipping", "carrier"),
            ("newsletter", "email"),
            ("tickets", "id"),
            ("tickets", "requester_email"),
            ("tickets", "subject"),
        ];
        let places: BTreeSet<Place> = columns
            .iter()
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect();
        seen(Schema {
            columns: places.iter().map(|p| (p.clone(), column())).collect(),
            indexed: places,
            primary: [
                ("orders", "id"),
                ("users", "id"),
                ("order_items", "id"),
                ("tickets", "id"),
            ]
            .iter()
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect(),
            ..Schema::default()
        })
    }

    const SHOP_MAP: &str = r#"
[[delete]]
table = "order_items"
column = "order_id"
via = [{ table = "orders", key = "user_id", value = "id" }]

[[redact]]
table = "shipping"
column = "order_id"
via = [{ table = "orders", key = "user_id", value = "id" }]
null = ["address"]

[[delete]]
table = "newsletter"
column = "email"
via = [{ table = "users", key = "id", value = "email" }]

[[delete]]
table = "tickets"
column = "requester_email"
via = [{ table = "users", key = "id", value = "email" }]

[[delete]]
table = "orders"
column = "user_id"

[[delete]]
table = "users"
column = "id"
"#;

    #[test]
    fn the_graph_is_followed_through_mapped_keys_and_emails() {
        let orders_and_users = Map::parse(
            "map.toml",
            "[[delete]]\ntable = \"orders\"\ncolumn = \"user_id\"\n\n\
             [[delete]]\ntable = \"users\"\ncolumn = \"id\"\n",
        )
        .unwrap();
        let found = findings(&shop(), &orders_and_users, None);
        assert_eq!(
            summary(&found),
            [
                row("newsletter", "email", Kind::NotCovered),
                row("order_items", "order_id", Kind::NotCovered),
                row("shipping", "order_id", Kind::NotCovered),
                row("tickets", "requester_email", Kind::NotCovered),
            ]
        );
        assert!(
            found[1].why.contains(
                "its name refers to orders.id, the key of a mapped table: the rows of a removed \
                 user's orders stay; add an entry with via = [{ table = \"orders\", key = \"user_id\", value = \"id\" }]"
            ),
            "{:?}",
            found[1]
        );
        assert!(found[0].why.contains("email"), "{:?}", found[0]);
    }

    #[test]
    fn the_complete_map_of_the_shop_finds_nothing() {
        let map = Map::parse("map.toml", SHOP_MAP).unwrap();
        assert_eq!(findings(&shop(), &map, None), []);
    }

    #[test]
    fn a_redaction_that_keeps_an_email_is_a_kept_personal_column() {
        let map = Map::parse(
            "map.toml",
            &SHOP_MAP.replace(
                "[[delete]]\ntable = \"tickets\"",
                "[[redact]]\nnull = [\"subject\"]\ntable = \"tickets\"",
            ),
        )
        .unwrap();
        let found = findings(&shop(), &map, None);
        assert_eq!(
            summary(&found),
            [row("tickets", "requester_email", Kind::KeptPersonal)]
        );
    }

    #[test]
    fn personal_columns_widen_what_counts_and_hidden_tables_are_said() {
        let map = Map::parse("map.toml", SHOP_MAP).unwrap();
        let seen = Seen {
            personal_named: BTreeSet::from([("shipping".to_owned(), "carrier".to_owned())]),
            hidden: Some("no SELECT on `app`.*".to_owned()),
            ..shop()
        };
        let found = findings(&seen, &map, None);
        assert_eq!(
            summary(&found),
            [
                row("*", "*", Kind::NotVisible),
                row("shipping", "carrier", Kind::KeptPersonal),
            ]
        );
        assert_eq!(found[0].why, "no SELECT on `app`.*");
    }

    #[test]
    fn a_hop_key_without_an_index_is_found() {
        let map = Map::parse("map.toml", SHOP_MAP).unwrap();
        let mut seen = shop();
        seen.schema
            .indexed
            .remove(&("orders".to_owned(), "user_id".to_owned()));
        let found = findings(&seen, &map, None);
        assert_eq!(summary(&found), [row("orders", "user_id", Kind::NoIndex)]);
    }

    #[test]
    fn grants_on_postgres_are_per_table_and_need_nothing_on_the_replicas() {
        let erased = Identifier::parse("erased").unwrap();
        let text = grants(Dialect::Postgres, "app", &map(), Some(&erased), "purger");
        let statements: Vec<&str> = text.lines().filter(|l| !l.starts_with("--")).collect();
        assert_eq!(
            statements,
            [
                "GRANT SELECT, DELETE ON TABLE \"sessions\" TO purger;",
                "GRANT SELECT, UPDATE ON TABLE \"invoices\" TO purger;",
                "GRANT SELECT, DELETE ON TABLE \"users\" TO purger;",
                "GRANT SELECT, INSERT ON TABLE \"erased\" TO purger;",
            ]
        );
        assert!(
            text.contains("-- GRANT CONNECT ON DATABASE \"app\" TO purger;"),
            "{text}"
        );
        assert!(
            text.contains("-- GRANT SELECT ON TABLE \"erased\" TO user_purge_verify;"),
            "{text}"
        );
        // No MySQL statement slips in.
        assert!(!text.contains('`') && !text.contains("*.*"), "{text}");
    }

    #[test]
    fn grants_add_select_on_the_hop_tables() {
        let map = Map::parse("map.toml", SHOP_MAP).unwrap();
        let text = grants(Dialect::MySql, "app", &map, None, "'purger'@'%'");
        let statements: Vec<&str> = text.lines().filter(|l| !l.starts_with("--")).collect();
        assert_eq!(
            statements,
            [
                "GRANT SELECT, DELETE ON `app`.`order_items` TO 'purger'@'%';",
                "GRANT SELECT, DELETE ON `app`.`orders` TO 'purger'@'%';",
                "GRANT SELECT, UPDATE ON `app`.`shipping` TO 'purger'@'%';",
                "GRANT SELECT, DELETE ON `app`.`newsletter` TO 'purger'@'%';",
                "GRANT SELECT, DELETE ON `app`.`users` TO 'purger'@'%';",
                "GRANT SELECT, DELETE ON `app`.`tickets` TO 'purger'@'%';",
            ]
        );
    }

    #[test]
    fn a_restrict_key_from_rows_the_map_keeps_refuses_the_parent() {
        let mut seen = shop();
        let mut restrict = fk("shipping", "orders", "RESTRICT");
        restrict.column = "order_id".into();
        seen.schema.foreign_keys.push(restrict);
        let map = Map::parse("map.toml", SHOP_MAP).unwrap();
        let found = findings(&seen, &map, None);
        assert_eq!(
            summary(&found),
            [row("shipping", "order_id", Kind::RefusesDelete)]
        );
        assert!(
            found[0].why.contains("from rows the map keeps"),
            "{:?}",
            found[0]
        );
        // order_items, deleted before orders: nothing left to hold it back.
        let mut items = fk("order_items", "orders", "RESTRICT");
        items.column = "order_id".into();
        let mut seen = shop();
        seen.schema.foreign_keys.push(items);
        assert_eq!(findings(&seen, &map, None), []);
    }
}
