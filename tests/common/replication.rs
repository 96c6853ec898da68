//! A private MariaDB primary and a private replica of it, for the tests of
//! `--replica-url`: the primary writes a ROW binary log, the replica follows
//! it from its first byte, so every database and user a test creates on the
//! primary (a [`Setup`](super::Setup) pointed at it) exists on the replica
//! too. And the ways a test makes the replica lag: its SQL thread stopped, a
//! `MASTER_DELAY`, or a row lock that blocks the SQL thread.

use std::time::Duration;

use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts, Row};

use super::private::PrivateMariaDb;
use super::wait::poll_until;

/// How long the replica's SQL thread waits on a row lock before it retries:
/// longer than any test holds one, so that the lag grows until it is released.
const REPLICA_LOCK_WAIT: u64 = 600;

/// A primary and its replica, each stopped by its PID when dropped.
pub struct Replication {
    pub primary: PrivateMariaDb,
    pub replica: PrivateMariaDb,
}

impl Replication {
    /// Starts both servers and replication from the primary's first event.
    pub async fn start() -> Replication {
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
        let replication = Replication { primary, replica };
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
