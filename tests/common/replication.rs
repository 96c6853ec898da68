//! A private primary and a private replica of it, on either engine, for the
//! tests of `--replica-url`; every database and user a test creates on the
//! primary (a [`Setup`](super::Setup) pointed at it, [`Replication::setup`])
//! exists on the replica too. And the ways a test makes the replica lag.
//!
//! - MariaDB: the primary writes a ROW binary log, the replica follows it
//!   from its first byte; it lags with its SQL thread stopped, a
//!   `MASTER_DELAY`, or a row lock that blocks the SQL thread.
//! - PostgreSQL: the replica streams the primary's WAL, from a base backup
//!   (`pg_basebackup -R`); it lags with its replay paused
//!   (`pg_wal_replay_pause()`) or a `recovery_min_apply_delay`.

use std::time::Duration;

use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts, Row};

use super::postgres_cluster::PrivatePostgres;
use super::private::PrivateMariaDb;
use super::wait::poll_until;
use super::{Engine, Setup, TestEnv};

/// How long the replica's SQL thread waits on a row lock before it retries:
/// longer than any test holds one, so that the lag grows until it is released.
const REPLICA_LOCK_WAIT: u64 = 600;

/// A primary and its replica on either engine, each stopped by its PID
/// when dropped.
pub enum Replication {
    MariaDb(MariaDbReplication),
    Postgres(PostgresReplication),
}

/// What holds a replica back until it is released
/// ([`Replication::release`]).
pub enum HeldBack {
    /// A MariaDB replica's SQL thread, blocked on a row lock.
    Lock(Conn),
    /// A PostgreSQL replica's replay, delayed by an hour.
    Delay,
}

impl Replication {
    /// Starts a primary and its replica on `engine`.
    pub async fn start(engine: Engine) -> Replication {
        match engine {
            Engine::MariaDb => Replication::MariaDb(MariaDbReplication::start().await),
            Engine::Postgres => Replication::Postgres(PostgresReplication::start().await),
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Replication::MariaDb(_) => Engine::MariaDb,
            Replication::Postgres(_) => Engine::Postgres,
        }
    }

    /// A test's world on the primary, which the replica copies.
    pub fn setup(&self, users: u64) -> Setup {
        match self {
            Replication::MariaDb(r) => Setup::new(users).mysql_root(r.primary_root_url()),
            Replication::Postgres(r) => Setup::new(users)
                .engine(Engine::Postgres)
                .postgres_root(r.primary.root_url("postgres")),
        }
    }

    /// The replica's URL for `user` on `database`, without a password: the
    /// job takes the primary's.
    pub fn replica_url(&self, user: &str, database: &str) -> String {
        match self {
            Replication::MariaDb(r) => r.replica_url(user, database),
            Replication::Postgres(r) => r.replica_url(user, database),
        }
    }

    /// The replica's URL for `user` with `password`, as the job's account
    /// reads the replica.
    pub fn replica_url_with(&self, user: &str, password: &str, database: &str) -> String {
        let (scheme, port) = match self {
            Replication::MariaDb(r) => ("mysql", r.replica.port),
            Replication::Postgres(r) => ("postgres", r.replica.port),
        };
        format!("{scheme}://{user}:{password}@127.0.0.1:{port}/{database}")
    }

    /// A number the replica's query returns in `database` (0 for no row or
    /// NULL).
    pub async fn replica_number(&self, database: &str, query: &str) -> u64 {
        match self {
            Replication::MariaDb(r) => {
                let mut conn = r.replica_root().await;
                conn.query_drop(format!("USE `{database}`")).await.unwrap();
                let number: Option<Option<u64>> = conn.query_first(query).await.unwrap();
                number.flatten().unwrap_or(0)
            }
            Replication::Postgres(r) => r
                .replica
                .text(database, query)
                .await
                .map_or(0, |text| text.parse().unwrap()),
        }
    }

    /// Waits until the replica has applied everything the primary wrote up
    /// to now, for at most `limit`.
    pub async fn wait_until_caught_up(&self, limit: Duration) {
        match self {
            Replication::MariaDb(r) => r.wait_until_caught_up(limit).await,
            Replication::Postgres(r) => r.wait_until_caught_up(limit).await,
        }
    }

    /// Waits until the replica has received everything the primary wrote
    /// up to now (applied or not).
    pub async fn wait_until_received(&self) {
        match self {
            Replication::MariaDb(r) => r.wait_until_received().await,
            Replication::Postgres(r) => r.wait_until_received().await,
        }
    }

    /// Waits until the replica is at least `seconds` behind, as it says.
    pub async fn wait_for_lag(&self, seconds: u64) {
        match self {
            Replication::MariaDb(r) => r.wait_for_lag(seconds).await,
            Replication::Postgres(r) => r.wait_for_lag(seconds).await,
        }
    }

    /// Stops the replica applying what it receives: MariaDB's SQL thread,
    /// PostgreSQL's replay.
    pub async fn stop_applying(&self) {
        match self {
            Replication::MariaDb(r) => r.stop_sql_thread().await,
            Replication::Postgres(r) => r.pause_replay().await,
        }
    }

    pub async fn start_applying(&self) {
        match self {
            Replication::MariaDb(r) => r.start_sql_thread().await,
            Replication::Postgres(r) => r.resume_replay().await,
        }
    }

    /// Makes the replica apply each change `seconds` after the primary
    /// made it (0: at once again).
    pub async fn set_delay(&self, seconds: u64) {
        match self {
            Replication::MariaDb(r) => r.set_delay(seconds).await,
            Replication::Postgres(r) => r.set_delay(seconds).await,
        }
    }

    /// Makes the replica unable to apply the next change to `env`'s users
    /// until [released](Replication::release): MariaDB's SQL thread blocks
    /// on a row lock, PostgreSQL's replay waits an hour. Either lags from
    /// that change on.
    pub async fn hold_back(&self, env: &TestEnv) -> HeldBack {
        match self {
            Replication::MariaDb(r) => {
                HeldBack::Lock(r.lock_on_replica(&env.database, "users").await)
            }
            Replication::Postgres(r) => {
                r.set_delay(3_600).await;
                HeldBack::Delay
            }
        }
    }

    /// Lets the replica apply what it was held back from.
    pub async fn release(&self, held: HeldBack) {
        match (self, held) {
            (_, HeldBack::Lock(lock)) => drop(lock),
            (Replication::Postgres(r), HeldBack::Delay) => r.set_delay(0).await,
            (Replication::MariaDb(_), HeldBack::Delay) => unreachable!(),
        }
    }
}

/// A MariaDB primary and its replica.
pub struct MariaDbReplication {
    pub primary: PrivateMariaDb,
    pub replica: PrivateMariaDb,
}

impl MariaDbReplication {
    /// Starts both servers and replication from the primary's first event.
    pub async fn start() -> MariaDbReplication {
        let primary = PrivateMariaDb::start(&[
            "--server-id=1".to_owned(),
            "--log-bin=primary-bin".to_owned(),
            "--binlog-format=ROW".to_owned(),
        ])
        .await;
        let replica = PrivateMariaDb::start(&[
            "--server-id=2".to_owned(),
            "--relay-log=replica-relay".to_owned(),
            format!("--innodb-lock-wait-timeout={REPLICA_LOCK_WAIT}"),
        ])
        .await;
        let replication = MariaDbReplication { primary, replica };
        let (file, position) = replication.primary_position().await;
        let mut replica = replication.replica_root().await;
        replica
            .query_drop(format!(
                "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
                 MASTER_USER = 'root', MASTER_PASSWORD = '', \
                 MASTER_LOG_FILE = '{file}', MASTER_LOG_POS = {position}, \
                 MASTER_USE_GTID = no, MASTER_CONNECT_RETRY = 1",
                replication.primary.port
            ))
            .await
            .unwrap();
        replica.query_drop("START SLAVE").await.unwrap();
        drop(replica);
        replication.wait_until_running().await;
        replication
    }

    /// root on the primary, for [`Setup::mysql_root`](super::Setup::mysql_root).
    pub fn primary_root_url(&self) -> String {
        self.primary.url("root", "", "mysql")
    }

    /// The replica's URL for `user` on `database`, without a password: the
    /// job takes the primary's.
    pub fn replica_url(&self, user: &str, database: &str) -> String {
        format!("mysql://{user}@127.0.0.1:{}/{database}", self.replica.port)
    }

    /// A root connection to the replica of its own: dropping it ends
    /// whatever transaction it holds.
    pub async fn replica_root(&self) -> Conn {
        connect(&self.replica.url("root", "", "mysql")).await
    }

    async fn primary_root(&self) -> Conn {
        connect(&self.primary_root_url()).await
    }

    /// Runs SQL on the replica as root.
    pub async fn on_replica(&self, statement: &str) {
        self.replica_root()
            .await
            .query_drop(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement} on the replica: {e}"));
    }

    /// Runs SQL on the primary as root.
    pub async fn on_primary(&self, statement: &str) {
        self.primary_root()
            .await
            .query_drop(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement} on the primary: {e}"));
    }

    /// A number the replica's query returns (0 for no row or NULL).
    pub async fn replica_number(&self, query: &str) -> u64 {
        let number: Option<Option<u64>> =
            self.replica_root().await.query_first(query).await.unwrap();
        number.flatten().unwrap_or(0)
    }

    /// The primary's binary log file and position now.
    async fn primary_position(&self) -> (String, u64) {
        let row: Row = self
            .primary_root()
            .await
            .query_first("SHOW MASTER STATUS")
            .await
            .unwrap()
            .expect("the primary writes no binary log");
        (row.get("File").unwrap(), row.get("Position").unwrap())
    }

    /// What the replica says of its replication: (IO thread, SQL thread,
    /// Seconds_Behind_Master), as `SHOW SLAVE STATUS` gives them.
    pub async fn status(&self) -> (String, String, Option<u64>) {
        let row: Row = self
            .replica_root()
            .await
            .query_first("SHOW SLAVE STATUS")
            .await
            .unwrap()
            .expect("the replica has no replication configured");
        (
            row.get("Slave_IO_Running").unwrap(),
            row.get("Slave_SQL_Running").unwrap(),
            row.get::<Option<u64>, _>("Seconds_Behind_Master").unwrap(),
        )
    }

    /// Waits until both replication threads run, failing with the
    /// replica's last errors if one stopped.
    pub async fn wait_until_running(&self) {
        poll_until(
            "the replica's IO and SQL threads to run",
            Duration::from_secs(30),
            Duration::from_millis(100),
            async || {
                let (io, sql, _) = self.status().await;
                (io == "Yes" && sql == "Yes").then_some(())
            },
        )
        .await
    }

    /// Waits until the replica has applied everything the primary logged up
    /// to now (`MASTER_POS_WAIT`), for at most `limit`.
    pub async fn wait_until_caught_up(&self, limit: Duration) {
        let (file, position) = self.primary_position().await;
        let reached: Option<Option<i64>> = self
            .replica_root()
            .await
            .query_first(format!(
                "SELECT MASTER_POS_WAIT('{file}', {position}, {})",
                limit.as_secs().max(1)
            ))
            .await
            .unwrap();
        assert!(
            matches!(reached, Some(Some(n)) if n >= 0),
            "the replica did not reach {file}:{position} within {limit:?} ({reached:?}): {:?}",
            self.status().await
        );
    }

    /// Waits until the replica's IO thread has read the primary's binary
    /// log up to its position now.
    pub async fn wait_until_received(&self) {
        let (file, position) = self.primary_position().await;
        poll_until(
            &format!("the replica to read the primary's log up to {file}:{position}"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            async || {
                let row: Row = self
                    .replica_root()
                    .await
                    .query_first("SHOW SLAVE STATUS")
                    .await
                    .unwrap()?;
                let read: String = row.get("Master_Log_File")?;
                let at: u64 = row.get("Read_Master_Log_Pos")?;
                (read > file || (read == file && at >= position)).then_some(())
            },
        )
        .await
    }

    /// Waits until the replica says it is at least `seconds` behind.
    pub async fn wait_for_lag(&self, seconds: u64) {
        poll_until(
            &format!("the replica to be {seconds} s behind"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            async || {
                let (_, _, lag) = self.status().await;
                lag.filter(|lag| *lag >= seconds).map(|_| ())
            },
        )
        .await
    }

    pub async fn stop_sql_thread(&self) {
        self.on_replica("STOP SLAVE SQL_THREAD").await;
    }

    pub async fn start_sql_thread(&self) {
        self.on_replica("START SLAVE SQL_THREAD").await;
    }

    /// Makes the replica apply each event `seconds` after the primary wrote it.
    pub async fn set_delay(&self, seconds: u64) {
        let mut replica = self.replica_root().await;
        // MariaDB changes the delay only with both threads stopped.
        for statement in [
            "STOP SLAVE".to_owned(),
            format!("CHANGE MASTER TO MASTER_DELAY = {seconds}"),
            "START SLAVE".to_owned(),
        ] {
            replica.query_drop(&statement).await.unwrap();
        }
    }

    /// Holds a lock on every row of `database`.`table` on the replica, in
    /// a transaction of its own, until the returned connection is dropped:
    /// the SQL thread blocks on the first replicated change to them, and the
    /// replica falls behind from that change's time on.
    pub async fn lock_on_replica(&self, database: &str, table: &str) -> Conn {
        let mut conn = self.replica_root().await;
        conn.query_drop("START TRANSACTION").await.unwrap();
        conn.query_drop(format!("SELECT * FROM `{database}`.`{table}` FOR UPDATE"))
            .await
            .unwrap();
        conn
    }
}

async fn connect(url: &str) -> Conn {
    Conn::new(Opts::from_url(url).unwrap())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

/// A PostgreSQL primary and a streaming replica of it.
pub struct PostgresReplication {
    pub primary: PrivatePostgres,
    pub replica: PrivatePostgres,
}

/// The replica's lag as the job reads it, in whole seconds: 0 when it
/// has replayed all it received, else the time since the last transaction
/// it replayed was committed (NULL when it replayed none).
const REPLICA_LAG: &str = "SELECT CASE \
     WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
     ELSE floor(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()))::bigint END";

impl PostgresReplication {
    /// Starts the primary, and the replica from a base backup of it.
    pub async fn start() -> PostgresReplication {
        let primary = PrivatePostgres::start(&[]).await;
        let replica = PrivatePostgres::replica_of(&primary, &[]).await;
        let replication = PostgresReplication { primary, replica };
        replication.wait_until_streaming().await;
        replication
    }

    /// The replica's URL for `user` on `database`, without a password.
    pub fn replica_url(&self, user: &str, database: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{database}",
            self.replica.port
        )
    }

    /// Waits until the replica's WAL receiver streams from the primary.
    pub async fn wait_until_streaming(&self) {
        poll_until(
            "the replica to stream the primary's WAL",
            Duration::from_secs(30),
            Duration::from_millis(100),
            async || {
                let status = self
                    .replica
                    .text("postgres", "SELECT status FROM pg_stat_wal_receiver")
                    .await;
                (status.as_deref() == Some("streaming")).then_some(())
            },
        )
        .await
    }

    /// The primary's WAL position now.
    async fn primary_position(&self) -> String {
        self.primary
            .text("postgres", "SELECT pg_current_wal_lsn()")
            .await
            .unwrap()
    }

    /// Waits until the replica has received (not necessarily replayed) the
    /// primary's WAL up to its position now.
    pub async fn wait_until_received(&self) {
        let position = self.primary_position().await;
        let received = format!("SELECT pg_last_wal_receive_lsn() >= '{position}'::pg_lsn");
        poll_until(
            &format!("the replica to receive the primary's WAL up to {position}"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            async || {
                let done = self.replica.text("postgres", &received).await;
                (done.as_deref() == Some("t")).then_some(())
            },
        )
        .await
    }

    /// Waits until the replica has replayed the primary's WAL up to its
    /// position now, for at most `limit`.
    pub async fn wait_until_caught_up(&self, limit: Duration) {
        let position = self.primary_position().await;
        let replayed = format!("SELECT pg_last_wal_replay_lsn() >= '{position}'::pg_lsn");
        poll_until(
            &format!("the replica to replay the primary's WAL up to {position}"),
            limit,
            Duration::from_millis(50),
            async || {
                let done = self.replica.text("postgres", &replayed).await;
                (done.as_deref() == Some("t")).then_some(())
            },
        )
        .await
    }

    /// The replica's lag in seconds (`None` when it has replayed no
    /// transaction and has more to replay).
    pub async fn lag(&self) -> Option<u64> {
        let lag = self.replica.text("postgres", REPLICA_LAG).await?;
        Some(lag.parse::<i64>().unwrap().max(0) as u64)
    }

    /// Waits until the replica is at least `seconds` behind.
    pub async fn wait_for_lag(&self, seconds: u64) {
        poll_until(
            &format!("the replica to be {seconds} s behind"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            async || self.lag().await.filter(|lag| *lag >= seconds).map(drop),
        )
        .await
    }

    /// Pauses the replica's replay, and waits until it has paused: it still
    /// receives the WAL, and applies none of it.
    pub async fn pause_replay(&self) {
        self.replica
            .sql("postgres", "SELECT pg_wal_replay_pause()")
            .await;
        self.wait_for_pause_state("paused").await;
    }

    pub async fn resume_replay(&self) {
        self.replica
            .sql("postgres", "SELECT pg_wal_replay_resume()")
            .await;
        self.wait_for_pause_state("not paused").await;
    }

    async fn wait_for_pause_state(&self, state: &str) {
        poll_until(
            &format!("the replica's replay to be {state}"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            async || {
                let now = self
                    .replica
                    .text("postgres", "SELECT pg_get_wal_replay_pause_state()")
                    .await;
                (now.as_deref() == Some(state)).then_some(())
            },
        )
        .await
    }

    /// Makes the replica replay each transaction `seconds` after its commit
    /// on the primary (`recovery_min_apply_delay`, which a reload changes,
    /// for the transaction waiting too); waits until the setting is in force.
    pub async fn set_delay(&self, seconds: u64) {
        let setting = format!("{}s", seconds);
        self.replica
            .sql(
                "postgres",
                &format!("ALTER SYSTEM SET recovery_min_apply_delay = '{setting}'"),
            )
            .await;
        self.replica
            .sql("postgres", "SELECT pg_reload_conf()")
            .await;
        let wanted = match seconds {
            0 => "0".to_owned(),
            s if s % 3_600 == 0 => format!("{}h", s / 3_600),
            s if s % 60 == 0 => format!("{}min", s / 60),
            s => format!("{s}s"),
        };
        poll_until(
            &format!("recovery_min_apply_delay to be {wanted} on the replica"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            async || {
                let now = self
                    .replica
                    .text("postgres", "SHOW recovery_min_apply_delay")
                    .await;
                (now.as_deref() == Some(wanted.as_str())).then_some(())
            },
        )
        .await
    }
}
