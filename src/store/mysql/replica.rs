//! The replicas whose lag the erasure waits for (`--replica-url`): their
//! connections, and the lag each reports.
//!
//! The lag is what the replica says of itself (`SHOW REPLICA STATUS`, or
//! `SHOW SLAVE STATUS` on servers older than the new name): how far its SQL
//! thread is behind the primary's binary log. A replica whose IO or SQL
//! thread stopped applies nothing, so its lag counts as unknown, never as 0.

use anyhow::Context as _;
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};

use crate::config::Database;
use crate::store::engine::Lag;

/// One replica's connection.
struct Replica {
    /// Its URL without the password, for every message about it.
    name: String,
    conn: Conn,
    /// The status statement this server understands, chosen by its version.
    status: &'static str,
}

/// The connections to the replicas; empty without `--replica-url`.
pub struct Replicas {
    /// In the order of `--replica-url`, which is the order of [`Replicas::lags`].
    replicas: Vec<Replica>,
}

impl Replicas {
    /// Connects to every replica of `database`, and reads each one's version
    /// to know which status statement it takes. An unreachable replica is an
    /// error that names it.
    pub async fn connect(database: &Database) -> anyhow::Result<Replicas> {
        let mut replicas = Vec::with_capacity(database.replicas.len());
        for url in &database.replicas {
            // Checked at load (`check_url`): it parses.
            let opts = replica_opts(database, url.expose())
                .context("a --replica-url is not a valid URL")?;
            let name = super::connection::describe(&opts);
            let mut conn = Conn::new(opts)
                .await
                .with_context(|| format!("cannot reach replica {name}"))?;
            let version: Option<String> = conn
                .query_first("SELECT VERSION()")
                .await
                .with_context(|| format!("cannot read the version of replica {name}"))?;
            replicas.push(Replica {
                status: status_statement(version.as_deref().unwrap_or("")),
                name,
                conn,
            });
        }
        Ok(Replicas { replicas })
    }

    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// Each replica's lag now, in the order of `--replica-url`. A replica
    /// that is no replica (its status is empty), or whose connection is lost,
    /// is an error that names it.
    pub async fn lags(&mut self) -> anyhow::Result<Vec<Lag>> {
        let mut lags = Vec::with_capacity(self.replicas.len());
        for replica in &mut self.replicas {
            let rows: Vec<Row> = replica.conn.query(replica.status).await.map_err(|error| {
                let what = match &error {
                    // The server went away, or the network between.
                    mysql_async::Error::Io(_) => "lost the connection to",
                    _ => "cannot read the lag of",
                };
                anyhow::Error::new(error).context(format!(
                    "{what} replica {} ({})",
                    replica.name, replica.status
                ))
            })?;
            let columns: Vec<Vec<(String, Option<String>)>> = rows.iter().map(named).collect();
            let seconds = worst_lag(&columns).map_err(|problem| {
                anyhow::anyhow!("replica {}: {} {problem}", replica.name, replica.status)
            })?;
            lags.push(Lag {
                replica: replica.name.clone(),
                seconds,
            });
        }
        Ok(lags)
    }
}

/// How to connect to a replica: its URL, with the primary's password when it
/// has none (the primary's password file, else the primary URL's), and TLS as
/// for the primary (`super::open`): the CA file, if any, verifies it too.
fn replica_opts(database: &Database, url: &str) -> anyhow::Result<Opts> {
    let opts = Opts::from_url(url)?;
    let tls = super::connection::ssl_opts(&opts, database.ca_file.as_ref());
    let password = match opts.pass() {
        Some(own) => Some(own.to_owned()),
        None => match &database.password {
            Some(file) => Some(file.expose().to_owned()),
            None => Opts::from_url(database.url.expose())?
                .pass()
                .map(str::to_owned),
        },
    };
    Ok(OptsBuilder::from_opts(opts)
        .ssl_opts(tls)
        .pass(password)
        .into())
}

/// `SHOW REPLICA STATUS` where the server knows it (MariaDB 10.5.1, MySQL
/// 8.0.22), `SHOW SLAVE STATUS` before: MySQL 8.4 no longer takes the old name.
fn status_statement(version: &str) -> &'static str {
    let number = |part: Option<&str>| -> u32 {
        part.map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
    };
    let mut parts = version.split('.');
    let release = (
        number(parts.next()),
        number(parts.next()),
        number(parts.next()),
    );
    let first = if version.contains("MariaDB") {
        (10, 5, 1)
    } else {
        (8, 0, 22)
    };
    if release >= first {
        "SHOW REPLICA STATUS"
    } else {
        "SHOW SLAVE STATUS"
    }
}

/// A row's columns by name, each value as text (`None` for NULL).
fn named(row: &Row) -> Vec<(String, Option<String>)> {
    row.columns_ref()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let value = match row.as_ref(i) {
                None | Some(Value::NULL) => None,
                Some(Value::Bytes(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
                Some(other) => Some(other.as_sql(true)),
            };
            (column.name_str().into_owned(), value)
        })
        .collect()
}

/// The lag of a status with one row per replication channel (one for the
/// default): the worst of them, `None` if any is unknown. No row means the
/// server is not a replica.
fn worst_lag(rows: &[Vec<(String, Option<String>)>]) -> Result<Option<u64>, String> {
    if rows.is_empty() {
        return Err("is empty: the server is not a replica".to_owned());
    }
    let mut worst = Some(0);
    for row in rows {
        let lag = lag(row)?;
        worst = worst.zip(lag).map(|(a, b)| a.max(b));
    }
    Ok(worst)
}

/// The lag one status row reports, under either name of each column: the
/// old (`Slave_IO_Running`, `Seconds_Behind_Master`: MariaDB, MySQL before
/// 8.0.22) or the new (`Replica_IO_Running`, `Seconds_Behind_Source`).
/// `None` when a replication thread is not running (`No`, or `Connecting`
/// to a primary it cannot reach) or the server has no figure (NULL).
fn lag(row: &[(String, Option<String>)]) -> Result<Option<u64>, String> {
    let column = |names: [&str; 2]| {
        row.iter()
            .find(|(name, _)| names.iter().any(|n| name.eq_ignore_ascii_case(n)))
            .map(|(_, value)| value.as_deref())
            .ok_or_else(|| format!("has no {} column", names[0]))
    };
    let io = column(["Slave_IO_Running", "Replica_IO_Running"])?;
    let sql = column(["Slave_SQL_Running", "Replica_SQL_Running"])?;
    let seconds = column(["Seconds_Behind_Master", "Seconds_Behind_Source"])?;
    let running = |thread: Option<&str>| thread.is_some_and(|t| t.eq_ignore_ascii_case("Yes"));
    if !running(io) || !running(sql) {
        return Ok(None);
    }
    match seconds {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("gave Seconds_Behind_Master {text:?}, not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        cells
            .iter()
            .map(|(name, value)| (name.to_string(), value.map(str::to_owned)))
            .collect()
    }

    /// MariaDB's (and older MySQL's) names, with a few of the other columns.
    fn mariadb(io: &str, sql: &str, seconds: Option<&str>) -> Vec<(String, Option<String>)> {
        row(&[
            ("Slave_IO_State", Some("Waiting for master to send event")),
            ("Master_Host", Some("10.0.0.1")),
            ("Slave_IO_Running", Some(io)),
            ("Slave_SQL_Running", Some(sql)),
            ("Seconds_Behind_Master", seconds),
        ])
    }

    #[test]
    fn the_lag_is_read_under_either_name() {
        assert_eq!(lag(&mariadb("Yes", "Yes", Some("0"))), Ok(Some(0)));
        assert_eq!(lag(&mariadb("Yes", "Yes", Some("42"))), Ok(Some(42)));
        let mysql = row(&[
            ("Replica_IO_State", Some("Waiting for source to send event")),
            ("Replica_IO_Running", Some("Yes")),
            ("Replica_SQL_Running", Some("Yes")),
            ("Seconds_Behind_Source", Some("7")),
        ]);
        assert_eq!(lag(&mysql), Ok(Some(7)));
    }

    #[test]
    fn stopped_replication_or_no_figure_is_unknown_lag() {
        // The SQL thread stopped (by hand, or on an error).
        assert_eq!(lag(&mariadb("Yes", "No", Some("0"))), Ok(None));
        assert_eq!(lag(&mariadb("Yes", "No", None)), Ok(None));
        // The IO thread cannot reach the primary: the figure would be stale.
        assert_eq!(lag(&mariadb("Connecting", "Yes", Some("0"))), Ok(None));
        assert_eq!(lag(&mariadb("No", "Yes", Some("3"))), Ok(None));
        // Both running, and still no figure.
        assert_eq!(lag(&mariadb("Yes", "Yes", None)), Ok(None));
    }

    #[test]
    fn a_row_without_the_columns_is_an_error() {
        let odd = row(&[("Slave_IO_Running", Some("Yes"))]);
        assert!(lag(&odd).unwrap_err().contains("Slave_SQL_Running"));
        let garbage = mariadb("Yes", "Yes", Some("soon"));
        assert!(lag(&garbage).unwrap_err().contains("\"soon\""));
    }

    #[test]
    fn several_channels_give_the_worst_lag_and_none_is_no_replica() {
        let fast = mariadb("Yes", "Yes", Some("1"));
        let slow = mariadb("Yes", "Yes", Some("9"));
        let stopped = mariadb("Yes", "No", Some("0"));
        assert_eq!(worst_lag(&[fast.clone(), slow.clone()]), Ok(Some(9)));
        assert_eq!(worst_lag(&[fast, stopped, slow]), Ok(None));
        assert!(worst_lag(&[]).unwrap_err().contains("not a replica"));
    }

    #[test]
    fn the_status_statement_follows_the_version() {
        for (version, statement) in [
            ("10.11.6-MariaDB-0+deb12u1", "SHOW REPLICA STATUS"),
            ("10.5.1-MariaDB", "SHOW REPLICA STATUS"),
            ("11.4.2-MariaDB-log", "SHOW REPLICA STATUS"),
            ("10.5.0-MariaDB", "SHOW SLAVE STATUS"),
            ("10.4.32-MariaDB", "SHOW SLAVE STATUS"),
            ("8.0.22", "SHOW REPLICA STATUS"),
            ("8.4.0", "SHOW REPLICA STATUS"),
            ("8.0.21-log", "SHOW SLAVE STATUS"),
            ("5.7.44", "SHOW SLAVE STATUS"),
            ("", "SHOW SLAVE STATUS"),
        ] {
            assert_eq!(status_statement(version), statement, "{version}");
        }
    }

    #[test]
    fn a_replica_without_a_password_takes_the_primary_s() {
        use crate::config::map::{Identifier, Map};
        use crate::config::secret::Secret;
        use std::time::Duration;
        let id = |name| Identifier::parse(name).unwrap();
        let mut database = Database {
            engine: crate::config::Engine::MySql,
            url: Secret::new("mysql://app:primary-pw@db:3306/app"),
            password: None,
            map: Map::single(id("users"), id("id")),
            record: None,
            lock_wait_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            ca_file: None,
            chunk_rows: 1_000,
            replicas: Vec::new(),
            max_replica_lag: Duration::from_secs(5),
        };
        let pass = |database: &Database, url: &str| {
            replica_opts(database, url)
                .unwrap()
                .pass()
                .map(str::to_owned)
        };
        let own = "mysql://app:replica-pw@replica:3306/app";
        assert_eq!(pass(&database, own).as_deref(), Some("replica-pw"));
        let bare = "mysql://app@replica:3306/app";
        assert_eq!(pass(&database, bare).as_deref(), Some("primary-pw"));
        database.password = Some(Secret::new("file-pw"));
        assert_eq!(pass(&database, bare).as_deref(), Some("file-pw"));
        assert_eq!(pass(&database, own).as_deref(), Some("replica-pw"));
    }
}
