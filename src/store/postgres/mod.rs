//! The [`Session`] on PostgreSQL (tokio-postgres, TLS through rustls): the
//! only module that imports them. It connects with the job's session
//! settings, reads the schema from `pg_catalog` (whose tables every account
//! may read, unlike `information_schema`'s constraint views, which show only
//! tables the account owns or may change), sorts the server's errors by
//! SQLSTATE, asks the replicas their lag, and knows the `postgres://` URL.
//!
//! Everything goes over the simple query protocol, as on MySQL over the text
//! protocol: one round trip a statement, ids written as literals.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr as _;

use anyhow::Context as _;
use tokio_postgres::{Client, Config, SimpleQueryMessage};

use crate::config::Database;
use crate::config::map::{Action, Identifier};
use crate::store::engine::{Lag, Session};
use crate::store::schema::{Column, ForeignKey, Schema, SchemaError};
use crate::store::sql::Dialect;
use crate::store::{Refusal, StoreError};

mod tls;

/// A URL split into what tokio-postgres parses and the `sslmode` the job
/// applies itself (tokio-postgres would refuse `verify-ca` and `verify-full`).
struct Url {
    config: Config,
    mode: Option<tls::Mode>,
}

/// Parses a `postgres://` URL. The problem never repeats the URL.
fn parse_url(url: &str) -> Result<Url, String> {
    // A scheme is case-insensitive (RFC 3986); tokio-postgres takes it lowercase.
    let url = match url.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None => url.to_owned(),
    };
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut mode = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = Some(tls::Mode::parse(value)?),
            _ => kept.push(pair),
        }
    }
    let url = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    let config = Config::from_str(&url).map_err(|_| {
        "it is not a URL of the form postgres://user:password@host:port/database".to_owned()
    })?;
    Ok(Url { config, mode })
}

/// Checks a `postgres://` URL without contacting anything.
pub fn check_url(url: &str) -> Result<(), String> {
    let url = parse_url(url)?;
    if url.config.get_dbname().is_none_or(str::is_empty) {
        return Err("it names no database; add /database after the host".to_owned());
    }
    if url.config.get_user().is_none_or(str::is_empty) {
        return Err("it names no user; write postgres://user@host/database".to_owned());
    }
    Ok(())
}

/// Where a URL points, without its password: `postgres://user@host:port/db`.
pub fn describe(url: &str) -> String {
    let Ok(url) = parse_url(url) else {
        return "an invalid URL".to_owned();
    };
    let config = &url.config;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// The database a URL names (checked by [`check_url`]).
pub fn database_name(url: &str) -> String {
    parse_url(url)
        .ok()
        .and_then(|url| url.config.get_dbname().map(str::to_owned))
        .unwrap_or_default()
}

/// PostgreSQL's longest name, in bytes: a longer one is cut, silently.
const NAME_BYTES: usize = 63;

/// Connects to one server (the primary or a replica) with `password`
/// replacing the URL's, if given.
async fn connect(database: &Database, url: &str, password: Option<&str>) -> anyhow::Result<Client> {
    let described = describe(url);
    let Url { mut config, mode } =
        parse_url(url).map_err(|problem| anyhow::anyhow!("{described}: {problem}"))?;
    if let Some(password) = password {
        config.password(password);
    }
    let mode = tls::Mode::with_ca(mode, database.ca_file.is_some());
    config.ssl_mode(mode.ssl_mode());
    config.application_name("user-purge");
    config.connect_timeout(std::time::Duration::from_secs(30));
    let connector = tls::connector(mode, database.ca_file.as_deref())?;
    let (client, connection) = config
        .connect(connector)
        .await
        .with_context(|| format!("cannot connect to {described}"))?;
    // The connection's own task: it ends when the client is dropped, or
    // the server goes; the client's calls then fail.
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            log::debug!("the connection to {described} ended: {error}");
        }
    });
    Ok(client)
}

/// The statements that set up the job's session: READ COMMITTED, UTC (the
/// record's `LOCALTIMESTAMP`), standard strings (the dialect's literals),
/// and the lock and statement timeouts.
fn session_settings(database: &Database) -> String {
    format!(
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED; \
         SET TIME ZONE 'UTC'; SET standard_conforming_strings = on; \
         SET lock_timeout = {}; SET statement_timeout = {}",
        database.lock_wait_timeout.as_millis(),
        database.statement_timeout.as_millis()
    )
}

/// Every name of the map and the record, refused if PostgreSQL would cut it.
fn check_names(database: &Database) -> anyhow::Result<()> {
    let mut names: Vec<&Identifier> = Vec::new();
    for entry in database.map.entries() {
        names.push(&entry.table);
        names.push(&entry.column);
        for hop in &entry.via {
            names.extend([&hop.table, &hop.key, &hop.value]);
        }
        if let Action::Redact { null, replace } = &entry.action {
            names.extend(null);
            names.extend(replace.iter().map(|(name, _)| name));
        }
    }
    names.extend(&database.record);
    match names
        .into_iter()
        .flat_map(Identifier::parts)
        .find(|name| name.len() > NAME_BYTES)
    {
        Some(name) => anyhow::bail!(
            "the name {name} is {} bytes, and PostgreSQL cuts names to {NAME_BYTES}; nothing \
             was received",
            name.len()
        ),
        None => Ok(()),
    }
}

/// Runs a simple query, its messages.
async fn simple(
    client: &Client,
    sql: &str,
) -> Result<Vec<SimpleQueryMessage>, tokio_postgres::Error> {
    client.simple_query(sql).await
}

/// The rows of simple query messages, each value's text (empty for NULL).
fn rows(messages: Vec<SimpleQueryMessage>) -> Vec<Vec<Vec<u8>>> {
    messages
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map_or_else(Vec::new, |v| v.as_bytes().to_vec()))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// A row's value as text.
fn text(row: &[Vec<u8>], i: usize) -> String {
    row.get(i)
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_default()
}

/// A table's name as the map writes it (`c` its `pg_class` row, joined by
/// [`in_user_schema`]): plain when the `search_path` finds it by that name
/// (the first table of a name only), `schema.table` when it does not.
fn table_name(c: &str) -> String {
    format!(
        "CASE WHEN pg_catalog.pg_table_is_visible({c}.oid) THEN {c}.relname::text \
         ELSE {c}_ns.nspname || '.' || {c}.relname END"
    )
}

/// The join of `c`'s schema, and the condition that it is not the system's.
fn in_user_schema(c: &str) -> (String, String) {
    (
        format!("JOIN pg_catalog.pg_namespace {c}_ns ON {c}_ns.oid = {c}.relnamespace"),
        format!(
            "{c}_ns.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND {c}_ns.nspname NOT LIKE 'pg\\_toast%' AND {c}_ns.nspname NOT LIKE 'pg\\_temp\\_%'"
        ),
    )
}

/// `pg_catalog`'s tables and their columns, in every schema but the system's.
fn columns_query() -> String {
    let (join, user) = in_user_schema("c");
    format!(
        "SELECT {}, a.attname, t.typname, \
         pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, \
         CASE WHEN t.typname IN ('varchar', 'bpchar') AND a.atttypmod >= 4 \
           THEN a.atttypmod - 4 END, \
         co.collname \
         FROM pg_catalog.pg_class c {join} \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
           AND NOT a.attisdropped \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
         WHERE c.relkind IN ('r', 'p') AND {user}",
        table_name("c")
    )
}

/// Each foreign key's column pairs, with its `ON DELETE` action.
fn foreign_keys_query() -> String {
    let (child_join, child_user) = in_user_schema("cc");
    let (parent_join, parent_user) = in_user_schema("pc");
    format!(
        "SELECT {}, ca.attname, {}, pa.attname, con.confdeltype \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class cc ON cc.oid = con.conrelid {child_join} \
         JOIN pg_catalog.pg_class pc ON pc.oid = con.confrelid {parent_join} \
         CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(child, parent) \
         JOIN pg_catalog.pg_attribute ca ON ca.attrelid = con.conrelid AND ca.attnum = k.child \
         JOIN pg_catalog.pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = k.parent \
         WHERE con.contype = 'f' AND {child_user} AND {parent_user}",
        table_name("cc"),
        table_name("pc")
    )
}

/// Each index's first column (not an expression), whether it is unique,
/// primary, and how many key columns it has; partial indexes do not count.
fn indexes_query() -> String {
    let (join, user) = in_user_schema("c");
    format!(
        "SELECT {}, i.relname, a.attname, x.indisunique, x.indisprimary, x.indnkeyatts \
         FROM pg_catalog.pg_index x \
         JOIN pg_catalog.pg_class c ON c.oid = x.indrelid {join} \
         JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = x.indkey[0] \
         WHERE x.indpred IS NULL AND x.indisvalid AND {user}",
        table_name("c")
    )
}

/// PostgreSQL's type names in the words the checks use (`int4` is
/// `integer`; `text` a `varchar` without a length).
fn data_type(typname: &str) -> &str {
    match typname {
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "bpchar" => "char",
        "text" => "varchar",
        "bytea" => "varbinary",
        other => other,
    }
}

/// Reads what `pg_catalog` says of the tables on the `search_path`.
async fn read_schema(client: &Client) -> anyhow::Result<Schema> {
    let columns = rows(
        simple(client, &columns_query())
            .await
            .context("cannot read the columns from pg_catalog")?,
    );
    let foreign_keys = rows(
        simple(client, &foreign_keys_query())
            .await
            .context("cannot read the foreign keys from pg_catalog")?,
    );
    let indexes = rows(
        simple(client, &indexes_query())
            .await
            .context("cannot read the indexes from pg_catalog")?,
    );
    let truth = |row: &[Vec<u8>], i| row.get(i).is_some_and(|value| value == b"t");
    let mut schema = Schema {
        columns: columns
            .iter()
            .map(|row| {
                let column = Column {
                    data_type: data_type(&text(row, 2)).to_owned(),
                    column_type: text(row, 3),
                    nullable: truth(row, 4),
                    max_chars: text(row, 5).parse().ok(),
                    max_bytes: None,
                    charset: None,
                    collation: Some(text(row, 6)).filter(|c| !c.is_empty()),
                };
                ((text(row, 0), text(row, 1)), column)
            })
            .collect::<BTreeMap<_, _>>(),
        foreign_keys: foreign_keys
            .iter()
            .map(|row| ForeignKey {
                child: text(row, 0),
                column: text(row, 1),
                parent: text(row, 2),
                parent_column: text(row, 3),
                on_delete: match text(row, 4).as_str() {
                    "c" => "CASCADE",
                    "n" => "SET NULL",
                    "d" => "SET DEFAULT",
                    "r" => "RESTRICT",
                    _ => "NO ACTION",
                }
                .to_owned(),
            })
            .collect(),
        ..Schema::default()
    };
    let mut indexed = BTreeSet::new();
    for row in &indexes {
        let (table, name, column) = (text(row, 0), text(row, 1), text(row, 2));
        let alone = text(row, 5) == "1";
        if alone && truth(row, 3) {
            schema.unique.insert((table.clone(), column.clone()));
        }
        if alone && truth(row, 4) {
            schema.primary.insert(table.clone(), column.clone());
        } else if alone {
            schema
                .lone_indexes
                .insert((table.clone(), column.clone()), name);
        }
        indexed.insert((table, column));
    }
    schema.indexed = indexed;
    Ok(schema)
}

/// Connects and reads the schema, for `user-purge check`: the schema, the
/// columns whose names match each pattern (a POSIX regular expression, as
/// PostgreSQL's `~` reads it), and no hidden tables: `pg_catalog` shows
/// every table to every account. Read-only.
pub async fn schema(
    database: &Database,
    patterns: [(&'static str, Option<&str>); 2],
) -> Result<(Schema, [BTreeSet<(String, String)>; 2], Option<String>), SchemaError> {
    let client = connect(
        database,
        database.url.expose(),
        database.password.as_ref().map(|p| p.expose()),
    )
    .await
    .map_err(SchemaError::Unreadable)?;
    let schema = read_schema(&client)
        .await
        .map_err(SchemaError::Unreadable)?;
    let mut named = [BTreeSet::new(), BTreeSet::new()];
    for ((setting, pattern), named) in patterns.into_iter().zip(&mut named) {
        let Some(pattern) = pattern else { continue };
        let (join, user) = in_user_schema("c");
        let select = format!(
            "SELECT {}, a.attname::text FROM pg_catalog.pg_class c {join} \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
               AND NOT a.attisdropped \
             WHERE c.relkind IN ('r', 'p') AND {user} AND a.attname ~ $1",
            table_name("c")
        );
        *named = client
            .query(&select, &[&pattern])
            .await
            .map(|rows| {
                rows.into_iter()
                    .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
                    .collect()
            })
            .map_err(|error| match error.as_db_error() {
                // invalid_regular_expression
                Some(db) if db.code().code() == "2201B" => {
                    SchemaError::BadPattern(setting, db.message().to_owned())
                }
                _ => SchemaError::Unreadable(
                    anyhow::Error::new(error).context(format!("cannot match {setting}")),
                ),
            })?;
    }
    Ok((schema, named, None))
}

/// One replica's connection.
struct Replica {
    name: String,
    client: Client,
}

/// How far a streaming replica is behind: 0 when it has replayed all it
/// received (an idle primary sends nothing, and is no lag), else the time
/// since the last transaction it replayed was committed (none replayed yet:
/// 0; a clock behind the primary's: 0). Not in recovery: no replica. NULL,
/// replication stopped, as MariaDB's stopped IO or SQL thread: it has never
/// streamed WAL, its replay is paused (`pg_wal_replay_pause()`: it receives
/// and applies nothing, however idle the primary), or no WAL receiver runs
/// (cut off from its primary, it would say it replayed all it received).
/// Every function here is PUBLIC's, `pg_stat_wal_receiver`'s row too (its
/// details are `pg_read_all_stats`'s, and not read).
const LAG: &str = "SELECT pg_catalog.pg_is_in_recovery(), \
     CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN NULL \
          WHEN pg_catalog.pg_last_wal_receive_lsn() IS NULL THEN NULL \
          WHEN pg_catalog.pg_get_wal_replay_pause_state() <> 'not paused' THEN NULL \
          WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_stat_wal_receiver) THEN NULL \
          WHEN pg_catalog.pg_last_wal_receive_lsn() <= pg_catalog.pg_last_wal_replay_lsn() THEN 0 \
          ELSE GREATEST(COALESCE(floor(EXTRACT(EPOCH FROM now() - \
               pg_catalog.pg_last_xact_replay_timestamp()))::bigint, 0), 0) END";

/// The connection to a PostgreSQL primary, and to its replicas.
pub struct Postgres {
    client: Client,
    replicas: Vec<Replica>,
}

impl Session for Postgres {
    const DIALECT: Dialect = Dialect::Postgres;
    /// A `DEFERRABLE INITIALLY DEFERRED` foreign key would refuse only at
    /// `COMMIT`, outside every savepoint: immediate, it refuses at its
    /// statement, whose users are then isolated.
    const BEGIN: &'static str = "START TRANSACTION; SET CONSTRAINTS ALL IMMEDIATE";

    async fn open(database: &Database) -> anyhow::Result<(Postgres, Schema)> {
        check_names(database)?;
        let password = database.password.as_ref().map(|p| p.expose());
        let client = connect(database, database.url.expose(), password).await?;
        client
            .batch_execute(&session_settings(database))
            .await
            .context("cannot set up the session")?;
        let schema = read_schema(&client).await?;
        // A replica's URL without a password takes the primary's: the
        // file's, or else the primary URL's.
        let url_password = |url: &str| {
            parse_url(url).ok().and_then(|url| {
                url.config
                    .get_password()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
            })
        };
        let primary = password
            .map(str::to_owned)
            .or_else(|| url_password(database.url.expose()));
        let mut replicas = Vec::with_capacity(database.replicas.len());
        for url in &database.replicas {
            let name = describe(url.expose());
            let password = match url_password(url.expose()) {
                Some(_) => None,
                None => primary.clone(),
            };
            let client = connect(database, url.expose(), password.as_deref())
                .await
                .with_context(|| format!("cannot reach replica {name}; nothing was received"))?;
            replicas.push(Replica { name, client });
        }
        Ok((Postgres { client, replicas }, schema))
    }

    async fn execute(
        &mut self,
        statement: &str,
        table: &str,
        what: &str,
    ) -> Result<u64, StoreError> {
        let messages = simple(&self.client, statement)
            .await
            .map_err(|error| classify(error, table, what))?;
        Ok(messages
            .iter()
            .rev()
            .find_map(|message| match message {
                SimpleQueryMessage::CommandComplete(rows) => Some(*rows),
                _ => None,
            })
            .unwrap_or(0))
    }

    async fn select(
        &mut self,
        select: &str,
        table: &str,
        what: &str,
    ) -> Result<Vec<Vec<Vec<u8>>>, StoreError> {
        let messages = simple(&self.client, select)
            .await
            .map_err(|error| classify(error, table, what))?;
        Ok(rows(messages))
    }

    /// `ON CONFLICT DO NOTHING` skips the users recorded already, and
    /// PostgreSQL changes no value it cannot hold: it refuses it, which
    /// fails the round (it is no user's refusal).
    async fn record(
        &mut self,
        statement: &str,
        _listed: u64,
        table: &str,
        what: &str,
    ) -> Result<u64, StoreError> {
        self.execute(statement, table, what)
            .await
            .map_err(|error| match error {
                StoreError::Refused(refusal) => StoreError::Failed(anyhow::anyhow!(
                    "{what} would not hold what was written ({}); the round was rolled back",
                    refusal.reason
                )),
                other => other,
            })
    }

    async fn ping(&mut self) -> anyhow::Result<()> {
        self.client.simple_query("").await?;
        Ok(())
    }

    fn has_replicas(&self) -> bool {
        !self.replicas.is_empty()
    }

    async fn lags(&mut self) -> anyhow::Result<Vec<Lag>> {
        let mut lags = Vec::with_capacity(self.replicas.len());
        for replica in &self.replicas {
            let rows = rows(
                simple(&replica.client, LAG)
                    .await
                    .with_context(|| format!("cannot read the lag of replica {}", replica.name))?,
            );
            let row = rows.first().cloned().unwrap_or_default();
            if text(&row, 0) != "t" {
                anyhow::bail!(
                    "replica {}: pg_is_in_recovery() is false: the server is not a replica; \
                     check --replica-url",
                    replica.name
                );
            }
            lags.push(Lag {
                replica: replica.name.clone(),
                seconds: text(&row, 1).parse().ok(),
            });
        }
        Ok(lags)
    }
}

/// What happens next after a server error, by its SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// The rows refused: the users are isolated.
    Refused,
    /// A deadlock or serialization failure: the transaction is tried again.
    Retry,
    /// `statement_timeout`: split as refusals are, a user alone carried over.
    TimedOut,
    /// Anything else fails the transaction.
    Failed,
}

/// Class 23 (integrity: a foreign key), 22 (data: a value too long) and P0
/// (PL/pgSQL), and any code a trigger `RAISE`s (`raised`: a trigger may use
/// any ERRCODE), belong to rows; 40P01 (deadlock) and 40001 (serialization)
/// are tried again; 57014 is `statement_timeout`; anything else (55P03
/// `lock_timeout`, as MySQL's lock wait timeout; connection, resources,
/// permissions, a read-only server) fails the transaction.
fn next(code: &str, raised: bool) -> Next {
    match code {
        "40P01" | "40001" => Next::Retry,
        "57014" => Next::TimedOut,
        _ if raised || matches!(code.get(..2), Some("22" | "23" | "P0")) => Next::Refused,
        _ => Next::Failed,
    }
}

/// Sorts a server error by [`next`].
fn classify(error: tokio_postgres::Error, table: &str, what: &str) -> StoreError {
    let Some(db) = error.as_db_error() else {
        return StoreError::Failed(anyhow::Error::new(error).context(format!("{what} failed")));
    };
    let code = db.code().code();
    let raised = db.routine() == Some("exec_stmt_raise");
    match next(code, raised) {
        Next::Refused => StoreError::Refused(Refusal {
            table: table.to_owned(),
            reason: refusal_reason(code, raised, db.message()),
        }),
        Next::TimedOut => StoreError::TimedOut(Refusal {
            table: table.to_owned(),
            reason: format!("{what} ran past --statement-timeout (SQLSTATE 57014)"),
        }),
        Next::Retry => {
            StoreError::Deadlock(anyhow::Error::new(error).context(format!("{what} failed")))
        }
        Next::Failed => {
            StoreError::Failed(anyhow::Error::new(error).context(format!("{what} failed")))
        }
    }
}

/// The server's reason, when its message names only tables, columns and
/// constraints (a foreign key, NOT NULL, a length) or is the schema's own
/// text (a trigger's RAISE); otherwise the code alone, because messages
/// such as invalid input's quote row contents. The details never go out.
fn refusal_reason(code: &str, raised: bool, message: &str) -> String {
    match raised || matches!(code, "23503" | "23502" | "22001") {
        true => format!("{message} (SQLSTATE {code})"),
        false => format!("SQLSTATE {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_without_being_echoed() {
        assert!(check_url("postgres://u:pw@localhost:5432/app").is_ok());
        assert!(check_url("postgresql://u@db/app?sslmode=verify-full").is_ok());
        assert!(check_url("postgres://u@/app?host=/cloudsql/p:r:i").is_ok());
        for bad in [
            "postgres://u:s3cret@localhost:5432",
            "postgres://u:s3cret@h/db?sslmode=sometimes",
            "postgres://u:s3cret@h:notaport/db",
        ] {
            let problem = check_url(bad).unwrap_err();
            assert!(!problem.contains("s3cret"), "{problem}");
        }
        assert_eq!(
            describe("postgres://u:s3cret@db.example:5433/app?sslmode=require"),
            "postgres://u@db.example:5433/app"
        );
        assert_eq!(database_name("postgres://u@h/app"), "app");
    }

    #[test]
    fn errors_are_sorted_by_their_sqlstate() {
        let cases = [
            ("23503", false, Next::Refused), // foreign_key_violation
            ("23502", false, Next::Refused), // not_null_violation
            ("22001", false, Next::Refused), // string_data_right_truncation
            ("P0001", true, Next::Refused),  // raise_exception
            ("UP001", true, Next::Refused),  // a trigger's own ERRCODE
            ("40P01", false, Next::Retry),   // deadlock_detected
            ("40001", false, Next::Retry),   // serialization_failure
            ("57014", false, Next::TimedOut),
            ("55P03", false, Next::Failed), // lock_not_available: lock_timeout
            ("08006", false, Next::Failed), // connection_failure
            ("53100", false, Next::Failed), // disk_full
            ("42501", false, Next::Failed), // insufficient_privilege
            ("25006", false, Next::Failed), // read_only_sql_transaction
            ("UP001", false, Next::Failed), // not from a RAISE: unknown
        ];
        for (code, raised, expected) in cases {
            assert_eq!(next(code, raised), expected, "{code} raised: {raised}");
        }
    }

    #[test]
    fn refusal_reasons_never_quote_row_contents() {
        let syntax = refusal_reason(
            "22P02",
            false,
            "invalid input syntax for type integer: \"alice\"",
        );
        assert!(!syntax.contains("alice"), "{syntax}");
        assert_eq!(
            refusal_reason("P0001", true, "legal hold"),
            "legal hold (SQLSTATE P0001)"
        );
        assert_eq!(
            refusal_reason("45000", true, "held"),
            "held (SQLSTATE 45000)"
        );
    }
}
