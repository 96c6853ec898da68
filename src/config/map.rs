//! The erasure map: where a user's data lives and what happens to it, read
//! once from a TOML file (the toml crate, only here) into validated entries.
//!
//! ```toml
//! [[delete]]                          # DELETE FROM sessions WHERE user_id IN (...)
//! table = "sessions"
//! column = "user_id"
//!
//! [[redact]]                          # keep the row, clear what identifies the person
//! table = "invoices"
//! column = "customer_id"
//! null = ["email", "phone"]
//! replace = { name = "erased user" }
//!
//! [[delete]]
//! table = "users"
//! column = "id"
//! ```
//!
//! The entries run in the order of the file, `[[delete]]` and `[[redact]]`
//! interleaved, in one transaction. Without a map the job erases from one
//! table (`--table`, `--id-column`): the map of one `[[delete]]` entry.
//!
//! An entry whose rows do not hold the user id reaches them through other
//! tables, `via` 1 to [`MAX_HOPS`] hops:
//!
//! ```toml
//! [[delete]]                          # the items of the user's orders
//! table = "order_items"
//! column = "order_id"
//! via = [{ table = "orders", key = "user_id", value = "id" }]
//! ```
//!
//! The first hop takes the rows of its table whose `key` is one of the users
//! and yields their `value`; each later hop matches its `key` against the
//! previous hop's `value`; the entry's `column` is matched against the last
//! hop's `value`. Since the entries run in order, an entry may not go through
//! a table, or a hop column, that an earlier entry deletes or redacts: its
//! rows could never be found. That is checked here, at load.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Spanned;

/// A plain SQL identifier: ASCII letters, digits and `_`, not starting with a
/// digit, at most 64 characters. Anything else is refused rather than escaped,
/// so no configuration value can change a statement's meaning. A table's
/// name may be two of them, `schema.table`, for a PostgreSQL table outside
/// the `search_path` ([`Identifier::parse_table`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identifier(String);

impl Identifier {
    /// The problem it returns names the value and the rule.
    pub fn parse(value: &str) -> Result<Identifier, String> {
        let mut chars = value.chars();
        let plain = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && value.len() <= 64;
        if plain {
            Ok(Identifier(value.to_owned()))
        } else {
            Err(format!(
                "{value:?} is not a plain SQL identifier (ASCII letters, digits and _, \
                 not starting with a digit, at most 64 characters)"
            ))
        }
    }

    /// A table's name: a plain identifier, or `schema.table`, two of them.
    pub fn parse_table(value: &str) -> Result<Identifier, String> {
        match value.split_once('.') {
            Some((schema, table)) => {
                let (Ok(_), Ok(_)) = (Identifier::parse(schema), Identifier::parse(table)) else {
                    return Err(format!(
                        "{value:?} is not a plain SQL identifier, or two joined by a dot \
                         (schema.table), each of ASCII letters, digits and _, not starting \
                         with a digit, at most 64 characters"
                    ));
                };
                Ok(Identifier(value.to_owned()))
            }
            None => Identifier::parse(value),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without its schema: `users` for `app.users`.
    pub fn unqualified(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or(&self.0)
    }

    /// The names it is made of: one, or the schema's and the table's.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl std::fmt::Display for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The most hops a `via` may have.
pub const MAX_HOPS: usize = 4;

/// One step from the user towards an entry's rows: the rows of `table` whose
/// `key` matches (the user id, or the previous hop's value) yield `value`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hop {
    pub table: Identifier,
    pub key: Identifier,
    pub value: Identifier,
}

/// One statement over all of a round's users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub table: Identifier,
    /// The column matched: against the user id, or the last hop's value.
    pub column: Identifier,
    /// The hops from the user to the rows; empty when `column` holds the user id.
    pub via: Vec<Hop>,
    pub action: Action,
    /// `chunked = true`: erased after the atomic transaction of the other
    /// entries, in committed transactions of at most `--chunk-rows` rows.
    pub chunked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `DELETE FROM table WHERE column IN (...)`.
    Delete,
    /// `UPDATE table SET .. WHERE column IN (...)`: the rows stay, the
    /// personal columns are cleared.
    Redact {
        /// Set to NULL.
        null: Vec<Identifier>,
        /// Set to these texts.
        replace: Vec<(Identifier, String)>,
    },
}

impl Entry {
    /// The table and column compared with the user ids themselves: the first
    /// hop's key, or the entry's own column.
    pub fn user_column(&self) -> (&Identifier, &Identifier) {
        match self.via.first() {
            Some(hop) => (&hop.table, &hop.key),
            None => (&self.table, &self.column),
        }
    }

    /// The columns this entry sets (none for a delete).
    pub fn redacted(&self) -> Vec<&Identifier> {
        match &self.action {
            Action::Delete => Vec::new(),
            Action::Redact { null, replace } => {
                null.iter().chain(replace.iter().map(|(c, _)| c)).collect()
            }
        }
    }

    /// `[[delete]] sessions`, for messages.
    pub fn describe(&self) -> String {
        let kind = match self.action {
            Action::Delete => "delete",
            Action::Redact { .. } => "redact",
        };
        format!("[[{kind}]] {}", self.table)
    }
}

/// The entries, in order; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    entries: Vec<Entry>,
}

impl Map {
    /// The map of the single-table mode: one `[[delete]]` entry.
    pub fn single(table: Identifier, column: Identifier) -> Map {
        Map {
            entries: vec![Entry {
                table,
                column,
                via: Vec::new(),
                action: Action::Delete,
                chunked: false,
            }],
        }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The index of the users table's entry: the last, by the rule that
    /// children come before their parents. The one place that decides it.
    pub fn users_entry(&self) -> usize {
        // Never empty: `single` has one entry and `parse` refuses none.
        self.entries.len() - 1
    }

    /// The users table.
    pub fn users_table(&self) -> &Identifier {
        &self.entries[self.users_entry()].table
    }

    /// Reads and validates the map in `path`. The problem it returns names
    /// the file, and the line or the entry.
    pub fn load(path: &str) -> Result<Map, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        Map::parse(path, &text)
    }

    /// Validates the map's text; `file` names it in the problem.
    pub fn parse(file: &str, text: &str) -> Result<Map, String> {
        let raw: RawMap = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| format!(" line {}:", line_of(text, span.start)))
                .unwrap_or_default();
            format!("{file}:{line} {}", e.message().trim())
        })?;
        // Each entry is read on its own, so that a problem in it (an unknown
        // key, a missing one, a wrong type) is named by its entry.
        let mut spanned: Vec<(usize, Result<Entry, String>, String)> = Vec::new();
        for (kind, entries) in [("delete", raw.delete), ("redact", raw.redact)] {
            for entry in entries {
                let start = entry.span().start;
                let table = entry.get_ref().get("table").and_then(|t| t.as_str());
                let what = format!("[[{kind}]] {}", table.unwrap_or("(no table)"));
                let entry = entry.into_inner();
                let validated = if let Some(problem) = wrong_type(&entry) {
                    Err(problem)
                } else if kind == "delete" {
                    entry
                        .try_into::<RawDelete>()
                        .map_err(problem)
                        .and_then(RawDelete::validate)
                } else {
                    entry
                        .try_into::<RawRedact>()
                        .map_err(problem)
                        .and_then(RawRedact::validate)
                };
                spanned.push((start, validated, what));
            }
        }
        if spanned.is_empty() {
            return Err(format!(
                "{file}: the map has no entries; give at least one [[delete]] (the users table, last)"
            ));
        }
        spanned.sort_by_key(|(start, _, _)| *start);
        let mut entries: Vec<Entry> = Vec::with_capacity(spanned.len());
        let mut places: Vec<String> = Vec::with_capacity(spanned.len());
        for (i, (start, entry, what)) in spanned.into_iter().enumerate() {
            let place = format!("entry {} ({what}, line {})", i + 1, line_of(text, start));
            let at = format!("{file}: {place}");
            let entry = entry.map_err(|problem| format!("{at}: {problem}"))?;
            let same = |e: &&Entry| {
                e.table == entry.table && e.column == entry.column && e.via == entry.via
            };
            if let Some(j) = entries.iter().position(|e| same(&e)) {
                let through = if entry.via.is_empty() {
                    String::new()
                } else {
                    " through the same via".to_owned()
                };
                return Err(format!(
                    "{at}: {}.{}{through} is already in {}",
                    entry.table, entry.column, places[j]
                ));
            }
            for (earlier, earlier_place) in entries.iter().zip(&places) {
                // A chunked entry runs after every atomic one; among
                // themselves, each kind keeps the file's order.
                if earlier.chunked && !entry.chunked {
                    continue;
                }
                if let Some(why) = blocked_by(&entry, earlier) {
                    return Err(format!(
                        "{at}: {why} by {earlier_place}, which runs before it: its rows could \
                         never be found; list it before {earlier_place}"
                    ));
                }
            }
            entries.push(entry);
            places.push(place);
        }
        // The atomic entries listed after a chunked one still run before it.
        for (i, entry) in entries.iter().enumerate().filter(|(_, e)| e.chunked) {
            for (later, later_place) in entries.iter().zip(&places).skip(i + 1) {
                if let Some(why) = (!later.chunked).then(|| blocked_by(entry, later)).flatten() {
                    return Err(format!(
                        "{file}: {}: {why} by {later_place}, which runs before it (chunked \
                         entries run after the atomic transaction): its rows could never be found",
                        places[i]
                    ));
                }
            }
        }
        if entries.last().is_some_and(|users| users.chunked) {
            return Err(format!(
                "{file}: {}: the users table's entry (the last) cannot be chunked: it is \
                 erased in the atomic transaction, where a legal hold can refuse it",
                places[entries.len() - 1]
            ));
        }
        Ok(Map { entries })
    }
}

/// Why `entry` can find no rows once `earlier` has run: it goes through a
/// table that `earlier` deletes from, or a hop column that `earlier` redacts,
/// or its own column is one that `earlier` redacts.
fn blocked_by(entry: &Entry, earlier: &Entry) -> Option<String> {
    let redacted = earlier.redacted();
    if earlier.table == entry.table && redacted.contains(&&entry.column) {
        return Some(format!(
            "its column {}.{} is redacted",
            entry.table, entry.column
        ));
    }
    entry.via.iter().find_map(|hop| {
        if hop.table != earlier.table {
            return None;
        }
        match earlier.action {
            Action::Delete => Some(format!(
                "its via goes through {}, whose rows are deleted",
                hop.table
            )),
            Action::Redact { .. } => [&hop.key, &hop.value]
                .into_iter()
                .find(|column| redacted.contains(column))
                .map(|column| {
                    format!(
                        "its via goes through {}.{column}, which is redacted",
                        hop.table
                    )
                }),
        }
    })
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    #[serde(default)]
    delete: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    redact: Vec<Spanned<toml::Table>>,
}

/// The first known key whose value has the wrong type, named: serde's own
/// message says what was found, not where.
fn wrong_type(entry: &toml::Table) -> Option<String> {
    for (key, value) in entry {
        let problem = match key.as_str() {
            "table" | "column" if !value.is_str() => "must be a text (a name)".to_owned(),
            "chunked" if !value.is_bool() => "must be true or false".to_owned(),
            "null" => match value.as_array() {
                None => "must be a list of column names, e.g. [\"email\"]".to_owned(),
                Some(items) if items.iter().any(|i| !i.is_str()) => {
                    "must list column names as texts".to_owned()
                }
                Some(_) => continue,
            },
            "via" => match value.as_array() {
                None => "must be a list of hops, e.g. [{ table = \"orders\", key = \"user_id\", value = \"id\" }]".to_owned(),
                Some(hops) => match hops.iter().find_map(|hop| {
                    let hop = hop.as_table()?;
                    ["table", "key", "value"]
                        .into_iter()
                        .find(|k| hop.get(*k).is_some_and(|v| !v.is_str()))
                }) {
                    Some(k) => format!("{k} of a hop must be a text (a name)"),
                    None if hops.iter().any(|hop| !hop.is_table()) => {
                        "each hop must be { table = ..., key = ..., value = ... }".to_owned()
                    }
                    None => continue,
                },
            },
            "replace" => match value.as_table() {
                None => "must be a table of column = \"text\"".to_owned(),
                Some(table) => match table.iter().find(|(_, v)| !v.is_str()) {
                    Some((column, _)) => format!("{column} must be set to a text"),
                    None => continue,
                },
            },
            _ => continue,
        };
        return Some(format!("{key}: {problem}"));
    }
    None
}

/// A deserialization error as one line.
fn problem(error: toml::de::Error) -> String {
    error.message().trim().replace('\n', " ")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelete {
    table: String,
    column: String,
    via: Option<Vec<RawHop>>,
    #[serde(default)]
    chunked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedact {
    table: String,
    column: String,
    via: Option<Vec<RawHop>>,
    #[serde(default)]
    chunked: bool,
    #[serde(default)]
    null: Vec<String>,
    #[serde(default)]
    replace: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHop {
    table: String,
    key: String,
    value: String,
}

/// The hops of an entry on `table`, validated.
fn hops(table: &Identifier, raw: Option<Vec<RawHop>>) -> Result<Vec<Hop>, String> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if raw.is_empty() || raw.len() > MAX_HOPS {
        return Err(format!(
            "via: give 1 to {MAX_HOPS} hops, not {}; leave it out when the column holds the user id",
            raw.len()
        ));
    }
    let mut hops = Vec::with_capacity(raw.len());
    for (i, hop) in raw.into_iter().enumerate() {
        let hop = Hop {
            table: table_name("via table", &hop.table)?,
            key: identifier("via key", &hop.key)?,
            value: identifier("via value", &hop.value)?,
        };
        if &hop.table == table {
            return Err(format!(
                "via: hop {} goes through {table}, the entry's own table; MySQL refuses a \
                 statement that reads the table it changes (error 1093)",
                i + 1
            ));
        }
        hops.push(hop);
    }
    Ok(hops)
}

fn identifier(key: &str, value: &str) -> Result<Identifier, String> {
    Identifier::parse(value).map_err(|problem| format!("{key}: {problem}"))
}

fn table_name(key: &str, value: &str) -> Result<Identifier, String> {
    Identifier::parse_table(value).map_err(|problem| format!("{key}: {problem}"))
}

impl RawDelete {
    fn validate(self) -> Result<Entry, String> {
        let table = table_name("table", &self.table)?;
        Ok(Entry {
            column: identifier("column", &self.column)?,
            via: hops(&table, self.via)?,
            table,
            action: Action::Delete,
            chunked: self.chunked,
        })
    }
}

impl RawRedact {
    fn validate(self) -> Result<Entry, String> {
        let table = table_name("table", &self.table)?;
        let column = identifier("column", &self.column)?;
        if self.null.is_empty() && self.replace.is_empty() {
            return Err("a redact sets nothing: give null = [...] or replace = { ... }".into());
        }
        let mut set = BTreeSet::new();
        let mut null = Vec::with_capacity(self.null.len());
        for name in &self.null {
            let name = identifier("null", name)?;
            if !set.insert(name.clone()) {
                return Err(format!("null: {name} is listed twice"));
            }
            null.push(name);
        }
        let mut replace = Vec::with_capacity(self.replace.len());
        for (name, text) in self.replace {
            let name = identifier("replace", &name)?;
            if !set.insert(name.clone()) {
                return Err(format!("{name} is both nulled and replaced"));
            }
            replace.push((name, text));
        }
        if set.contains(&column) {
            return Err(format!(
                "{column} is the column that finds the user's rows; redacting it would lose them"
            ));
        }
        Ok(Entry {
            via: hops(&table, self.via)?,
            table,
            column,
            action: Action::Redact { null, replace },
            chunked: self.chunked,
        })
    }
}

/// The via example: order items, shipping addresses and newsletter rows
/// reached through orders and users; for the tests of the modules that read a map.
#[cfg(test)]
pub(crate) const VIA_EXAMPLE: &str = r#"
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
table = "orders"
column = "user_id"

[[delete]]
table = "users"
column = "id"
"#;

/// The issue's example map, for the tests of every module that reads a map.
#[cfg(test)]
pub(crate) fn example() -> Map {
    Map::parse(
        "map.toml",
        r#"
# The statements run in this order, in one transaction.
[[delete]]
table = "sessions"
column = "user_id"

[[redact]]
table = "invoices"
column = "customer_id"
null = ["email", "phone"]
replace = { name = "erased user" }

[[delete]]
table = "users"
column = "id"
"#,
    )
    .expect("the example map parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Identifier {
        Identifier::parse(s).unwrap()
    }

    fn problem(text: &str) -> String {
        Map::parse("map.toml", text).unwrap_err()
    }

    #[test]
    fn the_example_parses_in_file_order() {
        let map = example();
        let order: Vec<String> = map.entries().iter().map(Entry::describe).collect();
        assert_eq!(
            order,
            [
                "[[delete]] sessions",
                "[[redact]] invoices",
                "[[delete]] users"
            ]
        );
        assert_eq!(
            map.entries()[1].action,
            Action::Redact {
                null: vec![id("email"), id("phone")],
                replace: vec![(id("name"), "erased user".into())],
            }
        );
        assert_eq!(map.users_table(), &id("users"));
    }

    #[test]
    fn the_single_table_mode_is_a_map_of_one_delete() {
        let map = Map::single(id("accounts"), id("uid"));
        assert_eq!(map.entries().len(), 1);
        assert_eq!(map.entries()[0].action, Action::Delete);
        assert_eq!(map.users_table(), &id("accounts"));
    }

    #[test]
    fn each_bad_map_gets_one_line_naming_the_file_the_entry_and_the_problem() {
        let cases = [
            ("", "map.toml: the map has no entries"),
            (
                "[[delete]]\ntable = \"users\"\ncolum = \"id\"\n",
                "map.toml: entry 1 ([[delete]] users, line 1): unknown field `colum`",
            ),
            (
                "[[delete]]\ntable = \"users\"\n",
                "map.toml: entry 1 ([[delete]] users, line 1): missing field `column`",
            ),
            (
                "[[truncate]]\ntable = \"x\"\n",
                "map.toml: line 1: unknown field `truncate`",
            ),
            ("[[delete]\n", "map.toml: line 1:"),
            (
                "[[delete]]\ntable = \"users; DROP TABLE x\"\ncolumn = \"id\"\n",
                "map.toml: entry 1 ([[delete]] users; DROP TABLE x, line 1): table: \"users; DROP TABLE x\" is not a plain SQL identifier",
            ),
            (
                "[[delete]]\ntable = \"s\"\ncolumn = \"user_id\"\n\n[[redact]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\n",
                "map.toml: entry 2 ([[redact]] invoices, line 5): a redact sets nothing",
            ),
            (
                "[[redact]]\ntable = \"invoices\"\ncolumn = \"c\"\nnull = [\"email\"]\nreplace = { email = \"x\" }\n",
                "map.toml: entry 1 ([[redact]] invoices, line 1): email is both nulled and replaced",
            ),
            (
                "[[redact]]\ntable = \"invoices\"\ncolumn = \"c\"\nnull = [\"c\"]\n",
                "map.toml: entry 1 ([[redact]] invoices, line 1): c is the column that finds",
            ),
            (
                "[[delete]]\ntable = \"users\"\ncolumn = \"id\"\n[[delete]]\ntable = \"users\"\ncolumn = \"id\"\n",
                "map.toml: entry 2 ([[delete]] users, line 4): users.id is already in entry 1 ([[delete]] users, line 1)",
            ),
            (
                "[[redact]]\ntable = \"t\"\ncolumn = \"c\"\nreplace = { name = 5 }\n",
                "map.toml: entry 1 ([[redact]] t, line 1): replace: name must be set to a text",
            ),
            (
                "[[redact]]\ntable = \"t\"\ncolumn = \"c\"\nnull = \"email\"\n",
                "map.toml: entry 1 ([[redact]] t, line 1): null: must be a list of column names",
            ),
            (
                "[[delete]]\ncolumn = \"id\"\n",
                "map.toml: entry 1 ([[delete]] (no table), line 1): missing field `table`",
            ),
            (
                "[[redact]]\ntable = \"t\"\ncolumn = \"c\"\nnull = [\"a b\"]\n",
                "map.toml: entry 1 ([[redact]] t, line 1): null: \"a b\" is not a plain SQL identifier",
            ),
        ];
        for (text, expected) in cases {
            let problem = problem(text);
            assert!(
                problem.starts_with(expected),
                "{text:?}\n gave: {problem}\n want: {expected}"
            );
            assert!(!problem.contains('\n'), "{problem:?}");
        }
    }

    /// Two hops, listed before the entries that delete their tables.
    const NOTES: &str = r#"
[[delete]]
table = "order_item_notes"
column = "order_item_id"
via = [
  { table = "orders", key = "user_id", value = "id" },
  { table = "order_items", key = "order_id", value = "id" },
]

"#;

    #[test]
    fn via_entries_parse_with_their_hops_in_order() {
        let map = Map::parse("map.toml", &format!("{NOTES}{VIA_EXAMPLE}")).unwrap();
        let entries = &map.entries()[1..];
        assert_eq!(entries.len(), 5);
        let orders = Hop {
            table: id("orders"),
            key: id("user_id"),
            value: id("id"),
        };
        assert_eq!(entries[0].via, std::slice::from_ref(&orders));
        assert_eq!(entries[0].user_column(), (&id("orders"), &id("user_id")));
        assert_eq!(
            entries[1].action,
            Action::Redact {
                null: vec![id("address")],
                replace: vec![]
            }
        );
        assert_eq!(entries[2].user_column(), (&id("users"), &id("id")));
        assert_eq!(
            map.entries()[0].via,
            [
                orders,
                Hop {
                    table: id("order_items"),
                    key: id("order_id"),
                    value: id("id"),
                }
            ]
        );
        assert!(entries[3].via.is_empty());
        assert_eq!(entries[3].user_column(), (&id("orders"), &id("user_id")));
        assert_eq!(map.users_table(), &id("users"));
    }

    #[test]
    fn each_bad_via_is_named_with_its_entry() {
        let entry = |via: &str| {
            format!("[[delete]]\ntable = \"order_items\"\ncolumn = \"order_id\"\nvia = {via}\n")
        };
        let hop = r#"{ table = "orders", key = "user_id", value = "id" }"#;
        let five = format!("[{}]", [hop; 5].join(", "));
        let cases = [
            (entry("[]"), "via: give 1 to 4 hops, not 0"),
            (entry(&five), "via: give 1 to 4 hops, not 5"),
            (
                entry(r#"[{ table = "order_items", key = "user_id", value = "id" }]"#),
                "via: hop 1 goes through order_items, the entry's own table",
            ),
            (
                entry(r#"[{ table = "orders", key = "user_id" }]"#),
                "missing field `value`",
            ),
            (
                entry(r#"[{ table = "orders", key = "user_id", value = "id", on = "x" }]"#),
                "unknown field `on`",
            ),
            (
                entry(r#"[{ table = "orders", key = "user_id", value = 5 }]"#),
                "via: value of a hop must be a text",
            ),
            (entry(r#""orders""#), "via: must be a list of hops"),
            (entry(r#"["orders"]"#), "via: each hop must be"),
            (
                entry(r#"[{ table = "orders", key = "user id", value = "id" }]"#),
                "via key: \"user id\" is not a plain SQL identifier",
            ),
        ];
        for (text, expected) in cases {
            let problem = problem(&text);
            assert!(
                problem.starts_with("map.toml: entry 1 ([[delete]] order_items, line 1): "),
                "{problem}"
            );
            assert!(
                problem.contains(expected),
                "{text:?}\n gave: {problem}\n want: {expected}"
            );
            assert!(!problem.contains('\n'), "{problem:?}");
        }
    }

    #[test]
    fn an_entry_that_an_earlier_one_leaves_nothing_to_find_is_refused() {
        let delete = |table: &str, column: &str, via: &str| {
            format!("[[delete]]\ntable = \"{table}\"\ncolumn = \"{column}\"\n{via}\n")
        };
        let via_orders = r#"via = [{ table = "orders", key = "user_id", value = "id" }]"#;
        let via_users = r#"via = [{ table = "users", key = "id", value = "email" }]"#;
        let redact_orders = |columns: &str| {
            format!("[[redact]]\ntable = \"orders\"\ncolumn = \"user_id\"\nnull = [{columns}]\n")
        };
        let cases = [
            (
                delete("orders", "user_id", "") + &delete("order_items", "order_id", via_orders),
                "map.toml: entry 2 ([[delete]] order_items, line 5): its via goes through orders, \
                 whose rows are deleted by entry 1 ([[delete]] orders, line 1), which runs before it",
            ),
            (
                delete("users", "id", "") + &delete("newsletter", "email", via_users),
                "map.toml: entry 2 ([[delete]] newsletter, line 5): its via goes through users, \
                 whose rows are deleted by entry 1 ([[delete]] users, line 1)",
            ),
            (
                redact_orders("\"id\"") + &delete("order_items", "order_id", via_orders),
                "map.toml: entry 2 ([[delete]] order_items, line 5): its via goes through \
                 orders.id, which is redacted by entry 1 ([[redact]] orders, line 1)",
            ),
            (
                // Two hops: the second goes through a table deleted before.
                delete("order_items", "order_id", via_orders)
                    + &delete(
                        "order_item_notes",
                        "order_item_id",
                        r#"via = [{ table = "orders", key = "user_id", value = "id" }, { table = "order_items", key = "order_id", value = "id" }]"#,
                    ),
                "map.toml: entry 2 ([[delete]] order_item_notes, line 5): its via goes through \
                 order_items, whose rows are deleted by entry 1 ([[delete]] order_items, line 1)",
            ),
            (
                redact_orders("\"note\"") + &delete("orders", "note", ""),
                "map.toml: entry 2 ([[delete]] orders, line 5): its column orders.note is redacted \
                 by entry 1 ([[redact]] orders, line 1)",
            ),
            (
                delete("order_items", "order_id", via_orders)
                    + &delete("order_items", "order_id", via_orders),
                "map.toml: entry 2 ([[delete]] order_items, line 5): order_items.order_id through \
                 the same via is already in entry 1 ([[delete]] order_items, line 1)",
            ),
        ];
        for (text, expected) in cases {
            let problem = problem(&text);
            assert!(
                problem.starts_with(expected),
                "{text}\n gave: {problem}\n want: {expected}"
            );
        }
        // In the right order, and a redaction of other columns, all is well.
        let good = delete("order_items", "order_id", via_orders)
            + &redact_orders("\"note\"")
            + &delete("order_items", "order_id", via_users)
            + &delete("users", "id", "");
        let map = Map::parse("map.toml", &good).unwrap();
        assert_eq!(map.entries().len(), 4);
    }

    #[test]
    fn a_missing_file_is_named() {
        let problem = Map::load("/no/such/map.toml").unwrap_err();
        assert!(problem.starts_with("/no/such/map.toml: "), "{problem}");
    }

    #[test]
    fn identifiers_must_be_plain() {
        for good in ["users", "_x", "T1", "user_accounts", &"a".repeat(64)] {
            assert!(Identifier::parse(good).is_ok(), "{good} was refused");
        }
        let too_long = "a".repeat(65);
        for bad in [
            "",
            "1users",
            "users; DROP TABLE x",
            "us`ers",
            "us\"ers",
            "us'ers",
            "db.users",
            "usérs",
            "\u{0443}sers", // Cyrillic u: looks like "users"
            "a b",
            "users\0",
            &too_long,
        ] {
            let problem = Identifier::parse(bad).unwrap_err();
            assert!(problem.contains("not a plain SQL identifier"), "{problem}");
        }
    }

    #[test]
    fn a_table_may_be_named_with_its_schema() {
        let table = Identifier::parse_table("audit.users").unwrap();
        assert_eq!(table.unqualified(), "users");
        assert_eq!(table.parts().collect::<Vec<_>>(), ["audit", "users"]);
        assert_eq!(
            Identifier::parse_table("users").unwrap().unqualified(),
            "users"
        );
        for bad in [
            "a.b.c",
            ".users",
            "audit.",
            "au dit.users",
            "audit.us`ers",
            "a..b",
        ] {
            let problem = Identifier::parse_table(bad).unwrap_err();
            assert!(
                problem.contains("not a plain SQL identifier"),
                "{bad}: {problem}"
            );
        }
        // Columns are never qualified.
        let map = "[[delete]]\ntable = \"audit.users\"\ncolumn = \"a.id\"\n";
        assert!(Map::parse("m.toml", map).unwrap_err().contains("column"));
        let map = "[[delete]]\ntable = \"audit.users\"\ncolumn = \"id\"\n";
        assert_eq!(
            Map::parse("m.toml", map).unwrap().entries()[0]
                .table
                .as_str(),
            "audit.users"
        );
    }
}
