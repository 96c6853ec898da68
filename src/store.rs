//! The store seam on MySQL / MariaDB (mysql_async): the only module that imports it.
//!
//! One connection; for each round one transaction, and in it, under a
//! savepoint, one statement per entry of the erasure map (`DELETE` or a
//! redacting `UPDATE`) over all the round's users, then the erasure record.
//! Ids are written into the statements as literals of the id column's type,
//! so 100,000 of them need no placeholders (MySQL allows 65,535); texts go as
//! hex literals, so no string from a message or the map is ever parsed as SQL.
//! It also reads the schema (`INFORMATION_SCHEMA`) for the checks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use log::warn;
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::erase::{Refusal, Removal, Store, StoreError};
use crate::map::{Action, Entry, Identifier, Map};
use crate::schema::{Column, ForeignKey, IdKind, Schema};
use crate::secret::Secret;

/// Where the erasure goes, validated.
#[derive(Debug, Clone)]
pub struct Database {
    /// A URL that [`check_url`] accepted; it may hold the password.
    pub url: Secret,
    /// A password read from a file, which replaces the URL's: the URL can
    /// then live in a ConfigMap and the password in a mounted Secret.
    pub password: Option<Secret>,
    /// The tables and what happens to their rows.
    pub map: Map,
    /// The table that records each erasure, if any.
    pub record: Option<Identifier>,
    /// How long the erasure may wait for a row lock held by someone else.
    pub lock_wait_timeout: Duration,
    /// How long one statement may run (MariaDB's `max_statement_time`), so
    /// that a pathological plan cannot outlive the run's deadline.
    pub statement_timeout: Duration,
    /// A CA certificate (PEM) to verify the server with; requires TLS.
    pub ca_file: Option<PathBuf>,
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

/// Opens a connection with the session settings every statement relies on.
async fn open(database: &Database) -> anyhow::Result<Conn> {
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
    let mut opts = OptsBuilder::from_opts(opts).ssl_opts(tls);
    if let Some(password) = &database.password {
        opts = opts.pass(Some(password.expose()));
    }
    let opts = opts
        // A blocked erasure gives up before the run's own deadline: row locks
        // (innodb_lock_wait_timeout) and table locks (lock_wait_timeout).
        .init(vec![format!(
            "SET SESSION innodb_lock_wait_timeout = {lock_wait}, lock_wait_timeout = {lock_wait}"
        )]);
    let mut conn = Conn::new(opts)
        .await
        .with_context(|| format!("cannot connect to {}", describe(database.url.expose())))?;
    let (version, log_bin, binlog_format): (String, Option<u8>, Option<String>) = conn
        .query_first("SELECT VERSION(), @@log_bin, @@binlog_format")
        .await
        .context("cannot read the server's version and binary log settings")?
        .unwrap_or_default();
    for setting in session_settings(
        &version,
        log_bin == Some(1),
        binlog_format.as_deref().unwrap_or(""),
        database.statement_timeout,
    ) {
        if let Some(why) = setting.warning {
            warn!("{why}");
        }
        conn.query_drop(&setting.sql)
            .await
            .with_context(|| format!("cannot set up the session: {}", setting.sql))?;
    }
    Ok(conn)
}

/// One statement that sets up the job's session, and what to warn about.
#[derive(Debug, PartialEq, Eq)]
struct SessionSetting {
    sql: String,
    warning: Option<String>,
}

/// The isolation level and statement timeout for this server (pure: it only
/// reads what the server said of itself).
///
/// READ COMMITTED takes no gap locks on ids that are gone already, so
/// concurrent runs do not block each other. But a server that writes its
/// binary log in STATEMENT format refuses READ COMMITTED writes to InnoDB
/// (error 1665): there the job keeps REPEATABLE READ and says so.
/// MariaDB's `max_statement_time` covers DELETE and UPDATE; MySQL's
/// `max_execution_time` covers only SELECT, so on MySQL the lock wait timeout
/// and the run's own deadline are the bounds.
fn session_settings(
    version: &str,
    log_bin: bool,
    binlog_format: &str,
    statement_timeout: Duration,
) -> Vec<SessionSetting> {
    let mut settings = Vec::new();
    if log_bin && binlog_format.eq_ignore_ascii_case("STATEMENT") {
        settings.push(SessionSetting {
            sql: "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ".to_owned(),
            warning: Some(
                "the server logs statements (binlog_format=STATEMENT), which refuses READ COMMITTED \
                 writes: erasing under REPEATABLE READ, whose gap locks can make concurrent runs \
                 wait; set binlog_format=ROW or MIXED on the server to avoid them"
                    .to_owned(),
            ),
        });
    } else {
        settings.push(SessionSetting {
            sql: "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_owned(),
            warning: None,
        });
    }
    if version.contains("MariaDB") {
        settings.push(SessionSetting {
            sql: format!(
                "SET SESSION max_statement_time = {}",
                statement_timeout.as_secs_f64()
            ),
            warning: None,
        });
    }
    settings
}

/// Reads what `INFORMATION_SCHEMA` says of the connection's database:
/// columns, foreign keys and indexes.
async fn read_schema(conn: &mut Conn) -> anyhow::Result<Schema> {
    let columns: Vec<(String, String, String, String, String)> = conn
        .query(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE \
             FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = DATABASE()",
        )
        .await
        .context("cannot read the columns from INFORMATION_SCHEMA")?;
    let foreign_keys: Vec<(String, String, String, String, String)> = conn
        .query(
            "SELECT k.TABLE_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, \
             r.DELETE_RULE \
             FROM INFORMATION_SCHEMA.KEY_COLUMN_USAGE k \
             JOIN INFORMATION_SCHEMA.REFERENTIAL_CONSTRAINTS r \
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
              AND r.TABLE_NAME = k.TABLE_NAME \
             WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_SCHEMA = DATABASE()",
        )
        .await
        .context("cannot read the foreign keys from INFORMATION_SCHEMA")?;
    let indexed: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND SEQ_IN_INDEX = 1",
        )
        .await
        .context("cannot read the indexes from INFORMATION_SCHEMA")?;
    Ok(Schema {
        columns: columns
            .into_iter()
            .map(|(table, column, data_type, column_type, nullable)| {
                let column_info = Column {
                    data_type,
                    column_type,
                    nullable: nullable.eq_ignore_ascii_case("YES"),
                };
                ((table, column), column_info)
            })
            .collect::<BTreeMap<_, _>>(),
        foreign_keys: foreign_keys
            .into_iter()
            .map(
                |(child, column, parent, parent_column, on_delete)| ForeignKey {
                    child,
                    column,
                    parent,
                    parent_column,
                    on_delete,
                },
            )
            .collect(),
        indexed: indexed.into_iter().collect(),
    })
}

/// Why the check could not read the schema.
#[derive(Debug)]
pub enum SchemaError {
    /// The `--user-columns` pattern is not a REGEXP the server accepts.
    BadPattern(String),
    /// The database cannot be reached or read.
    Unreadable(anyhow::Error),
}

/// Connects and reads the schema, for `user-purge check`, and the columns
/// whose names match `user_columns` (a MySQL REGEXP, evaluated by the server
/// so that it means what MySQL means). Read-only.
pub async fn schema(
    database: &Database,
    user_columns: Option<&str>,
) -> Result<(Schema, BTreeSet<(String, String)>), SchemaError> {
    let mut conn = open(database).await.map_err(SchemaError::Unreadable)?;
    let schema = read_schema(&mut conn)
        .await
        .map_err(SchemaError::Unreadable)?;
    let named = match user_columns {
        None => BTreeSet::new(),
        Some(pattern) => conn
            .exec(
                "SELECT TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME REGEXP ?",
                (pattern,),
            )
            .await
            .map(|rows: Vec<(String, String)>| rows.into_iter().collect())
            .map_err(|error| match &error {
                // ER_REGEXP_ERROR
                mysql_async::Error::Server(server) if server.code == 1139 => {
                    SchemaError::BadPattern(server.message.clone())
                }
                _ => SchemaError::Unreadable(
                    anyhow::Error::new(error).context("cannot match --user-columns"),
                ),
            })?,
    };
    let _ = conn.disconnect().await;
    Ok((schema, named))
}

/// The database a URL names (checked by [`check_url`]).
pub fn database_name(url: &str) -> String {
    Opts::from_url(url)
        .ok()
        .and_then(|opts| opts.db_name().map(str::to_owned))
        .unwrap_or_default()
}

/// A connection ready to erase with the map.
pub struct MySql {
    conn: Conn,
    /// Each entry of the map, with how its id column holds ids.
    entries: Vec<(Entry, IdKind)>,
    /// The entries' tables, for the summary.
    tables: Vec<String>,
    /// The erasure record, with how its user_id column holds ids.
    record: Option<(Identifier, IdKind)>,
    /// The server's limit on one statement's size, read at connect so that an
    /// oversized statement fails with a clear message instead of a dropped connection.
    max_allowed_packet: usize,
}

impl MySql {
    /// Connects, then checks the map and the record against the schema, so
    /// that a wrong setting fails here, before any message is received.
    pub async fn connect(database: &Database) -> anyhow::Result<MySql> {
        let mut conn = open(database).await?;
        let max_allowed_packet: Option<u64> = conn
            .query_first("SELECT @@max_allowed_packet")
            .await
            .context("cannot read max_allowed_packet")?;
        let schema = read_schema(&mut conn).await?;
        let checked = schema
            .check(&database.map, database.record.as_ref())
            .map_err(|problem| anyhow::anyhow!("{problem}; nothing was received"))?;
        let record = database.record.clone().zip(checked.record);
        if let Some((table, _)) = &record {
            // Privileges and a read-only server are checked when a statement
            // starts, even one that writes no row.
            conn.query_drop(format!(
                "INSERT INTO {t} (`user_id`, `erased_at`, `message_id`) \
                 SELECT `user_id`, `erased_at`, `message_id` FROM {t} WHERE FALSE",
                t = table.quoted()
            ))
            .await
            .with_context(|| {
                format!(
                    "the erasure record {} is not writable; nothing was received",
                    table.quoted()
                )
            })?;
        }
        Ok(MySql {
            conn,
            tables: database
                .map
                .entries()
                .iter()
                .map(|entry| entry.table.as_str().to_owned())
                .collect(),
            entries: database
                .map
                .entries()
                .iter()
                .cloned()
                .zip(checked.entries)
                .collect(),
            record,
            max_allowed_packet: max_allowed_packet
                .unwrap_or(u64::MAX)
                .try_into()
                .unwrap_or(usize::MAX),
        })
    }

    async fn run(&mut self, statement: &str, table: &str, what: &str) -> Result<(), StoreError> {
        if statement.len() >= self.max_allowed_packet {
            return Err(StoreError::Failed(anyhow::anyhow!(
                "{what} is {} bytes, above the server's max_allowed_packet ({}); \
                 lower --batch-size or raise max_allowed_packet",
                statement.len(),
                self.max_allowed_packet
            )));
        }
        self.conn
            .query_drop(statement)
            .await
            .map_err(|error| classify(error, table, what))
    }

    /// The statements of one erasure, in order, each with its table; `None`
    /// for an entry where no id can match.
    fn statements(&self, removals: &[Removal]) -> Vec<(Option<String>, String)> {
        let user_ids: Vec<u64> = removals.iter().map(|r| r.user_id).collect();
        let mut statements: Vec<(Option<String>, String)> = self
            .entries
            .iter()
            .map(|(entry, kind)| {
                (
                    entry_statement(entry, *kind, &user_ids),
                    entry.table.as_str().to_owned(),
                )
            })
            .collect();
        if let Some((table, kind)) = &self.record {
            statements.push((
                record_statement(table, *kind, removals),
                table.as_str().to_owned(),
            ));
        }
        statements
    }
}

/// The SAVEPOINT each erase runs under.
const SAVEPOINT: &str = "user_purge_erase";

impl Store for MySql {
    fn tables(&self) -> &[String] {
        &self.tables
    }

    async fn begin(&mut self) -> Result<(), StoreError> {
        self.run("START TRANSACTION", "", "START TRANSACTION").await
    }

    /// Runs every statement of the map, then the record, under a savepoint.
    /// Returns the rows each map entry affected; rows in tables that reference
    /// them go through their foreign keys.
    async fn erase(&mut self, removals: &[Removal]) -> Result<Vec<u64>, StoreError> {
        let statements = self.statements(removals);
        let entries = self.entries.len();
        self.run(&format!("SAVEPOINT {SAVEPOINT}"), "", "SAVEPOINT")
            .await?;
        let mut rows = Vec::with_capacity(entries);
        for (i, (statement, table)) in statements.into_iter().enumerate() {
            let Some(statement) = statement else {
                rows.push(0);
                continue;
            };
            let what = if i < entries {
                format!("entry {} on {table}", i + 1)
            } else {
                format!("the erasure record {table}")
            };
            match self.run(&statement, &table, &what).await {
                Ok(()) if i < entries => rows.push(self.conn.affected_rows()),
                Ok(()) => {}
                Err(StoreError::Refused(refusal)) => {
                    self.run(
                        &format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"),
                        "",
                        "ROLLBACK TO SAVEPOINT",
                    )
                    .await?;
                    return Err(StoreError::Refused(refusal));
                }
                Err(other) => return Err(other),
            }
        }
        Ok(rows)
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        self.run("COMMIT", "", "COMMIT").await
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
fn classify(error: mysql_async::Error, table: &str, what: &str) -> StoreError {
    if let mysql_async::Error::Server(server) = &error {
        let class = server.state.get(..2).unwrap_or("");
        if server.code == 1213 {
            return StoreError::Deadlock(
                anyhow::Error::new(error).context(format!("{what} failed")),
            );
        }
        if matches!(class, "22" | "23" | "45") {
            return StoreError::Refused(Refusal {
                table: table.to_owned(),
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

/// `WHERE `c` IN (1,2,3)`, the ids written as the column holds them; `None`
/// when no id can match (ids above a signed column's range).
fn where_in(column: &Identifier, kind: IdKind, user_ids: &[u64]) -> Option<String> {
    let mut sql = String::with_capacity(32 + user_ids.len() * 14);
    let _ = write!(sql, " WHERE {} IN (", column.quoted());
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
    if kind == IdKind::Text {
        // Under a PAD SPACE or accent-blind collation '1' also equals '1 ' or
        // a full-width '１': only plain ASCII digits are the user's id.
        let _ = write!(sql, " AND {} REGEXP '^[0-9]+$'", column.quoted());
    }
    Some(sql)
}

/// Writes one id as a literal of the column's kind, after a comma unless it
/// is the first; false (nothing written) when the column cannot hold it.
fn id_literal(sql: &mut String, index: usize, kind: IdKind, id: u64) -> bool {
    if kind == (IdKind::Integer { signed: true }) && id > i64::MAX as u64 {
        return false;
    }
    if index > 0 {
        sql.push(',');
    }
    // Digits only: nothing to escape.
    let _ = match kind {
        IdKind::Integer { .. } => write!(sql, "{id}"),
        IdKind::Text => write!(sql, "'{id}'"),
    };
    true
}

/// A text as a hex literal in utf8mb4: whatever it holds (quotes,
/// backslashes, `;`), no character of it is parsed as SQL, whatever the
/// server's `sql_mode`.
fn text_literal(text: &str) -> String {
    let mut literal = String::with_capacity(12 + text.len() * 2);
    literal.push_str("_utf8mb4 X'");
    for byte in text.as_bytes() {
        let _ = write!(literal, "{byte:02X}");
    }
    literal.push('\'');
    literal
}

/// One map entry's statement over the users: `DELETE FROM t WHERE c IN (..)`
/// or `UPDATE t SET a = NULL, b = '..' WHERE c IN (..)`.
pub fn entry_statement(entry: &Entry, kind: IdKind, user_ids: &[u64]) -> Option<String> {
    let condition = where_in(&entry.column, kind, user_ids)?;
    Some(match &entry.action {
        Action::Delete => format!("DELETE FROM {}{condition}", entry.table.quoted()),
        Action::Redact { null, replace } => {
            let sets: Vec<String> =
                null.iter()
                    .map(|column| format!("{} = NULL", column.quoted()))
                    .chain(replace.iter().map(|(column, text)| {
                        format!("{} = {}", column.quoted(), text_literal(text))
                    }))
                    .collect();
            format!(
                "UPDATE {} SET {}{condition}",
                entry.table.quoted(),
                sets.join(", ")
            )
        }
    })
}

/// The erasure record's rows: one per user, the first erasure kept
/// (`INSERT IGNORE` leaves an existing row as it is, and needs no `UPDATE`
/// privilege; a concurrent run recording the same user is no error).
pub fn record_statement(table: &Identifier, kind: IdKind, removals: &[Removal]) -> Option<String> {
    let mut sql = format!(
        "INSERT IGNORE INTO {} (`user_id`, `erased_at`, `message_id`) VALUES ",
        table.quoted()
    );
    let mut listed = 0;
    for removal in removals {
        let mut id = String::new();
        if !id_literal(&mut id, 0, kind, removal.user_id) {
            continue;
        }
        if listed > 0 {
            sql.push(',');
        }
        let _ = write!(
            sql,
            "({id}, UTC_TIMESTAMP(3), {})",
            text_literal(&removal.message_id)
        );
        listed += 1;
    }
    if listed == 0 {
        return None;
    }
    Some(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(s: &str) -> Identifier {
        Identifier::parse(s).unwrap()
    }

    fn delete(table: &str, column: &str) -> Entry {
        Map::single(ident(table), ident(column)).entries()[0].clone()
    }

    const UNSIGNED: IdKind = IdKind::Integer { signed: false };
    const SIGNED: IdKind = IdKind::Integer { signed: true };

    #[test]
    fn the_statement_quotes_identifiers_and_lists_ids() {
        let sql = entry_statement(&delete("users", "id"), UNSIGNED, &[3, 9, u64::MAX]);
        assert_eq!(
            sql.as_deref(),
            Some("DELETE FROM `users` WHERE `id` IN (3,9,18446744073709551615)")
        );
    }

    #[test]
    fn a_signed_column_is_not_asked_for_ids_beyond_its_range() {
        let big = i64::MAX as u64 + 1;
        let users = delete("users", "id");
        let sql = entry_statement(&users, SIGNED, &[3, big, u64::MAX]);
        assert_eq!(
            sql.as_deref(),
            Some("DELETE FROM `users` WHERE `id` IN (3)")
        );
        assert_eq!(entry_statement(&users, SIGNED, &[big]), None);
        let max = i64::MAX as u64;
        let sql = entry_statement(&users, SIGNED, &[max]).unwrap();
        assert!(sql.ends_with("IN (9223372036854775807)"), "{sql}");
    }

    #[test]
    fn a_text_column_gets_exact_string_literals_of_digits_only() {
        let sql = entry_statement(&delete("accounts", "uid"), IdKind::Text, &[1, 20]);
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
        let sql = entry_statement(&map.entries()[0], UNSIGNED, &[7]).unwrap();
        assert_eq!(
            sql,
            "UPDATE `invoices` SET `email` = NULL, `name` = _utf8mb4 X'4F27427269656E205C203B' \
             WHERE `customer_id` IN (7)"
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
        let sql = record_statement(&ident("erased"), SIGNED, &removals).unwrap();
        assert_eq!(
            sql,
            "INSERT IGNORE INTO `erased` (`user_id`, `erased_at`, `message_id`) VALUES \
             (4, UTC_TIMESTAMP(3), _utf8mb4 X'3137')"
        );
        let sql = record_statement(&ident("erased"), IdKind::Text, &removals).unwrap();
        assert!(
            sql.contains("('18446744073709551615', UTC_TIMESTAMP(3), _utf8mb4 X'782779')"),
            "{sql}"
        );
    }

    #[test]
    fn the_session_fits_the_server() {
        let minute = Duration::from_secs(60);
        let plain = session_settings("10.11.6-MariaDB-0+deb12u1", true, "MIXED", minute);
        assert_eq!(
            plain.iter().map(|s| s.sql.as_str()).collect::<Vec<_>>(),
            [
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                "SET SESSION max_statement_time = 60"
            ]
        );
        assert!(plain.iter().all(|s| s.warning.is_none()));
        let statement = session_settings("10.11.6-MariaDB", true, "STATEMENT", minute);
        assert_eq!(
            statement[0].sql,
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"
        );
        assert!(
            statement[0]
                .warning
                .as_ref()
                .unwrap()
                .contains("binlog_format=ROW")
        );
        // No binary log: STATEMENT is not in force.
        let unlogged = session_settings("10.11.6-MariaDB", false, "STATEMENT", minute);
        assert!(unlogged[0].sql.ends_with("READ COMMITTED"));
        // MySQL has no statement timeout for DELETE or UPDATE.
        let mysql = session_settings("8.0.36", true, "ROW", minute);
        assert_eq!(mysql.len(), 1);
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
        let sql = entry_statement(&delete("users", "id"), UNSIGNED, &ids).unwrap();
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
