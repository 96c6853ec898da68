//! What the database's `INFORMATION_SCHEMA` says of its tables, as plain data
//! (`store` reads it), and the checks made against it before any message is
//! received: every table and column of the map exists, each id column's type
//! says how ids are written and which ids it can hold, no `NOT NULL` column
//! is set to NULL, each `replace` text fits its column as it is, and the
//! erasure record has its columns and holds every id the map can erase.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::map::{Action, Entry, Identifier, Map};
use crate::store::sql::{self, IdKind, KeyKind, RECORD_COLUMNS};

/// One column, as `INFORMATION_SCHEMA.COLUMNS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// `DATA_TYPE`: `bigint`, `varchar`...
    pub data_type: String,
    /// `COLUMN_TYPE`: `bigint(20) unsigned`...
    pub column_type: String,
    pub nullable: bool,
    /// `CHARACTER_MAXIMUM_LENGTH`: the characters a text column holds
    /// (`TEXT`'s is its limit in bytes); `None` for other types.
    pub max_chars: Option<u64>,
    /// `CHARACTER_OCTET_LENGTH`: the bytes a text column holds.
    pub max_bytes: Option<u64>,
    /// `CHARACTER_SET_NAME`: `utf8mb4`, `latin1`...; `None` for other types.
    pub charset: Option<String>,
    /// `COLLATION_NAME`: how a text column compares; `None` for other types.
    pub collation: Option<String>,
}

impl Column {
    /// `varchar(5)`, or `varchar(5) CHARACTER SET latin1` for a text column:
    /// the type as messages name it.
    fn describe(&self) -> String {
        match &self.charset {
            Some(charset) => format!("{} CHARACTER SET {charset}", self.column_type),
            None => self.column_type.clone(),
        }
    }
}

/// A foreign key column: `child.column` references `parent.parent_column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub child: String,
    pub column: String,
    pub parent: String,
    pub parent_column: String,
    /// `CASCADE`, `SET NULL`, `RESTRICT`, `NO ACTION`, `SET DEFAULT`.
    pub on_delete: String,
}

/// The facts of one database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    /// (table, column) → column.
    pub columns: BTreeMap<(String, String), Column>,
    pub foreign_keys: Vec<ForeignKey>,
    /// (table, column) of every column that is the first of an index.
    pub indexed: BTreeSet<(String, String)>,
    /// (table, column) → the name of an index of that column alone.
    pub lone_indexes: BTreeMap<(String, String), String>,
    /// (table, column) of every column that a unique index holds alone: its
    /// values name one row each.
    pub unique: BTreeSet<(String, String)>,
    /// table → the column that is its primary key alone.
    pub primary: BTreeMap<String, String>,
}

/// Whether two columns compare exactly, so that a join matches only equal
/// values and can use the index: integers with integers, texts with texts of
/// the same character set and collation, binary with binary, or the same type.
fn comparable(a: &Column, b: &Column) -> Result<(), String> {
    let family = |column: &Column| match column.data_type.to_ascii_lowercase().as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => "integer",
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => "text",
        "binary" | "varbinary" => "binary",
        _ => "",
    };
    match (family(a), family(b)) {
        ("text", "text") if a.charset != b.charset => Err(
            "texts of different character sets are converted before they compare, which \
             loses the index and may match look-alikes"
                .to_owned(),
        ),
        ("text", "text") if a.collation != b.collation => Err(format!(
            "texts of different collations ({} and {}) do not compare as either column does",
            a.collation.as_deref().unwrap_or("none"),
            b.collation.as_deref().unwrap_or("none")
        )),
        (x, y) if !x.is_empty() && x == y => Ok(()),
        _ if a.column_type.eq_ignore_ascii_case(&b.column_type) => Ok(()),
        _ => Err(
            "these types compare loosely (a text with a number compares as numbers: '01' \
             equals 1) and lose the index"
                .to_owned(),
        ),
    }
}

/// How `column` holds ids and the largest it can hold (user ids are at
/// least 1), or why user ids cannot be matched in it.
fn id_kind(column: &Column) -> Result<IdKind, String> {
    let data_type = column.data_type.to_ascii_lowercase();
    let unsigned = column.column_type.to_ascii_lowercase().contains("unsigned");
    let (signed_max, unsigned_max) = match data_type.as_str() {
        "tinyint" => (i8::MAX as u64, u8::MAX as u64),
        "smallint" => (i16::MAX as u64, u16::MAX as u64),
        "mediumint" => ((1 << 23) - 1, (1 << 24) - 1),
        "int" | "integer" => (i32::MAX as u64, u32::MAX as u64),
        "bigint" => (i64::MAX as u64, u64::MAX),
        // PostgreSQL's `text` (and a `varchar` without a length) holds any digits.
        "char" | "varchar" => {
            return Ok(IdKind::Text {
                max: column.max_chars.map_or(u64::MAX, largest_of_digits),
            });
        }
        other => {
            return Err(format!(
                "its type is {other}; user ids can only be matched exactly in an integer, \
                 CHAR or VARCHAR column"
            ));
        }
    };
    Ok(IdKind::Integer {
        max: if unsigned { unsigned_max } else { signed_max },
    })
}

/// The largest id written in at most `length` digits (`u64::MAX` has 20).
fn largest_of_digits(length: u64) -> u64 {
    u32::try_from(length)
        .ok()
        .and_then(|length| 10u64.checked_pow(length))
        .map_or(u64::MAX, |bound| bound - 1)
}

/// Why `text` would not be stored in `column` exactly as it is, if it
/// would not: too long (in characters, or for a `TEXT` in bytes), a
/// character the column's character set lacks (for the sets known here;
/// the job's strict session refuses the rest), trailing spaces a `CHAR`
/// drops, or a column that is not text at all.
pub fn text_fit(column: &Column, text: &str) -> Result<(), String> {
    let data_type = column.data_type.to_ascii_lowercase();
    if !matches!(
        data_type.as_str(),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext"
    ) {
        return Err("a replace text can only go into a CHAR, VARCHAR or TEXT column".to_owned());
    }
    let chars = text.chars().count() as u64;
    if let Some(max) = column.max_chars.filter(|max| chars > *max) {
        return Err(format!("it holds {max} characters"));
    }
    if data_type == "char" && text.ends_with(' ') {
        return Err("a CHAR column drops trailing spaces".to_owned());
    }
    let Some(charset) = &column.charset else {
        return Ok(());
    };
    let (bytes, lacking) = match charset.to_ascii_lowercase().as_str() {
        "utf8mb4" => (text.len() as u64, None),
        // Three bytes at most: no emoji, nothing beyond the Basic Multilingual Plane.
        "utf8mb3" | "utf8" => (text.len() as u64, text.chars().find(|c| c.len_utf8() > 3)),
        "ascii" => (chars, text.chars().find(|c| !c.is_ascii())),
        "latin1" => (chars, text.chars().find(|c| !in_latin1(*c))),
        _ => return Ok(()),
    };
    if let Some(c) = lacking {
        return Err(format!(
            "its character set {charset} cannot hold U+{:04X}",
            u32::from(c)
        ));
    }
    if let Some(max) = column.max_bytes.filter(|max| bytes > *max) {
        return Err(format!(
            "it holds {max} bytes, and the text is {bytes} in {charset}"
        ));
    }
    Ok(())
}

/// MySQL's `latin1`, which is Windows-1252 with its five unassigned bytes
/// kept as the C1 controls they stand for: every character of one byte.
fn in_latin1(c: char) -> bool {
    // Bytes 0x80 to 0x9F, but for 0x81, 0x8D, 0x8F, 0x90 and 0x9D.
    const WINDOWS_1252: [char; 27] = [
        '\u{20AC}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
        '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{017D}', '\u{2018}',
        '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}',
        '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{017E}', '\u{0178}',
    ];
    matches!(u32::from(c), 0..=0x7F | 0x81 | 0x8D | 0x8F | 0x90 | 0x9D | 0xA0..=0xFF)
        || WINDOWS_1252.contains(&c)
}

/// Why the check could not read the schema.
#[derive(Debug)]
pub enum SchemaError {
    /// A pattern (its setting, the server's reason) is not a REGEXP the
    /// server accepts.
    BadPattern(&'static str, String),
    /// The database cannot be reached or read.
    Unreadable(anyhow::Error),
}

/// What the checks found usable: each entry's id kind and bound, and the
/// record's id kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub entries: Vec<IdKind>,
    pub bounds: Vec<Bound>,
    pub record: Option<IdKind>,
}

/// How an entry's statements stay within a chunk of rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// The entry's own column holds the user id and is unique: a statement
    /// over n users touches at most n rows.
    PerUser,
    /// The rows are taken a chunk at a time by this single-column key; one
    /// user's rows are walked through the index named, if any: the entry's
    /// column alone, so that (column, key) is a range.
    Key(Identifier, KeyKind, Option<String>),
    /// No key to take chunks by: one statement over the users (a `chunked`
    /// entry is refused instead).
    Unbounded,
}

impl Schema {
    /// The key an entry's rows are chunked by: the table's single-column
    /// primary key, or else a unique `NOT NULL` one, of an integer, text or
    /// binary type (whose values are written back exactly).
    fn chunk_key(&self, table: &Identifier) -> Option<(Identifier, KeyKind)> {
        let name = table.as_str().to_owned();
        let primary = self.primary.get(&name).into_iter();
        let unique = self
            .unique
            .iter()
            .filter(|(t, _)| *t == name)
            .map(|(_, column)| column);
        primary.chain(unique).find_map(|column| {
            let id = Identifier::parse(column).ok()?;
            let info = self.column(table, &id)?;
            if info.nullable {
                return None;
            }
            let kind = match info.data_type.to_ascii_lowercase().as_str() {
                "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
                    KeyKind::Integer
                }
                // PostgreSQL's texts have no character set of their own.
                "char" | "varchar" => KeyKind::Text {
                    charset: info.charset.clone().unwrap_or_default(),
                },
                "binary" | "varbinary" => KeyKind::Binary,
                _ => return None,
            };
            Some((id, kind))
        })
    }

    /// How an entry's statements are bounded, or why a chunked one cannot be.
    fn bound(&self, map: &Map, entry: &Entry) -> Result<Bound, String> {
        let own = (
            entry.table.as_str().to_owned(),
            entry.column.as_str().to_owned(),
        );
        if entry.via.is_empty() && !entry.chunked && self.unique.contains(&own) {
            return Ok(Bound::PerUser);
        }
        if entry.chunked {
            let mapped: BTreeSet<&str> = map.entries().iter().map(|e| e.table.as_str()).collect();
            if let Some(fk) = self
                .foreign_keys
                .iter()
                .find(|fk| fk.child == entry.table.as_str() && mapped.contains(fk.parent.as_str()))
            {
                return Err(format!(
                    "it is chunked, but its table holds the foreign key {}.{} -> {}.{} (ON DELETE \
                     {}) to a table of the map: chunked tables must be leaves, erased after the \
                     atomic transaction; drop chunked = true or the key",
                    fk.child, fk.column, fk.parent, fk.parent_column, fk.on_delete
                ));
            }
        }
        match self.chunk_key(&entry.table) {
            Some((key, kind)) => Ok(Bound::Key(
                key,
                kind,
                entry
                    .via
                    .is_empty()
                    .then(|| self.lone_indexes.get(&own).cloned())
                    .flatten(),
            )),
            None if entry.chunked => Err(format!(
                "it is chunked, but {} has no single-column primary key (or unique NOT NULL \
                 key) of an integer or text type to take chunks by",
                entry.table
            )),
            None => Ok(Bound::Unbounded),
        }
    }
}

impl Schema {
    fn column(&self, table: &Identifier, column: &Identifier) -> Option<&Column> {
        self.columns
            .get(&(table.as_str().to_owned(), column.as_str().to_owned()))
    }

    /// Checks the map and the erasure record against the schema. The problem
    /// it returns names the entry, the table and the column.
    pub fn check(&self, map: &Map, record: Option<&Identifier>) -> Result<Checked, String> {
        let mut entries = Vec::with_capacity(map.entries().len());
        let mut bounds = Vec::with_capacity(map.entries().len());
        for (i, entry) in map.entries().iter().enumerate() {
            let at = || format!("entry {} ({})", i + 1, entry.describe());
            let missing = |column: &Identifier| {
                format!(
                    "{}: {} does not exist (or this user cannot see it)",
                    at(),
                    sql::column(&entry.table, column)
                )
            };
            self.column(&entry.table, &entry.column)
                .ok_or_else(|| missing(&entry.column))?;
            self.check_via(entry)
                .map_err(|why| format!("{}: {why}", at()))?;
            let (table, column) = entry.user_column();
            let id = self.column(table, column).ok_or_else(|| {
                format!("{}: {} does not exist", at(), sql::column(table, column))
            })?;
            let kind = id_kind(id).map_err(|why| {
                format!(
                    "{}: {} cannot be used: {why}",
                    at(),
                    sql::column(table, column)
                )
            })?;
            if let Action::Redact { null, replace } = &entry.action {
                for name in null {
                    let column = self
                        .column(&entry.table, name)
                        .ok_or_else(|| missing(name))?;
                    if !column.nullable {
                        return Err(format!(
                            "{}: {} is NOT NULL and cannot be set to NULL; replace it with a text instead",
                            at(),
                            sql::column(&entry.table, name)
                        ));
                    }
                }
                for (name, text) in replace {
                    let column = self
                        .column(&entry.table, name)
                        .ok_or_else(|| missing(name))?;
                    text_fit(column, text).map_err(|why| {
                        format!(
                            "{}: the replace text of {} ({} characters) does not fit its type, \
                             {}: {why}",
                            at(),
                            sql::column(&entry.table, name),
                            text.chars().count(),
                            column.describe()
                        )
                    })?;
                }
            }
            entries.push(kind);
            bounds.push(
                self.bound(map, entry)
                    .map_err(|why| format!("{}: {why}", at()))?,
            );
        }
        self.check_cascades(map)?;
        let record = match record {
            None => None,
            Some(table) => Some(self.check_record(map, &entries, table)?),
        };
        Ok(Checked {
            entries,
            bounds,
            record,
        })
    }

    /// An entry's hops: each table and column exists, each hop's value names
    /// one row (a unique key), and each comparison between two columns is
    /// exact and can use the index.
    fn check_via(&self, entry: &Entry) -> Result<(), String> {
        let Some(first) = entry.via.first() else {
            return Ok(());
        };
        let mut named = vec![(&first.table, &first.key)];
        for hop in &entry.via {
            named.push((&hop.table, &hop.value));
        }
        for hop in &entry.via[1..] {
            named.push((&hop.table, &hop.key));
        }
        for (table, column) in &named {
            if self.column(table, column).is_none() {
                return Err(format!(
                    "its via names {}, which does not exist (or this user cannot see it)",
                    sql::column(table, column)
                ));
            }
        }
        for hop in &entry.via {
            let key = (hop.table.as_str().to_owned(), hop.value.as_str().to_owned());
            if !self.unique.contains(&key) {
                return Err(format!(
                    "its via goes from {} to its rows, but that column is not unique (no primary \
                     key or unique index holds it alone): a value shared by two rows, such as an \
                     email of two accounts, would reach rows of someone else",
                    sql::column(&hop.table, &hop.value)
                ));
            }
        }
        // Each later column meets the value of the hop before it.
        let mut pairs = Vec::new();
        for pair in entry.via.windows(2) {
            pairs.push((
                (&pair[0].table, &pair[0].value),
                (&pair[1].table, &pair[1].key),
            ));
        }
        let last = &entry.via[entry.via.len() - 1];
        pairs.push(((&last.table, &last.value), (&entry.table, &entry.column)));
        for ((t1, c1), (t2, c2)) in pairs {
            let (a, b) = (self.column(t1, c1), self.column(t2, c2));
            if let (Some(a), Some(b)) = (a, b) {
                comparable(a, b).map_err(|why| {
                    format!(
                        "its via compares {} ({}) with {} ({}): {why}",
                        sql::column(t1, c1),
                        a.describe(),
                        sql::column(t2, c2),
                        b.describe()
                    )
                })?;
            }
        }
        Ok(())
    }

    /// What only the schema shows of the map's order: an earlier entry whose
    /// deletes cascade (`ON DELETE CASCADE`, or `SET NULL` on a hop column)
    /// into a later entry's hop rows leaves that entry nothing to find.
    fn check_cascades(&self, map: &Map) -> Result<(), String> {
        let entries = map.entries();
        for (j, earlier) in entries.iter().enumerate() {
            if earlier.action != Action::Delete {
                continue;
            }
            let (gone, emptied) = self.cascade_of(earlier.table.as_str());
            for (i, entry) in entries.iter().enumerate().skip(j + 1) {
                for hop in &entry.via {
                    let table = hop.table.as_str();
                    let why = if gone.contains(table) && table != earlier.table.as_str() {
                        Some(format!("deletes the rows of {table} by ON DELETE CASCADE"))
                    } else {
                        [&hop.key, &hop.value]
                            .into_iter()
                            .find(|c| emptied.contains(&(table.to_owned(), c.as_str().to_owned())))
                            .map(|c| format!("empties {table}.{c} by ON DELETE SET NULL"))
                    };
                    if let Some(why) = why {
                        return Err(format!(
                            "entry {} ({}) goes via {table}, but entry {} ({}), which runs before \
                             it, {why}: its rows could never be found; list entry {} before entry {}",
                            i + 1,
                            entry.describe(),
                            j + 1,
                            earlier.describe(),
                            i + 1,
                            j + 1
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The tables whose rows go with a delete from `table` (itself and every
    /// `ON DELETE CASCADE` child, transitively), and the columns it empties
    /// (`ON DELETE SET NULL` foreign keys of those tables).
    fn cascade_of(&self, table: &str) -> (BTreeSet<String>, BTreeSet<(String, String)>) {
        let mut gone = BTreeSet::from([table.to_owned()]);
        let mut emptied = BTreeSet::new();
        let mut pending = vec![table.to_owned()];
        while let Some(parent) = pending.pop() {
            for fk in self.foreign_keys.iter().filter(|fk| fk.parent == parent) {
                match fk.on_delete.to_ascii_uppercase().as_str() {
                    "CASCADE" if gone.insert(fk.child.clone()) => {
                        pending.push(fk.child.clone());
                    }
                    "SET NULL" => {
                        emptied.insert((fk.child.clone(), fk.column.clone()));
                    }
                    _ => {}
                }
            }
        }
        (gone, emptied)
    }

    /// The record has its columns, and its `user_id` holds every id that an
    /// entry's id column can hold: what could be erased can be recorded, and
    /// never as another number.
    fn check_record(
        &self,
        map: &Map,
        entries: &[IdKind],
        table: &Identifier,
    ) -> Result<IdKind, String> {
        let mut user_id = None;
        for name in RECORD_COLUMNS {
            let name = Identifier::parse(name).map_err(|e| e.to_string())?;
            let column = self.column(table, &name).ok_or_else(|| {
                format!(
                    "the erasure record {} does not exist; create it as the README says",
                    sql::column(table, &name)
                )
            })?;
            if name.as_str() == "user_id" {
                user_id = Some((name, column));
            }
        }
        let Some((name, column)) = user_id else {
            return Err("the erasure record has no user_id column".to_owned());
        };
        let kind = id_kind(column)
            .map_err(|why| format!("the erasure record's user_id cannot be used: {why}"))?;
        // The widest id column, the first of them if several are as wide.
        let widest = map
            .entries()
            .iter()
            .zip(entries)
            .rev()
            .max_by_key(|(_, entry)| entry.max());
        if let Some((entry, entry_kind)) = widest.filter(|(_, e)| e.max() > kind.max()) {
            let (id_table, id_name) = entry.user_column();
            let id_column = sql::column(id_table, id_name);
            let id_type = self
                .column(id_table, id_name)
                .map_or("?", |column| column.column_type.as_str());
            return Err(format!(
                "the erasure record's {} ({}) cannot hold every id of {id_column} ({id_type}): \
                 it holds ids up to {}, that column up to {}; give user_id a type as wide \
                 as {id_column}'s",
                sql::column(table, &name),
                column.column_type,
                kind.max(),
                entry_kind.max(),
            ));
        }
        Ok(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A column as `INFORMATION_SCHEMA` has it; a `CHAR`/`VARCHAR` in utf8mb4,
    /// its length read from the column type.
    fn column(data_type: &str, column_type: &str, nullable: bool) -> Column {
        let length: Option<u64> = column_type
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .and_then(|(n, _)| n.parse().ok());
        let text = matches!(data_type, "char" | "varchar");
        Column {
            data_type: data_type.into(),
            column_type: column_type.into(),
            nullable,
            max_chars: length.filter(|_| text),
            max_bytes: length.filter(|_| text).map(|n| 4 * n),
            charset: text.then(|| "utf8mb4".into()),
            collation: text.then(|| "utf8mb4_general_ci".into()),
        }
    }

    /// A text column in this character set, holding so many characters and bytes.
    fn text(column_type: &str, chars: u64, bytes: u64, charset: &str) -> Column {
        Column {
            data_type: column_type.split('(').next().unwrap().into(),
            column_type: column_type.into(),
            nullable: true,
            max_chars: Some(chars),
            max_bytes: Some(bytes),
            charset: Some(charset.into()),
            collation: Some(format!("{charset}_general_ci")),
        }
    }

    fn schema(columns: &[(&str, &str, Column)]) -> Schema {
        Schema {
            columns: columns
                .iter()
                .map(|(t, c, col)| ((t.to_string(), c.to_string()), col.clone()))
                .collect(),
            ..Schema::default()
        }
    }

    const UNSIGNED: IdKind = IdKind::Integer { max: u64::MAX };
    const INT: IdKind = IdKind::Integer {
        max: i32::MAX as u64,
    };

    fn example() -> Schema {
        schema(&[
            (
                "sessions",
                "user_id",
                column("bigint", "bigint(20) unsigned", true),
            ),
            (
                "invoices",
                "customer_id",
                column("varchar", "varchar(20)", false),
            ),
            ("invoices", "email", column("varchar", "varchar(100)", true)),
            ("invoices", "phone", column("varchar", "varchar(30)", true)),
            ("invoices", "name", column("varchar", "varchar(100)", false)),
            ("users", "id", column("int", "int(11)", false)),
            (
                "erased",
                "user_id",
                column("bigint", "bigint(20) unsigned", false),
            ),
            (
                "erased",
                "erased_at",
                column("datetime", "datetime(3)", false),
            ),
            (
                "erased",
                "message_id",
                column("varchar", "varchar(128)", false),
            ),
        ])
    }

    fn map() -> Map {
        crate::config::map::example()
    }

    fn id(s: &str) -> Identifier {
        Identifier::parse(s).unwrap()
    }

    #[test]
    fn each_entry_gets_the_kind_of_its_id_column() {
        let checked = example().check(&map(), Some(&id("erased"))).unwrap();
        assert_eq!(
            checked.entries,
            [UNSIGNED, IdKind::Text { max: u64::MAX }, INT]
        );
        assert_eq!(checked.record, Some(UNSIGNED));
        // No keys in this schema: nothing to take chunks by.
        assert_eq!(checked.bounds, vec![Bound::Unbounded; 3]);
    }

    /// `events(id, user_id, code)` beside `users(id)`, with a map that
    /// erases events (chunked or not) then users.
    fn events(chunked: bool) -> (Schema, Map) {
        let mut schema = schema(&[
            ("events", "id", column("bigint", "bigint(20)", false)),
            ("events", "user_id", column("bigint", "bigint(20)", false)),
            ("events", "code", column("varchar", "varchar(10)", false)),
            ("users", "id", column("int", "int(11)", false)),
        ]);
        for (table, key) in [("events", "id"), ("users", "id")] {
            schema.primary.insert(table.into(), key.into());
            schema.unique.insert((table.into(), key.into()));
            schema.indexed.insert((table.into(), key.into()));
        }
        schema.indexed.insert(("events".into(), "user_id".into()));
        schema
            .lone_indexes
            .insert(("events".into(), "user_id".into()), "by_user".into());
        let map = Map::parse(
            "m.toml",
            &format!(
                "[[delete]]\ntable = \"events\"\ncolumn = \"user_id\"\nchunked = {chunked}\n\
                 [[delete]]\ntable = \"users\"\ncolumn = \"id\"\n"
            ),
        )
        .unwrap();
        (schema, map)
    }

    #[test]
    fn rows_are_chunked_by_the_primary_key_and_a_unique_user_column_per_user() {
        let (schema, map) = events(false);
        let checked = schema.check(&map, None).unwrap();
        assert_eq!(
            checked.bounds,
            [
                Bound::Key(id("id"), KeyKind::Integer, Some("by_user".into())),
                Bound::PerUser
            ]
        );
        // A text key is written back in its own character set.
        let (mut schema, map) = events(true);
        schema.primary.insert("events".into(), "code".into());
        schema.unique.insert(("events".into(), "code".into()));
        let checked = schema.check(&map, None).unwrap();
        assert_eq!(
            checked.bounds[0],
            Bound::Key(
                id("code"),
                KeyKind::Text {
                    charset: "utf8mb4".into()
                },
                Some("by_user".into())
            )
        );
    }

    #[test]
    fn a_chunked_entry_needs_a_key_and_may_not_reference_the_map() {
        let (mut schema, map) = events(true);
        schema.primary.remove("events");
        schema.unique.remove(&("events".into(), "id".into()));
        let problem = schema.check(&map, None).unwrap_err();
        assert!(
            problem.starts_with("entry 1 ([[delete]] events): it is chunked, but events has no"),
            "{problem}"
        );
        // Without chunked, the same table is erased in one statement.
        let (mut schema, map) = events(false);
        schema.primary.remove("events");
        schema.unique.remove(&("events".into(), "id".into()));
        assert_eq!(
            schema.check(&map, None).unwrap().bounds[0],
            Bound::Unbounded
        );

        for on_delete in ["CASCADE", "SET NULL", "RESTRICT"] {
            let (mut schema, map) = events(true);
            schema.foreign_keys.push(ForeignKey {
                child: "events".into(),
                column: "user_id".into(),
                parent: "users".into(),
                parent_column: "id".into(),
                on_delete: on_delete.into(),
            });
            let problem = schema.check(&map, None).unwrap_err();
            assert!(
                problem.contains(&format!(
                    "holds the foreign key events.user_id -> users.id (ON DELETE {on_delete})"
                )),
                "{problem}"
            );
        }
    }

    #[test]
    fn what_is_missing_or_unusable_is_named() {
        let mut no_phone = example();
        no_phone
            .columns
            .remove(&("invoices".into(), "phone".into()));
        let problem = no_phone.check(&map(), None).unwrap_err();
        assert_eq!(
            problem,
            "entry 2 ([[redact]] invoices): `invoices`.`phone` does not exist (or this user cannot see it)"
        );

        let mut strict = example();
        strict.columns.insert(
            ("invoices".into(), "email".into()),
            column("varchar", "varchar(100)", false),
        );
        let problem = strict.check(&map(), None).unwrap_err();
        assert!(
            problem.contains("`invoices`.`email` is NOT NULL"),
            "{problem}"
        );

        let mut decimal = example();
        decimal.columns.insert(
            ("users".into(), "id".into()),
            column("decimal", "decimal(20,0)", false),
        );
        let problem = decimal.check(&map(), None).unwrap_err();
        assert!(
            problem.starts_with(
                "entry 3 ([[delete]] users): `users`.`id` cannot be used: its type is decimal"
            ),
            "{problem}"
        );

        let problem = example().check(&map(), Some(&id("nowhere"))).unwrap_err();
        assert!(
            problem.contains("erasure record `nowhere`.`user_id` does not exist"),
            "{problem}"
        );
    }

    #[test]
    fn the_id_column_type_decides_the_kind_or_is_refused() {
        assert_eq!(
            id_kind(&column("bigint", "bigint(20) unsigned", false)),
            Ok(UNSIGNED)
        );
        assert_eq!(id_kind(&column("INT", "int(11)", false)), Ok(INT));
        assert_eq!(
            id_kind(&column("varchar", "varchar(20)", false)),
            Ok(IdKind::Text { max: u64::MAX })
        );
        assert_eq!(
            id_kind(&column("char", "char(8)", false)),
            Ok(IdKind::Text { max: 99_999_999 })
        );
        for refused in [
            "decimal",
            "date",
            "blob",
            "text",
            "double",
            "binary",
            "varbinary",
            "json",
        ] {
            let why = id_kind(&column(refused, refused, false)).unwrap_err();
            assert!(why.contains(refused), "{why}");
        }
    }

    #[test]
    fn each_id_column_holds_the_ids_of_its_type() {
        let max = |data_type: &str, column_type: &str| {
            id_kind(&column(data_type, column_type, false))
                .unwrap()
                .max()
        };
        let integers = [
            ("tinyint", "tinyint(4)", 127),
            ("tinyint", "tinyint(3) unsigned", 255),
            ("smallint", "smallint(6)", 32_767),
            ("smallint", "smallint(5) unsigned", 65_535),
            ("mediumint", "mediumint(9)", 8_388_607),
            ("mediumint", "mediumint(8) unsigned", 16_777_215),
            ("int", "int(11)", 2_147_483_647),
            ("int", "int unsigned", 4_294_967_295),
            ("bigint", "bigint(20)", 9_223_372_036_854_775_807),
            ("bigint", "bigint(20) unsigned zerofill", u64::MAX),
        ];
        for (data_type, column_type, expected) in integers {
            assert_eq!(max(data_type, column_type), expected, "{column_type}");
        }
        // Exact digits, as many as the length allows: u64::MAX has 20.
        assert_eq!(max("varchar", "varchar(10)"), 9_999_999_999);
        assert_eq!(max("varchar", "varchar(19)"), 9_999_999_999_999_999_999);
        assert_eq!(max("varchar", "varchar(20)"), u64::MAX);
        assert_eq!(max("char", "char(255)"), u64::MAX);
        assert_eq!(max("char", "char(1)"), 9);
    }

    /// The example with the record's user_id of this type.
    fn record_of(data_type: &str, column_type: &str) -> Schema {
        let mut schema = example();
        schema.columns.insert(
            ("erased".into(), "user_id".into()),
            column(data_type, column_type, false),
        );
        schema
    }

    #[test]
    fn the_record_holds_every_id_the_map_can_erase() {
        let single = Map::single(id("users"), id("id"));
        let mut bigint_users = record_of("int", "int(11)");
        bigint_users.columns.insert(
            ("users".into(), "id".into()),
            column("bigint", "bigint(20) unsigned", false),
        );
        let problem = bigint_users
            .check(&single, Some(&id("erased")))
            .unwrap_err();
        assert_eq!(
            problem,
            "the erasure record's `erased`.`user_id` (int(11)) cannot hold every id of \
             `users`.`id` (bigint(20) unsigned): it holds ids up to 2147483647, that column up \
             to 18446744073709551615; give user_id a type as wide as `users`.`id`'s"
        );

        // users.id is an INT in the example.
        let holds = |data_type: &str, column_type: &str, map: &Map| {
            record_of(data_type, column_type)
                .check(map, Some(&id("erased")))
                .map(|checked| checked.record.unwrap().max())
        };
        assert_eq!(
            holds("bigint", "bigint(20) unsigned", &single),
            Ok(u64::MAX)
        );
        assert_eq!(holds("int", "int(11)", &single), Ok(i32::MAX as u64));
        assert_eq!(holds("varchar", "varchar(10)", &single), Ok(9_999_999_999));
        assert!(holds("int", "int(10) unsigned", &single).is_ok());
        let problem = holds("mediumint", "mediumint(8) unsigned", &single).unwrap_err();
        assert!(
            problem
                .contains("(mediumint(8) unsigned) cannot hold every id of `users`.`id` (int(11))"),
            "{problem}"
        );

        // With the whole map, the widest id column counts: sessions.user_id
        // is a BIGINT UNSIGNED, invoices.customer_id a VARCHAR(20).
        assert_eq!(holds("varchar", "varchar(20)", &map()), Ok(u64::MAX));
        for narrow in [
            ("varchar", "varchar(19)"),
            ("bigint", "bigint(20)"),
            ("int", "int(11)"),
        ] {
            let problem = holds(narrow.0, narrow.1, &map()).unwrap_err();
            assert!(
                problem.contains("every id of `sessions`.`user_id` (bigint(20) unsigned)"),
                "{problem}"
            );
        }
    }

    /// The example's `name`, replaced by `text`, as this column.
    fn replacing(name: Column, text: &str) -> Result<Checked, String> {
        let mut schema = example();
        schema
            .columns
            .insert(("invoices".into(), "name".into()), name);
        let map = Map::parse(
            "m.toml",
            &format!(
                "[[redact]]\ntable = \"invoices\"\ncolumn = \"customer_id\"\nreplace = {{ name = {text:?} }}\n"
            ),
        )
        .unwrap();
        schema.check(&map, None)
    }

    #[test]
    fn a_replace_text_must_fit_its_column_as_it_is() {
        let problem = replacing(text("varchar(5)", 5, 5, "latin1"), "erased user").unwrap_err();
        assert_eq!(
            problem,
            "entry 1 ([[redact]] invoices): the replace text of `invoices`.`name` (11 characters) \
             does not fit its type, varchar(5) CHARACTER SET latin1: it holds 5 characters"
        );
        assert!(replacing(text("varchar(11)", 11, 11, "latin1"), "erased user").is_ok());

        let refused = [
            (
                text("varchar(20)", 20, 20, "latin1"),
                "gelöscht →",
                "latin1 cannot hold U+2192",
            ),
            (
                text("varchar(20)", 20, 20, "ascii"),
                "gelöscht",
                "ascii cannot hold U+00F6",
            ),
            (
                text("varchar(20)", 20, 60, "utf8mb3"),
                "erased 🙂",
                "utf8mb3 cannot hold U+1F642",
            ),
            (
                text("char(20)", 20, 80, "utf8mb4"),
                "erased ",
                "a CHAR column drops trailing spaces",
            ),
            (
                text("text", 65_535, 65_535, "utf8mb4"),
                &"🙂".repeat(20_000),
                "it holds 65535 bytes, and the text is 80000 in utf8mb4",
            ),
            (
                column("int", "int(11)", true),
                "0",
                "only go into a CHAR, VARCHAR or TEXT column",
            ),
            (
                column("varbinary", "varbinary(20)", true),
                "x",
                "only go into a CHAR, VARCHAR or TEXT column",
            ),
        ];
        for (name, replacement, why) in &refused {
            let problem = replacing(name.clone(), replacement).unwrap_err();
            assert!(problem.ends_with(why), "{problem}");
        }

        let kept = [
            // Windows-1252, as MySQL's latin1 is.
            (text("varchar(20)", 20, 20, "latin1"), "gelöscht – €"),
            (text("varchar(20)", 20, 60, "utf8mb3"), "gelöscht → ✓"),
            (text("varchar(20)", 20, 80, "utf8mb4"), "erased 🙂"),
            (text("char(20)", 20, 80, "utf8mb4"), " erased"),
            (
                text("text", 65_535, 65_535, "utf8mb4"),
                &"🙂".repeat(16_383),
            ),
            (text("tinytext", 255, 255, "latin1"), "erased user"),
            // A character set not known here: the strict session refuses
            // what it cannot hold.
            (text("varchar(20)", 20, 20, "greek"), "erased"),
        ];
        for (name, replacement) in &kept {
            assert!(
                replacing(name.clone(), replacement).is_ok(),
                "{replacement} in {name:?}"
            );
        }
    }

    /// The via example's tables: orders (id, user_id), order_items (id,
    /// order_id), shipping (order_id, address), users (id, email),
    /// newsletter (email); every id a BIGINT UNSIGNED, every text utf8mb4.
    fn via_schema() -> Schema {
        let id = || column("bigint", "bigint(20) unsigned", false);
        let email = || column("varchar", "varchar(100)", true);
        let mut schema = schema(&[
            ("orders", "id", id()),
            ("orders", "user_id", id()),
            ("order_items", "id", id()),
            ("order_items", "order_id", id()),
            ("shipping", "order_id", id()),
            ("shipping", "address", email()),
            ("users", "id", id()),
            ("users", "email", email()),
            ("newsletter", "email", email()),
        ]);
        for (table, column) in [
            ("orders", "id"),
            ("users", "id"),
            ("users", "email"),
            ("order_items", "id"),
        ] {
            schema.unique.insert((table.into(), column.into()));
        }
        schema
    }

    fn via_map() -> Map {
        Map::parse("map.toml", crate::config::map::VIA_EXAMPLE).unwrap()
    }

    #[test]
    fn a_via_entry_takes_the_kind_of_its_first_key() {
        let mut schema = via_schema();
        schema.columns.insert(
            ("orders".into(), "user_id".into()),
            column("int", "int(11)", false),
        );
        let checked = schema.check(&via_map(), None).unwrap();
        assert_eq!(checked.entries, [INT, INT, UNSIGNED, INT, UNSIGNED]);
    }

    #[test]
    fn each_problem_of_a_via_is_named() {
        type Change = fn(&mut Schema);
        let cases: [(&str, Change, &str); 6] = [
            (
                "a hop column that does not exist",
                |s| {
                    s.columns.remove(&("orders".into(), "user_id".into()));
                },
                "entry 1 ([[delete]] order_items): its via names `orders`.`user_id`, which does not exist",
            ),
            (
                "a value that is not unique",
                |s| {
                    s.unique.remove(&("users".into(), "email".into()));
                },
                "entry 3 ([[delete]] newsletter): its via goes from `users`.`email` to its rows, \
                 but that column is not unique",
            ),
            (
                "an integer against a text",
                |s| {
                    s.columns.insert(
                        ("order_items".into(), "order_id".into()),
                        column("varchar", "varchar(20)", false),
                    );
                },
                "entry 1 ([[delete]] order_items): its via compares `orders`.`id` (bigint(20) unsigned) \
                 with `order_items`.`order_id` (varchar(20) CHARACTER SET utf8mb4): these types \
                 compare loosely",
            ),
            (
                "texts of two collations",
                |s| {
                    let mut bin = column("varchar", "varchar(100)", true);
                    bin.collation = Some("utf8mb4_bin".into());
                    s.columns.insert(("newsletter".into(), "email".into()), bin);
                },
                "entry 3 ([[delete]] newsletter): its via compares `users`.`email` (varchar(100) \
                 CHARACTER SET utf8mb4) with `newsletter`.`email` (varchar(100) CHARACTER SET \
                 utf8mb4): texts of different collations (utf8mb4_general_ci and utf8mb4_bin)",
            ),
            (
                "texts of two character sets",
                |s| {
                    s.columns.insert(
                        ("newsletter".into(), "email".into()),
                        text("varchar(100)", 100, 100, "latin1"),
                    );
                },
                "entry 3 ([[delete]] newsletter): its via compares `users`.`email`",
            ),
            (
                "an earlier delete that cascades into a hop",
                |s| {
                    // A map where users goes first would be refused at load;
                    // here orders' rows go with the order items' parent.
                    s.foreign_keys.push(ForeignKey {
                        child: "users".into(),
                        column: "id".into(),
                        parent: "order_items".into(),
                        parent_column: "id".into(),
                        on_delete: "CASCADE".into(),
                    });
                },
                "entry 3 ([[delete]] newsletter) goes via users, but entry 1 ([[delete]] order_items), \
                 which runs before it, deletes the rows of users by ON DELETE CASCADE: its rows could \
                 never be found; list entry 3 before entry 1",
            ),
        ];
        for (what, change, expected) in cases {
            let mut schema = via_schema();
            change(&mut schema);
            let problem = schema.check(&via_map(), None).unwrap_err();
            assert!(
                problem.starts_with(expected),
                "{what}:\n gave: {problem}\n want: {expected}"
            );
        }
        // The whole map, as it stands, passes.
        assert!(via_schema().check(&via_map(), None).is_ok());
    }

    #[test]
    fn an_earlier_set_null_that_empties_a_hop_key_is_refused() {
        let mut schema = via_schema();
        schema.columns.insert(
            ("audit".into(), "id".into()),
            column("bigint", "bigint(20) unsigned", false),
        );
        schema.columns.insert(
            ("audit".into(), "user_id".into()),
            column("bigint", "bigint(20) unsigned", true),
        );
        schema.columns.insert(
            ("audit_notes".into(), "audit_id".into()),
            column("bigint", "bigint(20) unsigned", false),
        );
        schema.unique.insert(("audit".into(), "id".into()));
        schema.foreign_keys.push(ForeignKey {
            child: "audit".into(),
            column: "user_id".into(),
            parent: "sessions".into(),
            parent_column: "id".into(),
            on_delete: "SET NULL".into(),
        });
        schema.columns.insert(
            ("sessions".into(), "id".into()),
            column("bigint", "bigint(20) unsigned", false),
        );
        let map = Map::parse(
            "map.toml",
            r#"
[[delete]]
table = "sessions"
column = "id"

[[delete]]
table = "audit_notes"
column = "audit_id"
via = [{ table = "audit", key = "user_id", value = "id" }]
"#,
        )
        .unwrap();
        let problem = schema.check(&map, None).unwrap_err();
        assert!(
            problem.starts_with(
                "entry 2 ([[delete]] audit_notes) goes via audit, but entry 1 ([[delete]] sessions), \
                 which runs before it, empties audit.user_id by ON DELETE SET NULL"
            ),
            "{problem}"
        );
    }
}
