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
use mysql_async::{Conn, IsolationLevel, Opts, OptsBuilder, TxOpts};

use crate::pass::Store;
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

/// A connection ready to delete from the configured table.
pub struct MySql {
    conn: Conn,
    table: Identifier,
    id_column: Identifier,
    /// The server's limit on one statement's size, read at connect so that an
    /// oversized delete fails with a clear message instead of a dropped connection.
    max_allowed_packet: usize,
}

impl MySql {
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
            // A blocked delete gives up before the run's own deadline: row locks
            // (innodb_lock_wait_timeout) and table locks (lock_wait_timeout).
            .init(vec![format!(
                "SET SESSION innodb_lock_wait_timeout = {lock_wait}, lock_wait_timeout = {lock_wait}"
            )]);
        let mut conn = Conn::new(opts)
            .await
            .with_context(|| format!("cannot connect to {}", describe(database.url.expose())))?;
        let max_allowed_packet: Option<u64> = conn
            .query_first("SELECT @@max_allowed_packet")
            .await
            .context("cannot read max_allowed_packet")?;
        Ok(MySql {
            conn,
            table: database.table.clone(),
            id_column: database.id_column.clone(),
            max_allowed_packet: max_allowed_packet
                .unwrap_or(u64::MAX)
                .try_into()
                .unwrap_or(usize::MAX),
        })
    }
}

impl Store for MySql {
    /// Deletes the given users in one statement and one transaction, and
    /// commits. Returns the number of rows deleted from the table itself; rows
    /// in tables that reference it go through their foreign keys.
    async fn delete(&mut self, user_ids: &[u64]) -> anyhow::Result<u64> {
        if user_ids.is_empty() {
            return Ok(0);
        }
        let statement = delete_statement(&self.table, &self.id_column, user_ids);
        if statement.len() >= self.max_allowed_packet {
            bail!(
                "the DELETE for {} ids is {} bytes, above the server's max_allowed_packet ({}); \
                 lower --max-messages or raise max_allowed_packet",
                user_ids.len(),
                statement.len(),
                self.max_allowed_packet
            );
        }
        let mut tx = self
            .conn
            // READ COMMITTED: no gap locks on ids that are gone already, so
            // concurrent runs do not block each other.
            .start_transaction(
                TxOpts::default()
                    .with_isolation_level(IsolationLevel::ReadCommitted)
                    .clone(),
            )
            .await
            .context("cannot start a transaction")?;
        tx.query_drop(statement)
            .await
            .with_context(|| format!("DELETE FROM {} failed", self.table.quoted()))?;
        let deleted = tx.affected_rows();
        tx.commit().await.context("COMMIT failed")?;
        Ok(deleted)
    }
}

/// `DELETE FROM `t` WHERE `c` IN (1,2,3)`: identifiers validated and quoted,
/// ids as integer literals.
pub fn delete_statement(table: &Identifier, column: &Identifier, user_ids: &[u64]) -> String {
    let mut sql = String::with_capacity(64 + user_ids.len() * 12);
    let _ = write!(
        sql,
        "DELETE FROM {} WHERE {} IN (",
        table.quoted(),
        column.quoted()
    );
    for (i, id) in user_ids.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        let _ = write!(sql, "{id}");
    }
    sql.push(')');
    sql
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

    #[test]
    fn the_statement_quotes_identifiers_and_lists_ids() {
        let sql = delete_statement(&ident("users"), &ident("id"), &[3, 9, u64::MAX]);
        assert_eq!(
            sql,
            "DELETE FROM `users` WHERE `id` IN (3,9,18446744073709551615)"
        );
    }

    #[test]
    fn a_hundred_thousand_ids_make_one_statement_of_modest_size() {
        let ids: Vec<u64> = (1..=100_000).collect();
        let sql = delete_statement(&ident("users"), &ident("id"), &ids);
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
