//! What the database's `INFORMATION_SCHEMA` says of its tables, as plain data
//! (`store` reads it), and the checks made against it before any message is
//! received: every table and column of the map exists, each id column's type
//! says how ids are written, no `NOT NULL` column is set to NULL, and the
//! erasure record has its columns.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::map::{Action, Identifier, Map};
use crate::store::sql::{self, IdKind, RECORD_COLUMNS};

/// One column, as `INFORMATION_SCHEMA.COLUMNS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// `DATA_TYPE`: `bigint`, `varchar`...
    pub data_type: String,
    /// `COLUMN_TYPE`: `bigint(20) unsigned`...
    pub column_type: String,
    pub nullable: bool,
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
}

/// How `column` holds ids, or why user ids cannot be matched in it.
fn id_kind(column: &Column) -> Result<IdKind, String> {
    match column.data_type.to_ascii_lowercase().as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
            Ok(IdKind::Integer {
                signed: !column.column_type.to_ascii_lowercase().contains("unsigned"),
            })
        }
        "char" | "varchar" => Ok(IdKind::Text),
        other => Err(format!(
            "its type is {other}; user ids can only be matched exactly in an integer, \
             CHAR or VARCHAR column"
        )),
    }
}

/// What the checks found usable: each entry's id kind, and the record's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub entries: Vec<IdKind>,
    pub record: Option<IdKind>,
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
        for (i, entry) in map.entries().iter().enumerate() {
            let at = || format!("entry {} ({})", i + 1, entry.describe());
            let missing = |column: &Identifier| {
                format!(
                    "{}: {} does not exist (or this user cannot see it)",
                    at(),
                    sql::column(&entry.table, column)
                )
            };
            let id = self
                .column(&entry.table, &entry.column)
                .ok_or_else(|| missing(&entry.column))?;
            let kind = id_kind(id).map_err(|why| {
                format!(
                    "{}: {} cannot be used: {why}",
                    at(),
                    sql::column(&entry.table, &entry.column)
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
                for (name, _) in replace {
                    self.column(&entry.table, name)
                        .ok_or_else(|| missing(name))?;
                }
            }
            entries.push(kind);
        }
        let record = match record {
            None => None,
            Some(table) => {
                let mut kind = None;
                for name in RECORD_COLUMNS {
                    let name = Identifier::parse(name).map_err(|e| e.to_string())?;
                    let column = self.column(table, &name).ok_or_else(|| {
                        format!(
                            "the erasure record {} does not exist; create it as the README says",
                            sql::column(table, &name)
                        )
                    })?;
                    if name.as_str() == "user_id" {
                        kind = Some(id_kind(column).map_err(|why| {
                            format!("the erasure record's user_id cannot be used: {why}")
                        })?);
                    }
                }
                kind
            }
        };
        Ok(Checked { entries, record })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(data_type: &str, column_type: &str, nullable: bool) -> Column {
        Column {
            data_type: data_type.into(),
            column_type: column_type.into(),
            nullable,
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

    const UNSIGNED: IdKind = IdKind::Integer { signed: false };

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
            checked,
            Checked {
                entries: vec![UNSIGNED, IdKind::Text, IdKind::Integer { signed: true }],
                record: Some(UNSIGNED),
            }
        );
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
        assert_eq!(
            id_kind(&column("INT", "int(11)", false)),
            Ok(IdKind::Integer { signed: true })
        );
        assert_eq!(
            id_kind(&column("varchar", "varchar(20)", false)),
            Ok(IdKind::Text)
        );
        assert_eq!(id_kind(&column("char", "char(8)", false)), Ok(IdKind::Text));
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
}
