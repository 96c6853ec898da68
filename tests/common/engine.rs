//! The database engines the integration tests run on, MariaDB and PostgreSQL:
//! what differs between them in a test's SQL (column types, table options,
//! triggers, the server's words for a refusal), the connection a test keeps
//! to its own database on either, and [`on_both_engines!`], which makes one
//! test body two tests.
//!
//! PostgreSQL is root's `postgres://postgres@127.0.0.1:5432/postgres` (trust
//! authentication), or `TEST_POSTGRES_URL`. Each test gets a database of its
//! own, owned by a LOGIN role with a recognisable password; the tables are
//! root's, and the role is granted everything on them, on their sequences,
//! and on what the test creates later (default privileges), as MariaDB's
//! `GRANT ALL ON db.*` does.

use mysql_async::prelude::Queryable as _;

/// A database engine a test's world can be made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    MariaDb,
    Postgres,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::MariaDb => "MariaDB",
            Engine::Postgres => "PostgreSQL",
        }
    }

    /// The type of a user id column: unsigned where the engine has it.
    pub fn id_type(self) -> &'static str {
        match self {
            Engine::MariaDb => "BIGINT UNSIGNED",
            Engine::Postgres => "BIGINT",
        }
    }

    /// A surrogate key numbered by the server.
    pub fn serial_key(self) -> &'static str {
        match self {
            Engine::MariaDb => "BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY",
            Engine::Postgres => "BIGSERIAL PRIMARY KEY",
        }
    }

    /// `CREATE TABLE name (columns)`, transactional on either engine.
    pub fn create_table(self, name: &str, columns: &str) -> String {
        match self {
            Engine::MariaDb => format!("CREATE TABLE {name} ({columns}) ENGINE=InnoDB"),
            Engine::Postgres => format!("CREATE TABLE {name} ({columns})"),
        }
    }

    /// The statements that make a BEFORE `event` (DELETE or UPDATE) trigger
    /// `name` on `table` refuse every row for which `condition` (over `OLD`)
    /// holds, with `message`: MariaDB SIGNALs SQLSTATE 45000, PostgreSQL
    /// RAISEs P0001. `before` runs first in the trigger, when the row is refused.
    pub fn refusing_trigger(
        self,
        name: &str,
        event: &str,
        table: &str,
        condition: &str,
        message: &str,
        before: &str,
    ) -> Vec<String> {
        let row = if event == "UPDATE" { "NEW" } else { "OLD" };
        match self {
            Engine::MariaDb => vec![format!(
                "CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW \
                 BEGIN \
                   IF {condition} THEN \
                     {before} \
                     SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}'; \
                   END IF; \
                 END"
            )],
            // The row a BEFORE trigger returns is the one written: OLD lets
            // a DELETE go on, NEW an UPDATE.
            Engine::Postgres => vec![
                format!(
                    "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN \
                       IF {condition} THEN \
                         {before} \
                         RAISE EXCEPTION '{message}' USING ERRCODE = 'P0001'; \
                       END IF; \
                       RETURN {row}; \
                     END $$"
                ),
                format!(
                    "CREATE TRIGGER {name} BEFORE {event} ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION {name}()"
                ),
            ],
        }
    }

    /// A column type for a point in time, to the millisecond.
    pub fn timestamp_type(self) -> &'static str {
        match self {
            Engine::MariaDb => "DATETIME(3)",
            Engine::Postgres => "TIMESTAMP(3)",
        }
    }

    /// `CREATE TABLE name` for an erasure record, as the README creates it.
    pub fn record_table(self, name: &str) -> String {
        self.create_table(
            name,
            &format!(
                "user_id {} NOT NULL PRIMARY KEY, erased_at {} NOT NULL, \
                 message_id VARCHAR(128) NOT NULL",
                self.id_type(),
                self.timestamp_type()
            ),
        )
    }

    /// `INSERT INTO table (user_id, payload)` of `rows` rows for each user
    /// of `first..=last`, in one statement, in the order of (user, row):
    /// MariaDB's sequence engine, PostgreSQL's generate_series.
    pub fn insert_rows_each(self, table: &str, (first, last): (u64, u64), rows: u64) -> String {
        match self {
            Engine::MariaDb => format!(
                "INSERT INTO {table} (user_id, payload) \
                 SELECT u.seq, CONCAT('r', r.seq) FROM seq_{first}_to_{last} u \
                 JOIN seq_1_to_{rows} r ORDER BY u.seq, r.seq"
            ),
            Engine::Postgres => format!(
                "INSERT INTO {table} (user_id, payload) \
                 SELECT u, 'r' || r FROM generate_series({first}, {last}) u, \
                 generate_series(1, {rows}) r ORDER BY u, r"
            ),
        }
    }

    /// A statement that waits `seconds` inside a trigger body.
    pub fn sleep_statement(self, seconds: f64) -> String {
        match self {
            Engine::MariaDb => format!("DO SLEEP({seconds});"),
            Engine::Postgres => format!("PERFORM pg_sleep({seconds});"),
        }
    }

    /// Words of the server's message when a `RESTRICT` foreign key refuses
    /// to let a parent row go: what a refusal line must carry.
    pub fn foreign_key_refusal(self) -> &'static str {
        match self {
            Engine::MariaDb => "foreign key constraint fails",
            Engine::Postgres => "violates foreign key constraint",
        }
    }

    /// Words of the server's message when a statement gave up waiting for a
    /// row lock (`--lock-wait-timeout`).
    pub fn lock_timeout_words(self) -> &'static str {
        match self {
            Engine::MariaDb => "Lock wait timeout",
            Engine::Postgres => "lock timeout",
        }
    }

    /// Column types an id column may not have, each with a value of its own
    /// for a row: (table, type, value).
    pub fn other_id_types(self) -> [(&'static str, &'static str, &'static str); 4] {
        match self {
            Engine::MariaDb => [
                ("by_decimal", "DECIMAL(20,0)", "1"),
                ("by_date", "DATE", "'2001-01-01'"),
                ("by_blob", "BLOB", "'1'"),
                ("by_double", "DOUBLE", "1"),
            ],
            Engine::Postgres => [
                ("by_numeric", "NUMERIC(20,0)", "1"),
                ("by_date", "DATE", "'2001-01-01'"),
                ("by_bytea", "BYTEA", "'1'"),
                ("by_double", "DOUBLE PRECISION", "1"),
            ],
        }
    }

    /// A URL of the job's scheme for a server nobody listens on.
    pub fn unreachable_url(self, port: u16, database: &str) -> String {
        match self {
            Engine::MariaDb => format!("mysql://root:@127.0.0.1:{port}/{database}"),
            Engine::Postgres => format!("postgres://postgres@127.0.0.1:{port}/{database}"),
        }
    }

    /// The statements that make a row trigger `name` on `table` run `body`
    /// (one statement over `OLD` or `NEW`, no semicolon) at `when` (`AFTER
    /// DELETE`, say): MariaDB's trigger body, PostgreSQL's function. A
    /// BEFORE trigger lets the row go on.
    pub fn row_trigger(self, name: &str, when: &str, table: &str, body: &str) -> Vec<String> {
        match self {
            Engine::MariaDb => vec![format!(
                "CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW {body}"
            )],
            Engine::Postgres => {
                // An AFTER trigger's row is ignored; a BEFORE trigger's is
                // the one written (OLD lets a DELETE go on, NEW the others).
                let row = if when.ends_with("DELETE") {
                    "OLD"
                } else {
                    "NEW"
                };
                vec![
                    format!(
                        "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ \
                         BEGIN {body}; RETURN {row}; END $$"
                    ),
                    format!(
                        "CREATE TRIGGER {name} {when} ON {table} \
                         FOR EACH ROW EXECUTE FUNCTION {name}()"
                    ),
                ]
            }
        }
    }

    /// `CREATE TABLE name` for an erasure record whose `user_id` holds every
    /// id an event can carry, as a map with a text id column needs (checked
    /// at connect): BIGINT UNSIGNED on MariaDB, VARCHAR(20) on PostgreSQL,
    /// which has no unsigned type.
    pub fn wide_record_table(self, name: &str) -> String {
        let user_id = match self {
            Engine::MariaDb => self.id_type(),
            Engine::Postgres => "VARCHAR(20)",
        };
        self.create_table(
            name,
            &format!(
                "user_id {user_id} NOT NULL PRIMARY KEY, erased_at {} NOT NULL, \
                 message_id VARCHAR(128) NOT NULL",
                self.timestamp_type()
            ),
        )
    }

    /// Words of the server's message when an account lacks the privilege
    /// for a statement (a SELECT-only account's DELETE).
    pub fn permission_refusal(self) -> &'static str {
        match self {
            Engine::MariaDb => "command denied",
            Engine::Postgres => "permission denied",
        }
    }
}

/// Makes each named `async fn name(engine: Engine)` of the test file two
/// tests, `name::on_mariadb` and `name::on_postgres`, so that
/// `cargo nextest run -E 'test(on_postgres)'` picks one engine.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn on_mariadb() {
                super::$name($crate::common::Engine::MariaDb).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn on_postgres() {
                super::$name($crate::common::Engine::Postgres).await;
            }
        }
    )+};
}

/// PostgreSQL as root, for setting up and inspecting each test's database.
pub fn postgres_root_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A URL for `database` as `user` on the PostgreSQL server that `root_url`
/// points at.
pub fn postgres_url_on(root_url: &str, user: &str, password: &str, database: &str) -> String {
    let config: tokio_postgres::Config = root_url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        tokio_postgres::config::Host::Unix(path) => panic!("not a TCP host: {path:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let credentials = if password.is_empty() {
        user.to_owned()
    } else {
        format!("{user}:{password}")
    };
    format!("postgres://{credentials}@{host}:{port}/{database}")
}

/// A connection of its own to `url`: dropping the client closes it, so the
/// server rolls back whatever transaction it held.
pub async fn postgres_connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running ({e})"));
    tokio::spawn(connection);
    client
}

/// The connection a test keeps to its own database, as root.
pub enum Db {
    MariaDb(mysql_async::Pool),
    Postgres(tokio_postgres::Client),
}

impl Db {
    /// Runs SQL (several statements, on PostgreSQL).
    pub async fn sql(&self, statement: &str) {
        match self {
            Db::MariaDb(pool) => {
                let mut conn = pool.get_conn().await.unwrap();
                conn.query_drop(statement).await.unwrap();
            }
            Db::Postgres(client) => client
                .batch_execute(statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e:?}")),
        }
    }

    /// Every row of `query`, each value as text (NULL as "NULL").
    pub async fn rows(&self, query: &str) -> Vec<Vec<String>> {
        let text = |value: Option<&str>| value.unwrap_or("NULL").to_owned();
        match self {
            Db::MariaDb(pool) => {
                let mut conn = pool.get_conn().await.unwrap();
                let rows: Vec<mysql_async::Row> = conn
                    .query(query)
                    .await
                    .unwrap_or_else(|e| panic!("{query}: {e:?}"));
                rows.into_iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                let value: Option<String> = row.get(i).unwrap();
                                text(value.as_deref())
                            })
                            .collect()
                    })
                    .collect()
            }
            Db::Postgres(client) => client
                .simple_query(query)
                .await
                .unwrap_or_else(|e| panic!("{query}: {e:?}"))
                .into_iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => {
                        Some((0..row.len()).map(|i| text(row.get(i))).collect())
                    }
                    _ => None,
                })
                .collect(),
        }
    }

    /// The first column of every row of `query`, as text (NULL as "NULL").
    pub async fn texts(&self, query: &str) -> Vec<String> {
        let rows = self.rows(query).await;
        rows.into_iter().map(|row| row[0].clone()).collect()
    }

    /// The first column of every row of `query`, as numbers.
    pub async fn numbers(&self, query: &str) -> Vec<u64> {
        match self {
            Db::MariaDb(pool) => {
                let mut conn = pool.get_conn().await.unwrap();
                conn.query(query).await.unwrap()
            }
            Db::Postgres(_) => self
                .texts(query)
                .await
                .into_iter()
                .map(|text| parse_number(query, &text))
                .collect(),
        }
    }

    /// A number (0 for no row).
    pub async fn number(&self, query: &str) -> u64 {
        match self {
            Db::MariaDb(pool) => {
                let mut conn = pool.get_conn().await.unwrap();
                conn.query_first(query).await.unwrap().unwrap_or(0)
            }
            Db::Postgres(_) => self.numbers(query).await.first().copied().unwrap_or(0),
        }
    }
}

/// A PostgreSQL value in text form as a number; booleans are 0 and 1.
fn parse_number(query: &str, text: &str) -> u64 {
    match text {
        "t" => 1,
        "f" => 0,
        _ => text
            .parse()
            .unwrap_or_else(|e| panic!("{query}: {text:?} is not a number ({e})")),
    }
}

/// Makes a test's PostgreSQL database `database`, owned by a new LOGIN role
/// `user`, with `users` 1..=users (each with one order), and returns root's
/// connection to it.
pub async fn create_postgres_world(
    root_url: &str,
    database: &str,
    user: &str,
    password: &str,
    users: u64,
) -> tokio_postgres::Client {
    let admin = postgres_connect(root_url).await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'"
        ))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE \"{database}\" OWNER \"{user}\""))
        .await
        .unwrap();
    drop(admin);
    let client = postgres_connect(&postgres_url_on(root_url, "postgres", "", database)).await;
    let db = Db::Postgres(client);
    db.sql(&format!(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(100) NOT NULL); \
         CREATE TABLE orders (id BIGSERIAL PRIMARY KEY, \
           user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE); \
         CREATE INDEX orders_user_id ON orders (user_id); \
         GRANT ALL ON ALL TABLES IN SCHEMA public TO \"{user}\"; \
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO \"{user}\"; \
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO \"{user}\"; \
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO \"{user}\";"
    ))
    .await;
    for start in (1..=users).step_by(5_000) {
        let end = (start + 4_999).min(users);
        db.sql(&format!(
            "INSERT INTO users SELECT id, 'user' || id || '@example.com' \
             FROM generate_series({start}::bigint, {end}) AS id; \
             INSERT INTO orders (user_id) SELECT id FROM users WHERE id BETWEEN {start} AND {end};"
        ))
        .await;
    }
    match db {
        Db::Postgres(client) => client,
        Db::MariaDb(_) => unreachable!(),
    }
}

/// Drops a test's PostgreSQL database, whoever is still connected, then its
/// roles.
pub async fn drop_postgres_world(root_url: &str, database: &str, roles: &[String]) {
    let admin = postgres_connect(root_url).await;
    admin
        .batch_execute(&format!("DROP DATABASE \"{database}\" WITH (FORCE)"))
        .await
        .unwrap();
    for role in roles {
        admin
            .batch_execute(&format!("DROP ROLE \"{role}\""))
            .await
            .unwrap();
    }
}

impl super::Setup {
    /// Another PostgreSQL server than the shared one (root's URL on it), as
    /// [`Setup::mysql_root`](super::Setup::mysql_root) is for MariaDB.
    pub fn postgres_root(mut self, url: String) -> super::Setup {
        self.postgres_root = url;
        self
    }
}
