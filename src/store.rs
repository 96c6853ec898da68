//! The store seam on MySQL / MariaDB (mysql_async): the only module that imports it.
//!
//! One connection, one transaction, one `DELETE ... WHERE id IN (...)`. The ids
//! are integers written into the statement as literals, so 100,000 of them need
//! no placeholders (MySQL allows 65,535) and no string from a message ever
//! reaches SQL text.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::erase::{Refusal, Store, StoreError};
use crate::secret::Secret;

/// Where the delete goes, validated.
#[derive(Debug, Clone)]
pub struct Database {
    /// A URL that [`check_url`] accepted; it holds the password.
    pub url: Secret,
    pub table: Identifier,
    pub id_column: Identifier,
    /// How long the delete may wait for a row lock held by someone else.
    pub lock_wait_timeout: Duration,
    /// A CA certificate (PEM) to verify the server with; requires TLS.
    pub ca_file: Option<PathBuf>,
}

/// A plain SQL identifier: ASCII letters, digits and `_`, not starting with a
/// digit, at most 64 characters. Anything else is refused rather than escaped,
/// so no configuration value can change the statement's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// The identifier in backticks, ready for SQL text.
    pub fn quoted(&self) -> String {
        format!("`{}`", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a `mysql://` URL without contacting anything. The problem it returns
/// never repeats the URL, which holds the password.
pub fn check_url(url: &str) -> Result<(), String> {
    let opts = Opts::from_url(url).map_err(|error| match error {
        mysql_async::UrlError::UnsupportedScheme { scheme } => {
            format!("the scheme is {scheme:?}; it must be mysql://user:password@host:port/database")
        }
        mysql_async::UrlError::Parse(_) | mysql_async::UrlError::Invalid => {
            "it is not a URL of the form mysql://user:password@host:port/database".to_owned()
        }
        // The remaining variants name a query parameter, never the password.
        other => other.to_string(),
    })?;
    if opts.db_name().is_none_or(str::is_empty) {
        return Err("it names no database; add /database after the host".to_owned());
    }
    Ok(())
}

/// Where a URL points, without its password: for log lines.
pub fn describe(url: &str) -> String {
    match Opts::from_url(url) {
        Ok(opts) => format!(
            "mysql://{}@{}:{}/{}",
            opts.user().unwrap_or(""),
            opts.ip_or_hostname(),
            opts.tcp_port(),
            opts.db_name().unwrap_or("")
        ),
        Err(_) => "an invalid URL".to_owned(),
    }
}

/// How the id column holds its values, read from `INFORMATION_SCHEMA` at
/// connect: it decides how ids are written, so that no look-alike value
/// matches (a string column compared with an integer literal compares
/// numerically: `'01'`, `'1abc'` and `'1.0'` would all equal 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// An integer column: integer literals. `signed` columns hold no id
    /// above `i64::MAX`.
    Integer { signed: bool },
    /// `CHAR` or `VARCHAR`: exact string literals, and only values made of
    /// ASCII digits (a PAD SPACE collation would also match `'1 '`).
    Text,
}

impl IdKind {
    /// The kind for an `INFORMATION_SCHEMA.COLUMNS` row, or why it is refused.
    pub fn of(data_type: &str, column_type: &str) -> Result<IdKind, String> {
        match data_type.to_ascii_lowercase().as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
                Ok(IdKind::Integer {
                    signed: !column_type.to_ascii_lowercase().contains("unsigned"),
                })
            }
            "char" | "varchar" => Ok(IdKind::Text),
            other => Err(format!(
                "its type is {other}; user ids can only be matched exactly in an integer, \
                 CHAR or VARCHAR column"
            )),
        }
    }
}

/// A connection ready to erase from the configured table.
pub struct MySql {
    conn: Conn,
    table: Identifier,
    id_column: Identifier,
    id_kind: IdKind,
    /// The server's limit on one statement's size, read at connect so that an
    /// oversized statement fails with a clear message instead of a dropped connection.
    max_allowed_packet: usize,
}

impl MySql {
    /// Connects, then checks the table and the id column, so that a wrong
    /// setting fails here, before any message is received.
    pub async fn connect(database: &Database) -> anyhow::Result<MySql> {
        let opts = Opts::from_url(database.url.expose()).context("invalid database URL")?;
        let lock_wait = database.lock_wait_timeout.as_secs();
        let tls = match &database.ca_file {
            // A private CA: TLS on, and the server's certificate must chain to it.
            Some(ca) => Some(
                opts.ssl_opts()
                    .cloned()
                    .unwrap_or_default()
                    .with_root_certs(vec![ca.clone().into()]),
            ),
            // require_ssl=true (with verify_ca, verify_identity) in the URL, or plaintext.
            None => opts.ssl_opts().cloned(),
        };
        let opts = OptsBuilder::from_opts(opts)
            .ssl_opts(tls)
            // A blocked erasure gives up before the run's own deadline: row locks
            // (innodb_lock_wait_timeout) and table locks (lock_wait_timeout).
            // READ COMMITTED: no gap locks on ids that are gone already, so
            // concurrent runs do not block each other.
            .init(vec![
                format!(
                    "SET SESSION innodb_lock_wait_timeout = {lock_wait}, lock_wait_timeout = {lock_wait}"
                ),
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_owned(),
            ]);
        let mut conn = Conn::new(opts)
            .await
            .with_context(|| format!("cannot connect to {}", describe(database.url.expose())))?;
        let max_allowed_packet: Option<u64> = conn
            .query_first("SELECT @@max_allowed_packet")
            .await
            .context("cannot read max_allowed_packet")?;
        let column: Option<(String, String)> = conn
            .exec_first(
                "SELECT DATA_TYPE, COLUMN_TYPE FROM INFORMATION_SCHEMA.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                (database.table.as_str(), database.id_column.as_str()),
            )
            .await
            .context("cannot read the id column's type from INFORMATION_SCHEMA")?;
        let place = format!(
            "{}.{}",
            database.table.quoted(),
            database.id_column.quoted()
        );
        let Some((data_type, column_type)) = column else {
            bail!(
                "{place} does not exist (or this user cannot see it); \
                 nothing was received"
            );
        };
        let id_kind = IdKind::of(&data_type, &column_type).map_err(|why| {
            anyhow::anyhow!("{place} cannot be used: {why}; nothing was received")
        })?;
        Ok(MySql {
            conn,
            table: database.table.clone(),
            id_column: database.id_column.clone(),
            id_kind,
            max_allowed_packet: max_allowed_packet
                .unwrap_or(u64::MAX)
                .try_into()
                .unwrap_or(usize::MAX),
        })
    }

    async fn run(&mut self, statement: &str, what: &str) -> Result<(), StoreError> {
        self.conn
            .query_drop(statement)
            .await
            .map_err(|error| classify(error, &self.table, what))
    }
}

/// The SAVEPOINT each erase runs under.
const SAVEPOINT: &str = "user_purge_erase";

impl Store for MySql {
    async fn begin(&mut self) -> Result<(), StoreError> {
        self.run("START TRANSACTION", "START TRANSACTION").await
    }

    /// Deletes the given users in one statement under a savepoint. Returns the
    /// number of rows deleted from the table itself; rows in tables that
    /// reference it go through their foreign keys.
    async fn erase(&mut self, user_ids: &[u64]) -> Result<u64, StoreError> {
        let Some(statement) =
            delete_statement(&self.table, &self.id_column, self.id_kind, user_ids)
        else {
            return Ok(0);
        };
        if statement.len() >= self.max_allowed_packet {
            return Err(StoreError::Failed(anyhow::anyhow!(
                "the DELETE for {} ids is {} bytes, above the server's max_allowed_packet ({}); \
                 lower --batch-size or raise max_allowed_packet",
                user_ids.len(),
                statement.len(),
                self.max_allowed_packet
            )));
        }
        self.run(&format!("SAVEPOINT {SAVEPOINT}"), "SAVEPOINT")
            .await?;
        let what = format!("DELETE FROM {}", self.table.quoted());
        match self.run(&statement, &what).await {
            Ok(()) => Ok(self.conn.affected_rows()),
            Err(StoreError::Refused(refusal)) => {
                self.run(
                    &format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"),
                    "ROLLBACK TO SAVEPOINT",
                )
                .await?;
                Err(StoreError::Refused(refusal))
            }
            Err(other) => Err(other),
        }
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        self.run("COMMIT", "COMMIT").await
    }

    async fn rollback(&mut self) {
        // A failed rollback leaves the transaction to the connection's end,
        // which rolls it back too.
        let _ = self.conn.query_drop("ROLLBACK").await;
    }
}

/// Sorts a server error by what happens next: SQLSTATE classes 22 (data),
/// 23 (integrity: a foreign key refusing) and 45 (a trigger's SIGNAL) belong
/// to rows; 1213 is a deadlock; anything else fails the transaction.
fn classify(error: mysql_async::Error, table: &Identifier, what: &str) -> StoreError {
    if let mysql_async::Error::Server(server) = &error {
        let class = server.state.get(..2).unwrap_or("");
        if server.code == 1213 {
            return StoreError::Deadlock(
                anyhow::Error::new(error).context(format!("{what} failed")),
            );
        }
        if matches!(class, "22" | "23" | "45") {
            return StoreError::Refused(Refusal {
                table: table.as_str().to_owned(),
                reason: refusal_reason(server.code, &server.state, &server.message),
            });
        }
    }
    StoreError::Failed(anyhow::Error::new(error).context(format!("{what} failed")))
}

/// The server's reason, when its message names only tables and columns (a
/// foreign key) or is the schema's own text (a trigger's SIGNAL); otherwise
/// the code alone, because messages such as "Duplicate entry '…'" quote row
/// contents.
fn refusal_reason(code: u16, state: &str, message: &str) -> String {
    match code {
        // ER_ROW_IS_REFERENCED(_2), ER_SIGNAL_EXCEPTION.
        1217 | 1451 | 1644 => format!("{message} (error {code}, SQLSTATE {state})"),
        _ => format!("error {code} (SQLSTATE {state})"),
    }
}

/// `DELETE FROM `t` WHERE `c` IN (1,2,3)`: identifiers validated and quoted,
/// ids written as the column holds them. `None` when no id can match (ids
/// above a signed column's range).
pub fn delete_statement(
    table: &Identifier,
    column: &Identifier,
    kind: IdKind,
    user_ids: &[u64],
) -> Option<String> {
    let mut sql = String::with_capacity(64 + user_ids.len() * 14);
    let _ = write!(
        sql,
        "DELETE FROM {} WHERE {} IN (",
        table.quoted(),
        column.quoted()
    );
    let mut listed = 0;
    for id in user_ids {
        match kind {
            IdKind::Integer { signed: true } if *id > i64::MAX as u64 => continue,
            IdKind::Integer { .. } => write_separated(&mut sql, listed, format_args!("{id}")),
            // Digits only: nothing to escape.
            IdKind::Text => write_separated(&mut sql, listed, format_args!("'{id}'")),
        }
        listed += 1;
    }
    if listed == 0 {
        return None;
    }
    sql.push(')');
    if kind == IdKind::Text {
        // Under a PAD SPACE or accent-blind collation '1' also equals '1 ' or
        // a full-width '１': only plain ASCII digits are the user's id.
        let _ = write!(sql, " AND {} REGEXP '^[0-9]+$'", column.quoted());
    }
    Some(sql)
}

fn write_separated(sql: &mut String, index: usize, value: std::fmt::Arguments<'_>) {
    if index > 0 {
        sql.push(',');
    }
    let _ = sql.write_fmt(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(s: &str) -> Identifier {
        Identifier::parse(s).unwrap()
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

    const UNSIGNED: IdKind = IdKind::Integer { signed: false };
    const SIGNED: IdKind = IdKind::Integer { signed: true };

    #[test]
    fn the_statement_quotes_identifiers_and_lists_ids() {
        let sql = delete_statement(&ident("users"), &ident("id"), UNSIGNED, &[3, 9, u64::MAX]);
        assert_eq!(
            sql.as_deref(),
            Some("DELETE FROM `users` WHERE `id` IN (3,9,18446744073709551615)")
        );
    }

    #[test]
    fn a_signed_column_is_not_asked_for_ids_beyond_its_range() {
        let big = i64::MAX as u64 + 1;
        let sql = delete_statement(&ident("users"), &ident("id"), SIGNED, &[3, big, u64::MAX]);
        assert_eq!(
            sql.as_deref(),
            Some("DELETE FROM `users` WHERE `id` IN (3)")
        );
        let none = delete_statement(&ident("users"), &ident("id"), SIGNED, &[big]);
        assert_eq!(none, None);
        let max = i64::MAX as u64;
        let sql = delete_statement(&ident("users"), &ident("id"), SIGNED, &[max]).unwrap();
        assert!(sql.ends_with("IN (9223372036854775807)"), "{sql}");
    }

    #[test]
    fn a_text_column_gets_exact_string_literals_of_digits_only() {
        let sql = delete_statement(&ident("accounts"), &ident("uid"), IdKind::Text, &[1, 20]);
        assert_eq!(
            sql.as_deref(),
            Some("DELETE FROM `accounts` WHERE `uid` IN ('1','20') AND `uid` REGEXP '^[0-9]+$'")
        );
    }

    #[test]
    fn the_id_column_type_decides_the_kind_or_is_refused() {
        assert_eq!(IdKind::of("bigint", "bigint(20) unsigned"), Ok(UNSIGNED));
        assert_eq!(IdKind::of("INT", "int(11)"), Ok(SIGNED));
        assert_eq!(IdKind::of("varchar", "varchar(20)"), Ok(IdKind::Text));
        assert_eq!(IdKind::of("char", "char(8)"), Ok(IdKind::Text));
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
            let why = IdKind::of(refused, refused).unwrap_err();
            assert!(why.contains(refused), "{why}");
        }
    }

    #[test]
    fn refusal_reasons_never_quote_row_contents() {
        let duplicate = refusal_reason(
            1062,
            "23000",
            "Duplicate entry 'alice@example.com' for key 'email'",
        );
        assert!(!duplicate.contains("alice"), "{duplicate}");
        let hold = refusal_reason(1644, "45000", "legal hold");
        assert_eq!(hold, "legal hold (error 1644, SQLSTATE 45000)");
    }

    #[test]
    fn a_hundred_thousand_ids_make_one_statement_of_modest_size() {
        let ids: Vec<u64> = (1..=100_000).collect();
        let sql = delete_statement(&ident("users"), &ident("id"), UNSIGNED, &ids).unwrap();
        assert_eq!(sql.matches(',').count(), 99_999);
        // Well inside MySQL's smallest default max_allowed_packet (4 MiB).
        assert!(sql.len() < 1 << 20, "{}", sql.len());
    }

    #[test]
    fn urls_are_checked_without_being_echoed() {
        assert!(check_url("mysql://u:pw@localhost:3306/app").is_ok());
        for bad in [
            "mysql://u:s3cret@localhost:3306",
            "http://u:s3cret@h/db",
            "s3cret",
        ] {
            let problem = check_url(bad).unwrap_err();
            assert!(!problem.contains("s3cret"), "{problem}");
        }
        assert_eq!(
            describe("mysql://u:s3cret@db.example:3307/app"),
            "mysql://u@db.example:3307/app"
        );
    }
}
