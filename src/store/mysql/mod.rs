//! The [`Session`] on MySQL / MariaDB (mysql_async): the only module that
//! imports it. It connects with the job's session settings, reads the schema
//! (`INFORMATION_SCHEMA`) for the checks, sorts the server's errors, asks the
//! replicas their lag, and knows the `mysql://` URL; what it runs comes from
//! the [engine](crate::store::engine).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context as _;
use log::warn;
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::config::Database;
use crate::store::engine::{Lag, Session};
use crate::store::schema::{Column, ForeignKey, Schema, SchemaError};
use crate::store::sql::{self, Dialect};
use crate::store::{Refusal, StoreError};

mod connection;
pub mod replica;

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
        Ok(opts) => connection::describe(&opts),
        Err(_) => "an invalid URL".to_owned(),
    }
}

/// Opens a connection with the session settings every statement relies on.
async fn open(database: &Database) -> anyhow::Result<Conn> {
    let opts = Opts::from_url(database.url.expose()).context("invalid database URL")?;
    let lock_wait = database.lock_wait_timeout.as_secs();
    let tls = connection::ssl_opts(&opts, database.ca_file.as_ref());
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

/// Adds strict mode to the session's modes; `NULLIF` because a server
/// without any mode has `''`, and MySQL and MariaDB refuse an empty name in
/// the list.
const STRICT_SQL_MODE: &str =
    "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')";

/// One statement that sets up the job's session, and what to warn about.
#[derive(Debug, PartialEq, Eq)]
struct SessionSetting {
    sql: String,
    warning: Option<String>,
}

/// The isolation level, the SQL mode and the statement timeout for this
/// server (pure: it only reads what the server said of itself).
///
/// The session is strict (`STRICT_ALL_TABLES`, added to the server's own
/// modes, which stay): a value a column cannot hold is an error, never a
/// truncated or clamped value and a warning, whatever the server's
/// `sql_mode` (many older installations run without a strict mode).
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
    settings.push(SessionSetting {
        sql: STRICT_SQL_MODE.to_owned(),
        warning: None,
    });
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
    type Row = (
        String,
        String,
        String,
        String,
        String,
        Option<u64>,
        Option<u64>,
        Option<String>,
        Option<String>,
    );
    let columns: Vec<Row> = conn
        .query(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, \
             CHARACTER_MAXIMUM_LENGTH, CHARACTER_OCTET_LENGTH, CHARACTER_SET_NAME, COLLATION_NAME \
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
    // Each index's first column, and whether it is unique and has no other.
    let indexes: Vec<(String, String, String, u8, u64)> = conn
        .query(
            "SELECT TABLE_NAME, INDEX_NAME, MIN(IF(SEQ_IN_INDEX = 1, COLUMN_NAME, NULL)), \
             MIN(NON_UNIQUE), COUNT(*) \
             FROM INFORMATION_SCHEMA.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
             GROUP BY TABLE_NAME, INDEX_NAME",
        )
        .await
        .context("cannot read the indexes from INFORMATION_SCHEMA")?;
    Ok(Schema {
        columns: columns
            .into_iter()
            .map(
                |(
                    table,
                    column,
                    data_type,
                    column_type,
                    nullable,
                    max_chars,
                    max_bytes,
                    charset,
                    collation,
                )| {
                    let column_info = Column {
                        data_type,
                        column_type,
                        nullable: nullable.eq_ignore_ascii_case("YES"),
                        max_chars,
                        max_bytes,
                        charset,
                        collation,
                    };
                    ((table, column), column_info)
                },
            )
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
        unique: indexes
            .iter()
            .filter(|(_, _, _, non_unique, columns)| *non_unique == 0 && *columns == 1)
            .map(|(table, _, column, _, _)| (table.clone(), column.clone()))
            .collect(),
        primary: indexes
            .iter()
            .filter(|(_, name, _, _, columns)| name == "PRIMARY" && *columns == 1)
            .map(|(table, _, column, _, _)| (table.clone(), column.clone()))
            .collect(),
        lone_indexes: indexes
            .iter()
            .filter(|(_, name, _, _, columns)| name != "PRIMARY" && *columns == 1)
            .map(|(table, name, column, _, _)| ((table.clone(), column.clone()), name.clone()))
            .collect(),
        indexed: indexes
            .into_iter()
            .map(|(table, _, column, _, _)| (table, column))
            .collect(),
    })
}

/// Connects and reads the schema, for `user-purge check`: the schema, the
/// columns whose names match each pattern (a MySQL REGEXP, evaluated by the
/// server so that it means what MySQL means), and, when the account may not
/// see every table, why. Read-only.
pub async fn schema(
    database: &Database,
    patterns: [(&'static str, Option<&str>); 2],
) -> Result<(Schema, [BTreeSet<(String, String)>; 2], Option<String>), SchemaError> {
    let mut conn = open(database).await.map_err(SchemaError::Unreadable)?;
    let schema = read_schema(&mut conn)
        .await
        .map_err(SchemaError::Unreadable)?;
    let mut named = [BTreeSet::new(), BTreeSet::new()];
    for ((setting, pattern), named) in patterns.into_iter().zip(&mut named) {
        let Some(pattern) = pattern else { continue };
        *named = conn
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
                    SchemaError::BadPattern(setting, server.message.clone())
                }
                _ => SchemaError::Unreadable(
                    anyhow::Error::new(error).context(format!("cannot match {setting}")),
                ),
            })?;
    }
    let grants: Vec<String> = conn
        .query("SHOW GRANTS")
        .await
        .context("cannot read the check's own grants (SHOW GRANTS)")
        .map_err(SchemaError::Unreadable)?;
    let name = database_name(database.url.expose());
    let hidden = (!sees_whole_schema(&grants, &name)).then(|| {
        format!(
            "SHOW GRANTS gives the check's account no SELECT on {}.* (nor on *.*): tables it \
             cannot see were not checked, and MySQL does not say how many; run the check as an \
             account that may read the whole schema",
            sql::quote(&name)
        )
    });
    let _ = conn.disconnect().await;
    Ok((schema, named, hidden))
}

/// Whether one of these `SHOW GRANTS` lines gives `SELECT` (or all
/// privileges) on every table of `database`: on `*.*`, or on the database
/// (or a pattern that matches it) with `.*`. Roles are not followed: a role's
/// grant reads as not seeing.
fn sees_whole_schema(grants: &[String], database: &str) -> bool {
    grants.iter().any(|grant| {
        let Some(rest) = grant.strip_prefix("GRANT ") else {
            return false;
        };
        let Some((privileges, rest)) = rest.split_once(" ON ") else {
            return false;
        };
        let Some((target, _)) = rest.split_once(" TO ") else {
            return false;
        };
        let reads = privileges.contains("ALL PRIVILEGES")
            || privileges
                .split(',')
                .any(|p| p.trim().split(' ').next() == Some("SELECT"));
        let on_schema = match target.trim().strip_suffix(".*") {
            Some("*") => true,
            Some(db) => like(db.trim_matches('`').trim_matches('\''), database),
            None => false,
        };
        reads && on_schema
    })
}

/// MySQL's `LIKE` on a database name in a grant: `%` any run, `_` one
/// character, a backslash escapes.
fn like(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('%', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('_', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                n.first() == Some(&rest[0]) && go(&rest[1..], &n[1..])
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// The database a URL names (checked by [`check_url`]).
pub fn database_name(url: &str) -> String {
    Opts::from_url(url)
        .ok()
        .and_then(|opts| opts.db_name().map(str::to_owned))
        .unwrap_or_default()
}

/// The connection to a MySQL or MariaDB primary, and to its replicas.
pub struct MySql {
    conn: Conn,
    /// The server's limit on one statement's size, read at connect so that an
    /// oversized statement fails with a clear message instead of a dropped connection.
    max_allowed_packet: usize,
    replicas: replica::Replicas,
}

impl Session for MySql {
    const DIALECT: Dialect = Dialect::MySql;

    async fn open(database: &Database) -> anyhow::Result<(MySql, Schema)> {
        let mut conn = open(database).await?;
        let max_allowed_packet: Option<u64> = conn
            .query_first("SELECT @@max_allowed_packet")
            .await
            .context("cannot read max_allowed_packet")?;
        let schema = read_schema(&mut conn).await?;
        let replicas = replica::Replicas::connect(database)
            .await
            .map_err(|error| error.context("nothing was received"))?;
        let max_allowed_packet = max_allowed_packet
            .unwrap_or(u64::MAX)
            .try_into()
            .unwrap_or(usize::MAX);
        let session = MySql {
            conn,
            max_allowed_packet,
            replicas,
        };
        Ok((session, schema))
    }

    async fn execute(
        &mut self,
        statement: &str,
        table: &str,
        what: &str,
    ) -> Result<u64, StoreError> {
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
            .map_err(|error| classify(error, table, what))?;
        Ok(self.conn.affected_rows())
    }

    async fn select(
        &mut self,
        select: &str,
        table: &str,
        what: &str,
    ) -> Result<Vec<Vec<Vec<u8>>>, StoreError> {
        let rows: Vec<mysql_async::Row> = self
            .conn
            .query(select)
            .await
            .map_err(|error| classify(error, table, what))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                row.unwrap()
                    .into_iter()
                    .map(|value| match value {
                        mysql_async::Value::Bytes(bytes) => bytes,
                        mysql_async::Value::NULL => Vec::new(),
                        other => other.as_sql(true).into_bytes(),
                    })
                    .collect()
            })
            .collect())
    }

    /// `INSERT IGNORE` turns what strict mode refuses (an id out of the
    /// column's range, a text too long) into warnings. Duplicates (the user
    /// is recorded already) are the only warnings it may give.
    async fn record(
        &mut self,
        statement: &str,
        listed: u64,
        table: &str,
        what: &str,
    ) -> Result<u64, StoreError> {
        let written = self.execute(statement, table, what).await?;
        let duplicates = listed.saturating_sub(written);
        if u64::from(self.conn.get_warnings()) > duplicates {
            let warnings: Vec<(String, u16, String)> = self
                .conn
                .query("SHOW WARNINGS")
                .await
                .map_err(|error| classify(error, table, "SHOW WARNINGS"))?;
            let changed = warnings
                .into_iter()
                .find(|(_, code, _)| *code != ER_DUP_ENTRY)
                .map_or_else(
                    || "a warning the server did not list".to_owned(),
                    |(level, code, message)| format!("{level} {code}: {message}"),
                );
            return Err(StoreError::Failed(anyhow::anyhow!(
                "{what} would not hold what was written ({changed}); the round was rolled back"
            )));
        }
        Ok(written)
    }

    async fn ping(&mut self) -> anyhow::Result<()> {
        Ok(self.conn.ping().await?)
    }

    fn has_replicas(&self) -> bool {
        !self.replicas.is_empty()
    }

    async fn lags(&mut self) -> anyhow::Result<Vec<Lag>> {
        self.replicas.lags().await
    }
}

/// ER_DUP_ENTRY: the one warning `INSERT IGNORE` into the record may give.
const ER_DUP_ENTRY: u16 = 1062;

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
        // ER_STATEMENT_TIMEOUT: MariaDB's max_statement_time.
        if server.code == 1969 {
            return StoreError::TimedOut(Refusal {
                table: table.to_owned(),
                reason: format!("{what} ran past --statement-timeout (error 1969)"),
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_fits_the_server() {
        let minute = Duration::from_secs(60);
        let plain = session_settings("10.11.6-MariaDB-0+deb12u1", true, "MIXED", minute);
        assert_eq!(
            plain.iter().map(|s| s.sql.as_str()).collect::<Vec<_>>(),
            [
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), \
                 'STRICT_ALL_TABLES')",
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
        // MySQL has no statement timeout for DELETE or UPDATE; it is strict too.
        let mysql = session_settings("8.0.36", true, "ROW", minute);
        assert_eq!(
            mysql.iter().map(|s| s.sql.as_str()).collect::<Vec<_>>(),
            [
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                STRICT_SQL_MODE
            ]
        );
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
    fn the_grants_say_whether_the_whole_schema_is_visible() {
        let sees = |grants: &[&str]| {
            let grants: Vec<String> = grants.iter().map(|g| g.to_string()).collect();
            sees_whole_schema(&grants, "app_1")
        };
        assert!(sees(&[
            "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"
        ]));
        assert!(sees(&[
            "GRANT USAGE ON *.* TO `c`@`%`",
            "GRANT SELECT ON `app_1`.* TO `c`@`%`"
        ]));
        assert!(sees(&["GRANT SELECT, SHOW VIEW ON `app\\_%`.* TO `c`@`%`"]));
        assert!(sees(&["GRANT SELECT ON *.* TO 'c'@'%'"]));
        // Some tables only, another database, no SELECT, a role: not seen.
        assert!(!sees(&[
            "GRANT USAGE ON *.* TO `u`@`%`",
            "GRANT SELECT, DELETE ON `app_1`.`users` TO `u`@`%`"
        ]));
        assert!(!sees(&["GRANT SELECT ON `other`.* TO `c`@`%`"]));
        assert!(!sees(&["GRANT INSERT, UPDATE ON `app_1`.* TO `c`@`%`"]));
        assert!(!sees(&["GRANT `reader` TO `c`@`%`"]));
        assert!(!sees(&["GRANT SELECT ON `app\\_2`.* TO `c`@`%`"]));
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
