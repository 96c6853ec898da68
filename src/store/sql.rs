//! The text of every statement the job sends to MySQL / MariaDB or
//! PostgreSQL: pure functions over the map's identifiers and the users' ids,
//! unit-tested without a server. The one place that quotes names and writes
//! literals; where the two engines' SQL differs, the [`Dialect`] says how.
//!
//! Ids are written as literals of the id column's type, so 100,000 of them
//! need no placeholders (MySQL allows 65,535); texts go as hex literals on
//! MySQL and as standard strings with their quotes doubled on PostgreSQL
//! (whose session has `standard_conforming_strings` on), so no string from a
//! message or the map is ever parsed as SQL.

use std::fmt::Write as _;

use crate::config::map::{Action, Entry, Identifier};
use crate::store::Removal;

/// Whose SQL a statement is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MySQL and MariaDB: backticks, hex literals, multi-table `DELETE`.
    MySql,
    /// PostgreSQL: double quotes, standard strings, `DELETE .. USING` and
    /// `UPDATE .. FROM`, `ON CONFLICT DO NOTHING`.
    Postgres,
}

impl Dialect {
    /// A name quoted so that it is read exactly as written: in backticks, or
    /// in double quotes (which also keep PostgreSQL from folding it to
    /// lowercase), the quote character doubled.
    pub fn quote(self, name: &str) -> String {
        match self {
            Dialect::MySql => format!("`{}`", name.replace('`', "``")),
            Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// A name of the map quoted: each part of `schema.table` on its own.
    fn ident(self, name: &Identifier) -> String {
        name.parts()
            .map(|part| self.quote(part))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// A text as a literal: a hex literal in utf8mb4 on MySQL, whatever the
    /// server's `sql_mode`; a standard string on PostgreSQL. No character
    /// of it is parsed as SQL.
    fn text(self, text: &str) -> String {
        match self {
            Dialect::MySql => {
                let mut literal = String::with_capacity(12 + text.len() * 2);
                literal.push_str("_utf8mb4 X'");
                for byte in text.as_bytes() {
                    let _ = write!(literal, "{byte:02X}");
                }
                literal.push('\'');
                literal
            }
            Dialect::Postgres => format!("'{}'", text.replace('\'', "''")),
        }
    }

    /// The null-safe equality a redaction's "already redacted" test uses.
    fn null_safe_eq(self) -> &'static str {
        match self {
            Dialect::MySql => "<=>",
            Dialect::Postgres => "IS NOT DISTINCT FROM",
        }
    }
}

/// How an id column holds its values: it decides how ids are written, so
/// that no look-alike value matches (a string column compared with an integer
/// literal compares numerically: `'01'`, `'1abc'` and `'1.0'` would all equal 1).
///
/// `max` is the largest user id the column can hold (its type's range, or
/// the digits its length allows): a larger id matches no row, and is left
/// out of the statements rather than written as a value the column would
/// have to change (on PostgreSQL, a literal above 2^63 would be `numeric`
/// and lose the index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// An integer column: integer literals.
    Integer { max: u64 },
    /// `CHAR`, `VARCHAR` (or PostgreSQL's `text`): exact string literals, and
    /// only values made of ASCII digits (a PAD SPACE collation would also
    /// match `'1 '`).
    Text { max: u64 },
}

impl IdKind {
    /// The largest user id the column can hold.
    pub fn max(self) -> u64 {
        match self {
            IdKind::Integer { max } | IdKind::Text { max } => max,
        }
    }
}

/// The erasure record's columns, in the order the job writes them.
pub const RECORD_COLUMNS: [&str; 3] = ["user_id", "erased_at", "message_id"];

/// A name in backticks, for messages (and MySQL's statements). Identifiers
/// are plain already ([`Identifier::parse`]); a database name from a URL may
/// hold a backtick, which is doubled.
pub fn quote(name: &str) -> String {
    Dialect::MySql.quote(name)
}

/// An identifier of the map, quoted for a message.
pub fn ident(name: &Identifier) -> String {
    Dialect::MySql.ident(name)
}

/// `` `table`.`column` ``, for messages.
pub fn column(table: &Identifier, column: &Identifier) -> String {
    format!("{}.{}", ident(table), ident(column))
}

/// The record's columns as a statement lists them.
fn record_columns(d: Dialect) -> String {
    RECORD_COLUMNS.map(|c| d.quote(c)).join(", ")
}

/// `c IN (1,2,3)` for the column `c` as written, the ids written as the
/// column holds them; `None` when no id can match (every id is above
/// the column's range).
fn users_in(d: Dialect, column: &str, kind: IdKind, user_ids: &[u64]) -> Option<String> {
    let mut sql = String::with_capacity(32 + user_ids.len() * 14);
    let _ = write!(sql, "{column} IN (");
    let mut listed = 0;
    for id in user_ids {
        if !id_literal(&mut sql, listed, kind, *id) {
            continue;
        }
        listed += 1;
    }
    if listed == 0 {
        return None;
    }
    sql.push(')');
    if matches!(kind, IdKind::Text { .. }) {
        // Under a PAD SPACE or accent-blind collation '1' also equals '1 ' or
        // a full-width '１': only plain ASCII digits are the user's id.
        // PostgreSQL matches a char(n) with its padding: as text, it has none;
        // in "C", since a nondeterministic collation refuses regular expressions.
        let _ = match d {
            Dialect::MySql => write!(sql, " AND {column} REGEXP '^[0-9]+$'"),
            Dialect::Postgres => write!(sql, " AND {column}::text COLLATE \"C\" ~ '^[0-9]+$'"),
        };
    }
    Some(sql)
}

/// Writes one id as a literal of the column's kind, after a comma unless it
/// is the first; false (nothing written) when the column cannot hold it.
fn id_literal(sql: &mut String, index: usize, kind: IdKind, id: u64) -> bool {
    if id > kind.max() {
        return false;
    }
    if index > 0 {
        sql.push(',');
    }
    // Digits only: nothing to escape.
    let _ = match kind {
        IdKind::Integer { .. } => write!(sql, "{id}"),
        IdKind::Text { .. } => write!(sql, "'{id}'"),
    };
    true
}

/// One map entry's statement over the users: `DELETE FROM t WHERE c IN (..)`
/// or `UPDATE t SET a = NULL, b = '..' WHERE c IN (..)`; `None` when no id
/// can match. `kind` is how the column compared with the ids holds them
/// ([`Entry::user_column`]).
///
/// An entry with a `via` joins its hops: on MySQL `DELETE t0 FROM t AS t0
/// JOIN h AS h1 ON t0.c = h1.value WHERE h1.key IN (..)`, on PostgreSQL
/// `DELETE FROM t AS t0 USING h AS h1 WHERE t0.c = h1.value AND h1.key IN
/// (..)`. The join lets the server use each hop's index; a single-table
/// `DELETE .. WHERE c IN (SELECT ..)` gets no semi-join before MariaDB 11.1
/// or MySQL 8.0.21 and scans, and locks, the whole table. Every table has an
/// alias, so a table that happens to be named like one of them cannot be
/// mistaken for it.
pub fn entry_statement(
    d: Dialect,
    entry: &Entry,
    kind: IdKind,
    user_ids: &[u64],
) -> Option<String> {
    let parts = Parts::new(d, entry, kind, user_ids)?;
    // On PostgreSQL a redaction leaves the rows redacted already alone, as
    // it counts every row an UPDATE matches; MySQL counts only those it
    // changed, and would refuse the comparison of a column of another
    // character set with the replacement (error 1267), which SET converts.
    let guard = match d {
        Dialect::MySql => String::new(),
        Dialect::Postgres => parts.not_redacted(entry),
    };
    Some(parts.statement(entry, &guard))
}

/// The rows of one chunk, by key (literals from [`key_literal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys<'a> {
    /// These keys.
    Listed(&'a [String]),
    /// The keys after `after` (from the first if `None`) through `through`,
    /// in the order of a walk: a range on the index (user, key), with no key
    /// list to send or look up one by one.
    Range {
        after: Option<&'a str>,
        through: &'a str,
    },
}

/// The chunk's statement: [`entry_statement`] limited to the rows whose
/// key is in `keys`. The users' condition stays, so a row whose user changed
/// since it was selected is left alone; a range of a redaction takes, as
/// [`key_select`] counted them, only the rows not yet redacted. A range is
/// not forced onto the walk's index: the server picks the primary key's
/// range where the user's rows are dense in it and the index where they are
/// sparse (seen with 1 row in 4 and 1 in 100), and the multi-table form an
/// index hint needs deleted a third slower.
pub fn keyed_statement(
    d: Dialect,
    entry: &Entry,
    kind: IdKind,
    user_ids: &[u64],
    key: &Identifier,
    keys: Keys<'_>,
) -> Option<String> {
    let parts = Parts::new(d, entry, kind, user_ids)?;
    let key = parts.qualified(key);
    let restriction = match keys {
        Keys::Listed(keys) => format!(" AND {key} IN ({})", keys.join(",")),
        Keys::Range { after, through } => {
            let after = after.map_or(String::new(), |after| format!(" AND {key} > {after}"));
            format!(
                "{after} AND {key} <= {through}{}",
                parts.not_redacted(entry)
            )
        }
    };
    Some(parts.statement(entry, &restriction))
}

/// Which rows [`key_select`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk<'a> {
    /// Any `limit` rows: the server stops at the limit.
    Any,
    /// Rows in key order, after this key (a literal) if given: one user's
    /// rows along the index (user, key), without re-reading earlier chunks.
    After(Option<&'a str>),
}

/// The next chunk's keys: `SELECT key FROM .. WHERE <the users> [AND NOT
/// <redacted>] [AND key > after ORDER BY key] LIMIT n`. A redaction selects
/// only the rows not yet redacted, compared null-safely (`<=>`, `IS NOT
/// DISTINCT FROM`, or NULL columns would never match), so that a loop over
/// chunks ends when every row is, whatever the server reports as rows changed.
///
/// A walk forces `index` on MySQL ([`Parts::force`]).
#[allow(clippy::too_many_arguments)]
pub fn key_select(
    d: Dialect,
    entry: &Entry,
    kind: IdKind,
    user_ids: &[u64],
    key: &Identifier,
    index: Option<&str>,
    walk: Walk<'_>,
    limit: u64,
) -> Option<String> {
    let mut parts = Parts::new(d, entry, kind, user_ids)?;
    if let Walk::After(_) = walk {
        parts.force(index);
    }
    let key = parts.qualified(key);
    // A join can meet a row twice (two hop rows with the same value).
    let distinct = if entry.via.is_empty() {
        ""
    } else {
        "DISTINCT "
    };
    let mut sql = format!(
        "SELECT {distinct}{key} FROM {} WHERE {}",
        parts.tables(),
        parts.users
    );
    sql.push_str(&parts.not_redacted(entry));
    match walk {
        Walk::Any => {}
        Walk::After(None) => {
            let _ = write!(sql, " ORDER BY {key}");
        }
        Walk::After(Some(after)) => {
            let _ = write!(sql, " AND {key} > {after} ORDER BY {key}");
        }
    }
    let _ = write!(sql, " LIMIT {limit}");
    Some(sql)
}

/// The key that ends a walk's next chunk of `chunk` rows: [`key_select`]'s
/// `chunk`-th key after `after`, read off the index without sending the
/// others; none when fewer rows are left.
#[allow(clippy::too_many_arguments)]
pub fn chunk_end_select(
    d: Dialect,
    entry: &Entry,
    kind: IdKind,
    user_ids: &[u64],
    key: &Identifier,
    index: Option<&str>,
    after: Option<&str>,
    chunk: u64,
) -> Option<String> {
    let mut sql = key_select(d, entry, kind, user_ids, key, index, Walk::After(after), 1)?;
    let _ = write!(sql, " OFFSET {}", chunk.saturating_sub(1));
    Some(sql)
}

/// What `verify` looks for in an entry, per user: `SELECT <user column>,
/// COUNT(*) FROM .. WHERE <the users> [AND NOT <redacted>] GROUP BY <user
/// column>`: the rows a delete left, or a redaction's rows not redacted. The
/// ids are written as the erasure writes them, so a text column's `'01'` is
/// never user 1; each hop's value names one row, so a row is counted once.
pub fn findings_select(
    d: Dialect,
    entry: &Entry,
    kind: IdKind,
    user_ids: &[u64],
) -> Option<String> {
    Some(Parts::new(d, entry, kind, user_ids)?.findings(entry))
}

/// A page of an integer erasure record, as the range of it that
/// [`record_page`] read: the users after `after` (from the first if `None`)
/// through `through`, erased at or after `since`; all three are literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRange<'a> {
    pub table: &'a Identifier,
    pub after: Option<&'a str>,
    pub through: &'a str,
    pub since: Option<&'a str>,
}

/// [`findings_select`] over a page of an integer erasure record whose
/// `user_id` is unique, joined from the record itself, which comes first:
/// `SELECT STRAIGHT_JOIN r.user_id, COUNT(*) FROM record AS r JOIN h1 ON
/// h1.key = r.user_id .. JOIN t AS t0 ON t0.column = hN.value WHERE
/// r.user_id <= through [AND r.user_id > after] [AND r.erased_at >= since]
/// [AND NOT <redacted>] GROUP BY r.user_id` (PostgreSQL has no
/// `STRAIGHT_JOIN`, and plans the join by itself). Each record row then
/// meets its user's rows by each table's index, as a join written by hand
/// does; given a list of 10,000 ids, MariaDB materializes, sorts and looks
/// them up one by one, and given the record as a subquery it reads it last,
/// after every live user's rows of a `via` (bench/results-verify.md: 127
/// and 98 ms a page, against 38 joined). Each hop's value is unique
/// (checked at load), so a row meets one chain of hops and is counted once.
/// `None` for a text column: only a list of exact strings compares its ids
/// as the erasure does, never a numeric comparison with the record's integers.
pub fn findings_recorded(
    d: Dialect,
    entry: &Entry,
    kind: IdKind,
    range: RecordRange<'_>,
) -> Option<String> {
    let IdKind::Integer { .. } = kind else {
        return None;
    };
    let record = d.quote("r");
    let target = d.quote("t0");
    let user = format!("{record}.{}", d.quote(RECORD_COLUMNS[0]));
    // From the user to the rows: each hop's key meets the value before it.
    let mut tables = format!("{} AS {record}", d.ident(range.table));
    let mut matched = user.clone();
    for (i, hop) in entry.via.iter().enumerate() {
        let alias = d.quote(&format!("h{}", i + 1));
        let _ = write!(
            tables,
            " JOIN {} AS {alias} ON {alias}.{} = {matched}",
            d.ident(&hop.table),
            d.ident(&hop.key)
        );
        matched = format!("{alias}.{}", d.ident(&hop.value));
    }
    let _ = write!(
        tables,
        " JOIN {} AS {target} ON {target}.{} = {matched}",
        d.ident(&entry.table),
        d.ident(&entry.column)
    );
    let straight = match d {
        Dialect::MySql => "STRAIGHT_JOIN ",
        Dialect::Postgres => "",
    };
    let mut sql = format!(
        "SELECT {straight}{user}, COUNT(*) FROM {tables} WHERE {user} <= {}",
        range.through
    );
    if let Some(after) = range.after {
        let _ = write!(sql, " AND {user} > {after}");
    }
    if let Some(since) = range.since {
        let _ = write!(
            sql,
            " AND {record}.{} >= {since}",
            d.quote(RECORD_COLUMNS[1])
        );
    }
    sql.push_str(&not_redacted(d, entry, Some(&target)));
    let _ = write!(sql, " GROUP BY {user}");
    Some(sql)
}

/// The next page of the erasure record's users, in the column's order:
/// `SELECT user_id FROM record WHERE [erased_at >= since AND] user_id > after
/// ORDER BY user_id LIMIT n`; `after` and `since` are literals.
pub fn record_page(
    d: Dialect,
    table: &Identifier,
    since: Option<&str>,
    after: Option<&str>,
    limit: u64,
) -> String {
    let user = d.quote(RECORD_COLUMNS[0]);
    let mut conditions = Vec::new();
    if let Some(since) = since {
        conditions.push(format!("{} >= {since}", d.quote(RECORD_COLUMNS[1])));
    }
    if let Some(after) = after {
        conditions.push(format!("{user} > {after}"));
    }
    let condition = match conditions.is_empty() {
        true => String::new(),
        false => format!(" WHERE {}", conditions.join(" AND ")),
    };
    format!(
        "SELECT {user} FROM {}{condition} ORDER BY {user} LIMIT {limit}",
        d.ident(table)
    )
}

/// A UTC time (`YYYY-MM-DD hh:mm:ss.fff`, digits and separators only) as a
/// `DATETIME` (or `timestamp`) literal.
pub fn datetime_literal(utc: &str) -> Option<String> {
    utc.bytes()
        .all(|b| b.is_ascii_digit() || b" -:.".contains(&b))
        .then(|| format!("'{utc}'"))
}

/// How a chunk's keys are written back as literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// An integer column: its digits.
    Integer,
    /// A text column of this character set: on MySQL a hex literal with its
    /// introducer, compared in the column's own collation (and index); on
    /// PostgreSQL a standard string.
    Text { charset: String },
    /// A binary column: a plain hex literal (`bytea`'s `\x..` on PostgreSQL).
    Binary,
}

/// A key value as the server sent it (text protocol: its bytes), as a
/// literal; `None` when an integer key is not digits, or a PostgreSQL text
/// or `bytea` key is not what its text form can be (never, from a server).
pub fn key_literal(d: Dialect, kind: &KeyKind, bytes: &[u8]) -> Option<String> {
    let hex = |prefix: &str| {
        let mut literal = String::with_capacity(prefix.len() + 3 + bytes.len() * 2);
        literal.push_str(prefix);
        literal.push_str("X'");
        for byte in bytes {
            let _ = write!(literal, "{byte:02X}");
        }
        literal.push('\'');
        literal
    };
    match (kind, d) {
        (KeyKind::Integer, _) => {
            let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
            (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
                .then(|| String::from_utf8_lossy(bytes).into_owned())
        }
        (KeyKind::Text { charset }, Dialect::MySql) => Some(hex(&format!("_{charset} "))),
        (KeyKind::Binary, Dialect::MySql) => Some(hex("")),
        (KeyKind::Text { .. }, Dialect::Postgres) => {
            let text = std::str::from_utf8(bytes).ok()?;
            (!text.contains('\0')).then(|| d.text(text))
        }
        // bytea's text form: \x and hex digits.
        (KeyKind::Binary, Dialect::Postgres) => {
            let digits = bytes.strip_prefix(b"\\x")?;
            digits
                .iter()
                .all(u8::is_ascii_hexdigit)
                .then(|| format!("'\\x{}'::bytea", String::from_utf8_lossy(digits)))
        }
    }
}

/// The tables, alias and users' condition of one entry's statements.
struct Parts {
    d: Dialect,
    /// `` `t` `` alone, or `` `t` AS `t0` `` when the entry goes via hops.
    table: String,
    /// `` `t0` `` when the entry goes via other tables.
    target: Option<String>,
    /// The hops, when there are: the first joined to the target (`` `h2` AS
    /// `h2` ``), the condition that joins it (`` `t0`.`c` = `h2`.`v` ``),
    /// and the others joined to it (`` JOIN `h1` AS `h1` ON .. ``).
    hops: Option<(String, String, String)>,
    /// The users' condition.
    users: String,
}

impl Parts {
    fn new(d: Dialect, entry: &Entry, kind: IdKind, user_ids: &[u64]) -> Option<Parts> {
        if entry.via.is_empty() {
            return Some(Parts {
                d,
                table: d.ident(&entry.table),
                target: None,
                hops: None,
                users: users_in(d, &d.ident(&entry.column), kind, user_ids)?,
            });
        }
        let alias = |hop: usize| d.quote(&format!("h{hop}"));
        let target = d.quote("t0");
        let first = format!("{}.{}", alias(1), d.ident(&entry.via[0].key));
        let users = users_in(d, &first, kind, user_ids)?;
        // From the rows back to the user: the target meets the last hop's
        // value, each hop's key the value of the hop before it.
        let mut hops = None::<(String, String, String)>;
        let mut matched = format!("{target}.{}", d.ident(&entry.column));
        for (i, hop) in entry.via.iter().enumerate().rev() {
            let a = alias(i + 1);
            let table = format!("{} AS {a}", d.ident(&hop.table));
            let on = format!("{matched} = {a}.{}", d.ident(&hop.value));
            match &mut hops {
                None => hops = Some((table, on, String::new())),
                Some((_, _, rest)) => {
                    let _ = write!(rest, " JOIN {table} ON {on}");
                }
            }
            matched = format!("{a}.{}", d.ident(&hop.key));
        }
        Some(Parts {
            d,
            table: format!("{} AS {target}", d.ident(&entry.table)),
            target: Some(target),
            hops,
            users,
        })
    }

    /// The tables a `SELECT` (or MySQL's multi-table statement) reads:
    /// the target joined to each hop.
    fn tables(&self) -> String {
        match &self.hops {
            None => self.table.clone(),
            Some((first, on, rest)) => format!("{} JOIN {first} ON {on}{rest}", self.table),
        }
    }

    /// Forces `index`, the index of the entry's column alone, on a table
    /// without hops, on MySQL: MariaDB reads `user_id = 1 AND id > 77 ORDER
    /// BY id` as a `ref` on user_id and filters every earlier row of the user
    /// again (measured: 2,000,000 rows read for a chunk of 10,000); forced,
    /// it is a range on (user_id, id). PostgreSQL takes no hints.
    fn force(&mut self, index: Option<&str>) {
        if let (Some(index), None, Dialect::MySql) = (index, &self.target, self.d) {
            let _ = write!(self.table, " FORCE INDEX ({})", self.d.quote(index));
        }
    }

    /// ` AND NOT (a <=> NULL AND b <=> 'text')` for a redaction: the rows
    /// not yet redacted, compared null-safely (a NULL column never matches
    /// `=`); empty for a delete.
    fn not_redacted(&self, entry: &Entry) -> String {
        not_redacted(self.d, entry, self.target.as_deref())
    }

    /// [`findings_select`]'s statement over these parts.
    fn findings(&self, entry: &Entry) -> String {
        let user = self.user_column(entry);
        format!(
            "SELECT {user}, COUNT(*) FROM {} WHERE {}{} GROUP BY {user}",
            self.tables(),
            self.users,
            self.not_redacted(entry)
        )
    }

    /// The column compared with the user ids, qualified as the condition has it.
    fn user_column(&self, entry: &Entry) -> String {
        match entry.via.first() {
            Some(first) => format!("{}.{}", self.d.quote("h1"), self.d.ident(&first.key)),
            None => self.d.ident(&entry.column),
        }
    }

    /// A column of the entry's own table, qualified when there are joins.
    fn qualified(&self, name: &Identifier) -> String {
        qualify(self.d, self.target.as_deref(), name)
    }

    /// The `DELETE` or `UPDATE`, its condition followed by `restriction`.
    fn statement(&self, entry: &Entry, restriction: &str) -> String {
        let (d, table, users) = (self.d, &self.table, &self.users);
        match (d, &self.target, &self.hops) {
            (Dialect::Postgres, Some(_), Some((first, on, rest))) => {
                // The hops go after USING (or FROM): the target's own
                // join condition moves to WHERE.
                let from = format!("{first}{rest}");
                let condition = format!(" WHERE {on} AND {users}{restriction}");
                match &entry.action {
                    Action::Delete => format!("DELETE FROM {table} USING {from}{condition}"),
                    // PostgreSQL's SET names the target's columns unqualified.
                    Action::Redact { null, replace } => format!(
                        "UPDATE {table} SET {} FROM {from}{condition}",
                        sets(d, None, null, replace)
                    ),
                }
            }
            (_, target, _) => {
                let (tables, condition) = (self.tables(), format!(" WHERE {users}{restriction}"));
                match (&entry.action, target) {
                    (Action::Delete, None) => format!("DELETE FROM {tables}{condition}"),
                    (Action::Delete, Some(target)) => {
                        format!("DELETE {target} FROM {tables}{condition}")
                    }
                    (Action::Redact { null, replace }, target) => format!(
                        "UPDATE {tables} SET {}{condition}",
                        sets(d, target.as_deref(), null, replace)
                    ),
                }
            }
        }
    }
}

/// ` AND NOT (a <=> NULL AND b <=> 'text')` for a redaction, each column
/// qualified by `alias` when given; empty for a delete.
fn not_redacted(d: Dialect, entry: &Entry, alias: Option<&str>) -> String {
    let Action::Redact { null, replace } = &entry.action else {
        return String::new();
    };
    let column = |name| qualify(d, alias, name);
    let eq = d.null_safe_eq();
    let redacted: Vec<String> = null
        .iter()
        .map(|name| format!("{} {eq} NULL", column(name)))
        .chain(
            replace
                .iter()
                .map(|(name, text)| format!("{} {eq} {}", column(name), d.text(text))),
        )
        .collect();
    format!(" AND NOT ({})", redacted.join(" AND "))
}

/// A column, qualified by `alias` when given.
fn qualify(d: Dialect, alias: Option<&str>, name: &Identifier) -> String {
    match alias {
        Some(alias) => format!("{alias}.{}", d.ident(name)),
        None => d.ident(name),
    }
}

/// A redaction's `SET` list, each column qualified by `alias` when given.
fn sets(
    d: Dialect,
    alias: Option<&str>,
    null: &[Identifier],
    replace: &[(Identifier, String)],
) -> String {
    let column = |name| qualify(d, alias, name);
    null.iter()
        .map(|name| format!("{} = NULL", column(name)))
        .chain(
            replace
                .iter()
                .map(|(name, text)| format!("{} = {}", column(name), d.text(text))),
        )
        .collect::<Vec<_>>()
        .join(", ")
}

/// The erasure record's rows, one per user that its column can hold, and how
/// many it lists; `None` when it lists none. (The connect check makes sure it
/// holds every id an entry can match: an id it leaves out was in no table.)
/// The first erasure is kept: MySQL's `INSERT IGNORE` leaves an existing row
/// as it is and needs no `UPDATE` privilege, and a concurrent run recording
/// the same user is no error (the store checks its warnings: IGNORE would
/// also turn a value the column cannot hold into a warning, and that must
/// never pass). PostgreSQL's `ON CONFLICT DO NOTHING` skips only the rows a
/// unique key already holds, and refuses any value its column cannot hold.
/// The time is UTC: the PostgreSQL session's time zone is UTC.
pub fn record_statement(
    d: Dialect,
    table: &Identifier,
    kind: IdKind,
    removals: &[Removal],
) -> Option<(String, u64)> {
    let (verb, now, tail) = match d {
        Dialect::MySql => ("INSERT IGNORE INTO", "UTC_TIMESTAMP(3)", ""),
        Dialect::Postgres => (
            "INSERT INTO",
            "LOCALTIMESTAMP(3)",
            " ON CONFLICT DO NOTHING",
        ),
    };
    let mut sql = format!("{verb} {} ({}) VALUES ", d.ident(table), record_columns(d));
    let mut listed = 0;
    for removal in removals {
        let mut id = String::new();
        if !id_literal(&mut id, 0, kind, removal.user_id) {
            continue;
        }
        if listed > 0 {
            sql.push(',');
        }
        let _ = write!(sql, "({id}, {now}, {})", d.text(&removal.message_id));
        listed += 1;
    }
    sql.push_str(tail);
    (listed > 0).then_some((sql, listed))
}

/// A statement that writes no row but needs the same privileges as
/// [`record_statement`]: the server checks them, and a read-only server
/// refuses, when a statement starts.
pub fn record_probe(d: Dialect, table: &Identifier) -> String {
    format!(
        "INSERT INTO {t} ({c}) SELECT {c} FROM {t} WHERE FALSE",
        t = d.ident(table),
        c = record_columns(d)
    )
}

/// `GRANT SELECT, DELETE ON `db`.`t` TO grantee;` on MySQL;
/// `GRANT SELECT, DELETE ON TABLE "t" TO grantee;` on PostgreSQL, whose
/// grants hold in the database they are run in.
pub fn grant(
    dialect: Dialect,
    privileges: &[&str],
    database: &str,
    table: &str,
    grantee: &str,
) -> String {
    let privileges = privileges.join(", ");
    // A name of the map: one identifier, or a schema's and a table's.
    let on = table
        .split('.')
        .map(|part| dialect.quote(part))
        .collect::<Vec<_>>()
        .join(".");
    match dialect {
        Dialect::MySql if table.contains('.') => {
            format!("GRANT {privileges} ON {on} TO {grantee};")
        }
        Dialect::MySql => format!(
            "GRANT {privileges} ON {}.{on} TO {grantee};",
            quote(database)
        ),
        Dialect::Postgres => format!("GRANT {privileges} ON TABLE {on} TO {grantee};"),
    }
}

/// `GRANT REPLICA MONITOR ON *.* TO grantee;`: a server-wide privilege,
/// which only `*.*` can carry.
pub fn grant_global(privilege: &str, grantee: &str) -> String {
    format!("GRANT {privilege} ON *.* TO {grantee};")
}

/// `GRANT SELECT ON `db`.* TO grantee;`: the whole schema, read-only.
pub fn grant_schema_read(database: &str, grantee: &str) -> String {
    format!("GRANT SELECT ON {}.* TO {grantee};", quote(database))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::map::Map;

    const MY: Dialect = Dialect::MySql;

    fn id(s: &str) -> Identifier {
        Identifier::parse(s).unwrap()
    }

    fn delete(table: &str, column: &str) -> Entry {
        Map::single(id(table), id(column)).entries()[0].clone()
    }

    /// BIGINT UNSIGNED, BIGINT and VARCHAR(20).
    const UNSIGNED: IdKind = IdKind::Integer { max: u64::MAX };
    const SIGNED: IdKind = IdKind::Integer {
        max: i64::MAX as u64,
    };
    const TEXT: IdKind = IdKind::Text { max: u64::MAX };

    #[test]
    fn the_statement_quotes_identifiers_and_lists_ids() {
        let sql = entry_statement(MY, &delete("users", "id"), UNSIGNED, &[3, 9, u64::MAX]);
        assert_eq!(
            sql.as_deref(),
            Some("DELETE FROM `users` WHERE `id` IN (3,9,18446744073709551615)")
        );
    }

    #[test]
    fn a_signed_column_is_not_asked_for_ids_beyond_its_range() {
        let big = i64::MAX as u64 + 1;
        let users = delete("users", "id");
        let sql = entry_statement(MY, &users, SIGNED, &[3, big, u64::MAX]);
        assert_eq!(
            sql.as_deref(),
            Some("DELETE FROM `users` WHERE `id` IN (3)")
        );
        assert_eq!(entry_statement(MY, &users, SIGNED, &[big]), None);
        let max = i64::MAX as u64;
        let sql = entry_statement(MY, &users, SIGNED, &[max]).unwrap();
        assert!(sql.ends_with("IN (9223372036854775807)"), "{sql}");
    }

    #[test]
    fn an_id_beyond_any_columns_range_is_left_out() {
        let int = IdKind::Integer {
            max: i32::MAX as u64,
        };
        let users = delete("users", "id");
        let sql = entry_statement(MY, &users, int, &[5, 3_000_000_001]);
        assert_eq!(
            sql.as_deref(),
            Some("DELETE FROM `users` WHERE `id` IN (5)")
        );
        let varchar3 = IdKind::Text { max: 999 };
        let sql = entry_statement(MY, &users, varchar3, &[999, 1_000]).unwrap();
        assert!(sql.contains("IN ('999') AND"), "{sql}");
        assert_eq!(entry_statement(MY, &users, varchar3, &[1_000]), None);
    }

    #[test]
    fn a_text_column_gets_exact_string_literals_of_digits_only() {
        let sql = entry_statement(MY, &delete("accounts", "uid"), TEXT, &[1, 20]);
        assert_eq!(
            sql.as_deref(),
            Some("DELETE FROM `accounts` WHERE `uid` IN ('1','20') AND `uid` REGEXP '^[0-9]+$'")
        );
    }

    #[test]
    fn a_redaction_sets_nulls_and_texts_as_hex_literals() {
        let map = Map::parse(
            "m.toml",
            "[[redact]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\nnull = [\"email\"]\nreplace = { name = \"O'Brien \\\\ ;\" }\n",
        )
        .unwrap();
        let sql = entry_statement(MY, &map.entries()[0], UNSIGNED, &[7]).unwrap();
        assert_eq!(
            sql,
            "UPDATE `invoices` SET `email` = NULL, `name` = _utf8mb4 X'4F27427269656E205C203B' \
             WHERE `customer_id` IN (7)"
        );
    }

    /// The entry of `text`, a map of one entry.
    fn entry(text: &str) -> Entry {
        Map::parse("m.toml", text).unwrap().entries()[0].clone()
    }

    #[test]
    fn a_via_entry_joins_each_hop_back_to_the_user() {
        let items = entry(
            "[[delete]]\ntable = \"order_items\"\ncolumn = \"order_id\"\n\
             via = [{ table = \"orders\", key = \"user_id\", value = \"id\" }]\n",
        );
        assert_eq!(
            entry_statement(MY, &items, UNSIGNED, &[3, 9]).as_deref(),
            Some(
                "DELETE `t0` FROM `order_items` AS `t0` JOIN `orders` AS `h1` ON `t0`.`order_id` = `h1`.`id` \
                 WHERE `h1`.`user_id` IN (3,9)"
            )
        );
        let notes = entry(
            "[[delete]]\ntable = \"order_item_notes\"\ncolumn = \"order_item_id\"\nvia = [\
             { table = \"orders\", key = \"user_id\", value = \"id\" }, \
             { table = \"order_items\", key = \"order_id\", value = \"id\" }]\n",
        );
        assert_eq!(
            entry_statement(MY, &notes, UNSIGNED, &[3]).as_deref(),
            Some(
                "DELETE `t0` FROM `order_item_notes` AS `t0` \
                 JOIN `order_items` AS `h2` ON `t0`.`order_item_id` = `h2`.`id` \
                 JOIN `orders` AS `h1` ON `h2`.`order_id` = `h1`.`id` \
                 WHERE `h1`.`user_id` IN (3)"
            )
        );
        let hop = |table: &str, key: &str, value: &str| {
            format!("{{ table = \"{table}\", key = \"{key}\", value = \"{value}\" }}")
        };
        let four = entry(&format!(
            "[[delete]]\ntable = \"d\"\ncolumn = \"c_id\"\nvia = [{}, {}, {}, {}]\n",
            hop("a", "user_id", "id"),
            hop("b", "a_id", "id"),
            hop("c", "b_id", "id"),
            hop("h1", "x_id", "id"),
        ));
        assert_eq!(
            entry_statement(MY, &four, SIGNED, &[7]).as_deref(),
            Some(
                "DELETE `t0` FROM `d` AS `t0` \
                 JOIN `h1` AS `h4` ON `t0`.`c_id` = `h4`.`id` \
                 JOIN `c` AS `h3` ON `h4`.`x_id` = `h3`.`id` \
                 JOIN `b` AS `h2` ON `h3`.`b_id` = `h2`.`id` \
                 JOIN `a` AS `h1` ON `h2`.`a_id` = `h1`.`id` \
                 WHERE `h1`.`user_id` IN (7)"
            )
        );
    }

    #[test]
    fn a_via_redaction_sets_the_target_columns_and_a_text_key_gets_exact_digits() {
        let shipping = entry(
            "[[redact]]\ntable = \"shipping\"\ncolumn = \"order_id\"\nnull = [\"address\"]\n\
             replace = { name = \"x\" }\n\
             via = [{ table = \"orders\", key = \"user_ref\", value = \"id\" }]\n",
        );
        assert_eq!(
            entry_statement(MY, &shipping, TEXT, &[1, 20]).as_deref(),
            Some(
                "UPDATE `shipping` AS `t0` JOIN `orders` AS `h1` ON `t0`.`order_id` = `h1`.`id` \
                 SET `t0`.`address` = NULL, `t0`.`name` = _utf8mb4 X'78' \
                 WHERE `h1`.`user_ref` IN ('1','20') AND `h1`.`user_ref` REGEXP '^[0-9]+$'"
            )
        );
        // No id fits a signed first key: no statement.
        let big = i64::MAX as u64 + 1;
        assert_eq!(entry_statement(MY, &shipping, SIGNED, &[big]), None);
    }

    #[test]
    fn a_chunk_is_selected_by_key_and_erased_by_key_with_the_users_condition_kept() {
        let events = delete("events", "user_id");
        let key = id("id");
        assert_eq!(
            key_select(
                MY,
                &events,
                SIGNED,
                &[1, 2],
                &key,
                Some("by_user"),
                Walk::Any,
                10_001
            )
            .as_deref(),
            Some("SELECT `id` FROM `events` WHERE `user_id` IN (1,2) LIMIT 10001")
        );
        assert_eq!(
            key_select(
                MY,
                &events,
                SIGNED,
                &[1],
                &key,
                None,
                Walk::After(None),
                100
            )
            .as_deref(),
            Some("SELECT `id` FROM `events` WHERE `user_id` IN (1) ORDER BY `id` LIMIT 100")
        );
        assert_eq!(
            key_select(
                MY,
                &events,
                SIGNED,
                &[1],
                &key,
                Some("by_user"),
                Walk::After(Some("77")),
                100
            )
            .as_deref(),
            Some(
                "SELECT `id` FROM `events` FORCE INDEX (`by_user`) WHERE `user_id` IN (1) \
                 AND `id` > 77 ORDER BY `id` LIMIT 100"
            )
        );
        let listed = ["5".to_owned(), "9".to_owned()];
        assert_eq!(
            keyed_statement(MY, &events, SIGNED, &[1], &key, Keys::Listed(&listed)).as_deref(),
            Some("DELETE FROM `events` WHERE `user_id` IN (1) AND `id` IN (5,9)")
        );
        assert_eq!(
            chunk_end_select(
                MY,
                &events,
                SIGNED,
                &[1],
                &key,
                Some("by_user"),
                Some("77"),
                100
            )
            .as_deref(),
            Some(
                "SELECT `id` FROM `events` FORCE INDEX (`by_user`) WHERE `user_id` IN (1) \
                 AND `id` > 77 ORDER BY `id` LIMIT 1 OFFSET 99"
            )
        );
        let range = |after| Keys::Range {
            after,
            through: "177",
        };
        assert_eq!(
            keyed_statement(MY, &events, SIGNED, &[1], &key, range(Some("77"))).as_deref(),
            Some("DELETE FROM `events` WHERE `user_id` IN (1) AND `id` > 77 AND `id` <= 177")
        );
        assert_eq!(
            keyed_statement(MY, &events, SIGNED, &[1], &key, range(None)).as_deref(),
            Some("DELETE FROM `events` WHERE `user_id` IN (1) AND `id` <= 177")
        );
        let big = i64::MAX as u64 + 1;
        assert_eq!(
            key_select(MY, &events, SIGNED, &[big], &key, None, Walk::Any, 5),
            None
        );
    }

    #[test]
    fn a_chunked_redaction_selects_only_rows_not_yet_redacted_null_safely() {
        let shipping = entry(
            "[[redact]]\ntable = \"shipping\"\ncolumn = \"order_id\"\nnull = [\"address\"]\n\
             replace = { name = \"x\" }\n\
             via = [{ table = \"orders\", key = \"user_id\", value = \"id\" }]\n",
        );
        assert_eq!(
            key_select(
                MY,
                &shipping,
                UNSIGNED,
                &[4],
                &id("id"),
                Some("x"),
                Walk::After(None),
                10
            )
            .as_deref(),
            Some(
                "SELECT DISTINCT `t0`.`id` FROM `shipping` AS `t0` JOIN `orders` AS `h1` \
                 ON `t0`.`order_id` = `h1`.`id` WHERE `h1`.`user_id` IN (4) \
                 AND NOT (`t0`.`address` <=> NULL AND `t0`.`name` <=> _utf8mb4 X'78') \
                 ORDER BY `t0`.`id` LIMIT 10"
            )
        );
        let listed = ["3".to_owned()];
        assert_eq!(
            keyed_statement(
                MY,
                &shipping,
                UNSIGNED,
                &[4],
                &id("id"),
                Keys::Listed(&listed)
            )
            .as_deref(),
            Some(
                "UPDATE `shipping` AS `t0` JOIN `orders` AS `h1` ON `t0`.`order_id` = `h1`.`id` \
                 SET `t0`.`address` = NULL, `t0`.`name` = _utf8mb4 X'78' \
                 WHERE `h1`.`user_id` IN (4) AND `t0`.`id` IN (3)"
            )
        );
        // A range redacts only the rows its end was counted among.
        let range = Keys::Range {
            after: Some("3"),
            through: "9",
        };
        assert_eq!(
            keyed_statement(MY, &shipping, UNSIGNED, &[4], &id("id"), range).as_deref(),
            Some(
                "UPDATE `shipping` AS `t0` JOIN `orders` AS `h1` ON `t0`.`order_id` = `h1`.`id` \
                 SET `t0`.`address` = NULL, `t0`.`name` = _utf8mb4 X'78' \
                 WHERE `h1`.`user_id` IN (4) AND `t0`.`id` > 3 AND `t0`.`id` <= 9 \
                 AND NOT (`t0`.`address` <=> NULL AND `t0`.`name` <=> _utf8mb4 X'78')"
            )
        );
    }

    #[test]
    fn verify_joins_a_page_of_an_integer_record_first_to_each_entry() {
        let record = id("erased");
        let first = RecordRange {
            table: &record,
            after: None,
            through: "20",
            since: None,
        };
        assert_eq!(
            findings_recorded(MY, &delete("orders", "user_id"), UNSIGNED, first).as_deref(),
            Some(
                "SELECT STRAIGHT_JOIN `r`.`user_id`, COUNT(*) FROM `erased` AS `r` \
                 JOIN `orders` AS `t0` ON `t0`.`user_id` = `r`.`user_id` \
                 WHERE `r`.`user_id` <= 20 GROUP BY `r`.`user_id`"
            )
        );
        // Two hops, from the user to the rows, and a redaction.
        let notes = entry(
            "[[redact]]\ntable = \"notes\"\ncolumn = \"item_id\"\nnull = [\"body\"]\n\
             via = [{ table = \"orders\", key = \"user_id\", value = \"id\" }, \
             { table = \"items\", key = \"order_id\", value = \"id\" }]\n",
        );
        let later = RecordRange {
            after: Some("20"),
            through: "77",
            since: Some("'2026-01-01 00:00:00.000'"),
            ..first
        };
        assert_eq!(
            findings_recorded(MY, &notes, SIGNED, later).as_deref(),
            Some(
                "SELECT STRAIGHT_JOIN `r`.`user_id`, COUNT(*) FROM `erased` AS `r` \
                 JOIN `orders` AS `h1` ON `h1`.`user_id` = `r`.`user_id` \
                 JOIN `items` AS `h2` ON `h2`.`order_id` = `h1`.`id` \
                 JOIN `notes` AS `t0` ON `t0`.`item_id` = `h2`.`id` \
                 WHERE `r`.`user_id` <= 77 AND `r`.`user_id` > 20 \
                 AND `r`.`erased_at` >= '2026-01-01 00:00:00.000' \
                 AND NOT (`t0`.`body` <=> NULL) GROUP BY `r`.`user_id`"
            )
        );
        // A text column is never compared with the record's integers: its
        // ids go as a list of exact strings (findings_select).
        assert_eq!(
            findings_recorded(MY, &delete("accounts", "uid"), TEXT, first),
            None
        );
    }

    #[test]
    fn verify_counts_each_users_rows_as_the_erasure_would_find_them() {
        assert_eq!(
            findings_select(MY, &delete("accounts", "uid"), TEXT, &[1, 20]).as_deref(),
            Some(
                "SELECT `uid`, COUNT(*) FROM `accounts` WHERE `uid` IN ('1','20') \
                 AND `uid` REGEXP '^[0-9]+$' GROUP BY `uid`"
            )
        );
        let shipping = entry(
            "[[redact]]\ntable = \"shipping\"\ncolumn = \"order_id\"\nnull = [\"address\"]\n\
             via = [{ table = \"orders\", key = \"user_id\", value = \"id\" }]\n",
        );
        assert_eq!(
            findings_select(MY, &shipping, UNSIGNED, &[4]).as_deref(),
            Some(
                "SELECT `h1`.`user_id`, COUNT(*) FROM `shipping` AS `t0` JOIN `orders` AS `h1` \
                 ON `t0`.`order_id` = `h1`.`id` WHERE `h1`.`user_id` IN (4) \
                 AND NOT (`t0`.`address` <=> NULL) GROUP BY `h1`.`user_id`"
            )
        );
        assert_eq!(
            record_page(
                MY,
                &id("erased"),
                Some("'2026-01-01 00:00:00.000'"),
                Some("77"),
                10
            ),
            "SELECT `user_id` FROM `erased` WHERE `erased_at` >= '2026-01-01 00:00:00.000' \
             AND `user_id` > 77 ORDER BY `user_id` LIMIT 10"
        );
        assert_eq!(
            record_page(MY, &id("erased"), None, None, 10),
            "SELECT `user_id` FROM `erased` ORDER BY `user_id` LIMIT 10"
        );
        assert_eq!(
            datetime_literal("2026-01-01 00:00:00.000").as_deref(),
            Some("'2026-01-01 00:00:00.000'")
        );
        assert_eq!(datetime_literal("2026' OR 1"), None);
    }

    #[test]
    fn keys_are_written_back_exactly() {
        assert_eq!(
            key_literal(MY, &KeyKind::Integer, b"-42").as_deref(),
            Some("-42")
        );
        assert_eq!(key_literal(MY, &KeyKind::Integer, b"4 OR 1"), None);
        assert_eq!(key_literal(MY, &KeyKind::Integer, b""), None);
        let latin1 = KeyKind::Text {
            charset: "latin1".into(),
        };
        assert_eq!(
            key_literal(MY, &latin1, b"a'b").as_deref(),
            Some("_latin1 X'612762'")
        );
        assert_eq!(
            key_literal(MY, &KeyKind::Binary, &[0, 255]).as_deref(),
            Some("X'00FF'")
        );
    }

    #[test]
    fn the_record_keeps_the_first_erasure_and_hex_encodes_message_ids() {
        let removals = [
            Removal {
                user_id: 4,
                message_id: "17".into(),
            },
            Removal {
                user_id: u64::MAX,
                message_id: "x'y".into(),
            },
        ];
        let (sql, listed) = record_statement(MY, &id("erased"), SIGNED, &removals).unwrap();
        assert_eq!(
            sql,
            "INSERT IGNORE INTO `erased` (`user_id`, `erased_at`, `message_id`) VALUES \
             (4, UTC_TIMESTAMP(3), _utf8mb4 X'3137')"
        );
        assert_eq!(listed, 1, "a signed column cannot hold the second id");
        let (sql, listed) = record_statement(MY, &id("erased"), TEXT, &removals).unwrap();
        assert!(
            sql.contains("('18446744073709551615', UTC_TIMESTAMP(3), _utf8mb4 X'782779')"),
            "{sql}"
        );
        assert_eq!(listed, 2);
        assert_eq!(
            record_statement(MY, &id("erased"), SIGNED, &removals[1..]),
            None
        );
    }

    #[test]
    fn the_record_probe_writes_nothing_with_the_same_columns() {
        assert_eq!(
            record_probe(MY, &id("erased")),
            "INSERT INTO `erased` (`user_id`, `erased_at`, `message_id`) \
             SELECT `user_id`, `erased_at`, `message_id` FROM `erased` WHERE FALSE"
        );
    }

    #[test]
    fn names_are_quoted_with_backticks_doubled() {
        assert_eq!(quote("app"), "`app`");
        assert_eq!(quote("we`ird"), "`we``ird`");
        assert_eq!(column(&id("users"), &id("id")), "`users`.`id`");
        assert_eq!(
            grant(MY, &["SELECT", "DELETE"], "a`b", "users", "'u'@'%'"),
            "GRANT SELECT, DELETE ON `a``b`.`users` TO 'u'@'%';"
        );
        // PostgreSQL's grants hold in the database they are run in.
        assert_eq!(
            grant(Dialect::Postgres, &["SELECT"], "app", "Us\"ers", "purger"),
            "GRANT SELECT ON TABLE \"Us\"\"ers\" TO purger;"
        );
        assert_eq!(
            grant(
                Dialect::Postgres,
                &["SELECT"],
                "app",
                "audit.users",
                "purger"
            ),
            "GRANT SELECT ON TABLE \"audit\".\"users\" TO purger;"
        );
        assert_eq!(
            grant(MY, &["SELECT"], "app", "audit.users", "'u'@'%'"),
            "GRANT SELECT ON `audit`.`users` TO 'u'@'%';"
        );
        assert_eq!(
            grant_schema_read("app", "'c'@'%'"),
            "GRANT SELECT ON `app`.* TO 'c'@'%';"
        );
        assert_eq!(
            grant_global("REPLICATION CLIENT", "'u'@'%'"),
            "GRANT REPLICATION CLIENT ON *.* TO 'u'@'%';"
        );
    }

    #[test]
    fn a_hundred_thousand_ids_make_one_statement_of_modest_size() {
        let ids: Vec<u64> = (1..=100_000).collect();
        let sql = entry_statement(MY, &delete("users", "id"), UNSIGNED, &ids).unwrap();
        assert_eq!(sql.matches(',').count(), 99_999);
        // Well inside MySQL's smallest default max_allowed_packet (4 MiB).
        assert!(sql.len() < 1 << 20, "{}", sql.len());
    }

    const PG: Dialect = Dialect::Postgres;

    #[test]
    fn postgres_quotes_names_in_double_quotes_and_matches_digits_with_tilde() {
        assert_eq!(PG.quote("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(
            entry_statement(PG, &delete("accounts", "uid"), TEXT, &[1, 20]).as_deref(),
            Some(
                "DELETE FROM \"accounts\" WHERE \"uid\" IN ('1','20') AND \"uid\"::text COLLATE \"C\" ~ '^[0-9]+$'"
            )
        );
    }

    #[test]
    fn postgres_joins_the_hops_with_using_and_from_and_sets_columns_unqualified() {
        let notes = entry(
            "[[delete]]\ntable = \"notes\"\ncolumn = \"item_id\"\nvia = [\
             { table = \"orders\", key = \"user_id\", value = \"id\" }, \
             { table = \"items\", key = \"order_id\", value = \"id\" }]\n",
        );
        assert_eq!(
            entry_statement(PG, &notes, SIGNED, &[3]).as_deref(),
            Some(
                "DELETE FROM \"notes\" AS \"t0\" USING \"items\" AS \"h2\" \
                 JOIN \"orders\" AS \"h1\" ON \"h2\".\"order_id\" = \"h1\".\"id\" \
                 WHERE \"t0\".\"item_id\" = \"h2\".\"id\" AND \"h1\".\"user_id\" IN (3)"
            )
        );
        let shipping = entry(
            "[[redact]]\ntable = \"shipping\"\ncolumn = \"order_id\"\nnull = [\"address\"]\n\
             replace = { name = \"O'x\" }\n\
             via = [{ table = \"orders\", key = \"user_id\", value = \"id\" }]\n",
        );
        assert_eq!(
            entry_statement(PG, &shipping, SIGNED, &[3]).as_deref(),
            Some(
                "UPDATE \"shipping\" AS \"t0\" SET \"address\" = NULL, \"name\" = 'O''x' \
                 FROM \"orders\" AS \"h1\" WHERE \"t0\".\"order_id\" = \"h1\".\"id\" \
                 AND \"h1\".\"user_id\" IN (3) AND NOT (\"t0\".\"address\" IS NOT DISTINCT FROM NULL \
                 AND \"t0\".\"name\" IS NOT DISTINCT FROM 'O''x')"
            )
        );
        // A chunk's range keeps the not-yet-redacted test, null-safely.
        let range = Keys::Range {
            after: Some("5"),
            through: "9",
        };
        let sql = keyed_statement(PG, &shipping, SIGNED, &[3], &id("id"), range).unwrap();
        assert!(
            sql.ends_with(
                "AND \"t0\".\"id\" > 5 AND \"t0\".\"id\" <= 9 AND NOT (\"t0\".\"address\" \
                 IS NOT DISTINCT FROM NULL AND \"t0\".\"name\" IS NOT DISTINCT FROM 'O''x')"
            ),
            "{sql}"
        );
        // No index hints: PostgreSQL has none.
        let walk = key_select(
            PG,
            &delete("events", "user_id"),
            SIGNED,
            &[1],
            &id("id"),
            Some("by_user"),
            Walk::After(Some("77")),
            100,
        );
        assert_eq!(
            walk.as_deref(),
            Some(
                "SELECT \"id\" FROM \"events\" WHERE \"user_id\" IN (1) AND \"id\" > 77 \
                 ORDER BY \"id\" LIMIT 100"
            )
        );
    }

    #[test]
    fn postgres_records_with_on_conflict_and_writes_keys_back_as_strings() {
        let removals = [Removal {
            user_id: 4,
            message_id: "x'y".into(),
        }];
        let (sql, listed) = record_statement(PG, &id("erased"), SIGNED, &removals).unwrap();
        assert_eq!(
            sql,
            "INSERT INTO \"erased\" (\"user_id\", \"erased_at\", \"message_id\") VALUES \
             (4, LOCALTIMESTAMP(3), 'x''y') ON CONFLICT DO NOTHING"
        );
        assert_eq!(listed, 1);
        let text = KeyKind::Text {
            charset: String::new(),
        };
        assert_eq!(key_literal(PG, &text, b"a'b").as_deref(), Some("'a''b'"));
        assert_eq!(
            key_literal(PG, &KeyKind::Binary, b"\\x00ff").as_deref(),
            Some("'\\x00ff'::bytea")
        );
        assert_eq!(key_literal(PG, &KeyKind::Binary, b"\\x0g"), None);
    }
}
