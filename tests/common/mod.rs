//! Shared helpers of the integration tests: each test gets its own database,
//! topic and subscription on the real MariaDB and the real Pub/Sub emulator,
//! runs the real binary, and reads back what it did. The database is MariaDB
//! unless the test asks for PostgreSQL ([`Setup::engine`]).
//!
//! The emulator is `PUBSUB_EMULATOR_HOST` when that is set (`scripts/test` starts
//! one for the whole suite); otherwise this process starts its own on a free port,
//! and the kernel stops it when the process exits.
//!
//! Beside this file:
//! - `backlog`: a mixed backlog, the invariant after it, and recovery runs;
//! - `engine`: MariaDB or PostgreSQL, and what differs between them;
//! - `erasure`: what the erasure map's tests read back (rows per table,
//!   `check`'s findings and grants), and locks held on a test's tables;
//! - `postgres_cluster`: private PostgreSQL 15 servers (a replica via
//!   `pg_basebackup -R`, TLS);
//! - `private`: MariaDB, emulator and Pushgateway instances of a test's own;
//! - `proxy`: a slow link in front of the emulator;
//! - `replication`: a private primary and its replica on either engine (a
//!   MariaDB binary-log replica, or a PostgreSQL streaming one), made to lag;
//! - `scratch`: scratch directories, and openssl run in one;
//! - `stand_ins`: sockets standing in for the services, for bad configuration;
//! - `wait`: waiting for an event, never longer than a deadline.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::process::ExitStatusExt as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use gcloud_gax::conn::{Channel, ConnectionOptions, Environment};
use gcloud_gax::grpc::{Code, Request};
use gcloud_googleapis::pubsub::v1::subscriber_client::SubscriberClient;
use gcloud_googleapis::pubsub::v1::{
    AcknowledgeRequest, DeadLetterPolicy, ModifyAckDeadlineRequest, PubsubMessage, PullRequest,
};
use gcloud_pubsub::apiv1::conn_pool::ConnectionManager;
use gcloud_pubsub::client::{Client, ClientConfig};
use gcloud_pubsub::subscription::SubscriptionConfig;
use mysql_async::prelude::Queryable as _;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use user_purge::event;

pub use engine::{Db, Engine};
pub use user_purge::event::event_type;

pub mod backlog;
pub mod engine;
pub mod erasure;
pub mod postgres_cluster;
pub mod private;
pub mod proxy;
pub mod replication;
pub mod scratch;
pub mod stand_ins;
pub mod wait;

pub const PROJECT: &str = "test-project";

/// MariaDB as root, for setting up and inspecting each test's database.
pub fn mysql_root_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// host:port of the emulator every test in this process uses.
pub async fn emulator_host() -> String {
    static HOST: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HOST.get_or_init(async || match std::env::var("PUBSUB_EMULATOR_HOST") {
        Ok(host) if !host.is_empty() => host,
        _ => start_emulator().await,
    })
    .await
    .clone()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The emulator on 127.0.0.1:`port`, in a directory of its own, writing
/// to the log file whose path comes with it. Its launcher execs java, so the
/// child's PID is the server's.
pub fn emulator_command(port: u16) -> (std::process::Command, std::path::PathBuf) {
    let bin = std::env::var("PUBSUB_EMULATOR_BIN").unwrap_or_else(|_| {
        "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator".into()
    });
    let dir =
        std::env::temp_dir().join(format!("user-purge-emulator-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let out = std::fs::File::create(&log).unwrap();
    let mut command = std::process::Command::new(bin);
    command
        .args(["--host=127.0.0.1", &format!("--port={port}")])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    (command, log)
}

async fn start_emulator() -> String {
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    // Spawned from a thread that lives as long as the process: the kernel sends
    // SIGKILL to the emulator when that thread, and so the process, is gone.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt as _;
        let (mut command, _) = emulator_command(port);
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn();
        tx.send(child.map(|c| c.id())).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot start the Pub/Sub emulator ({e})"));
    wait::until_listening(port, "the Pub/Sub emulator", || None).await;
    host
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}{}x{}x{}",
        std::process::id(),
        nanos % 100_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's world: its database with a `users` table (and `orders` that
/// reference it with ON DELETE CASCADE), its topic and its subscription.
pub struct TestEnv {
    /// The engine holding the database.
    pub engine: Engine,
    /// How many users the table started with: ids 1..=initial_users.
    pub initial_users: u64,
    pub database: String,
    pub topic: String,
    pub subscription: String,
    /// The dead-letter topic's own subscription, when the test asked for one.
    pub dead_letter_subscription: Option<String>,
    pub client: Client,
    /// Root's connection to the database ([`TestEnv::pool`] on MariaDB).
    db: Db,
    /// Root's URL (`mysql://root@host:port/...`, or `postgres://postgres@...`)
    /// on the server holding the database.
    pub root_url: String,
    pub emulator: String,
    /// The database user the job runs as, and its recognisable password: every
    /// run is checked for it in stdout and stderr.
    pub user: String,
    pub password: String,
    /// Users a test added with [`TestEnv::create_user`], dropped at cleanup.
    extra_users: std::sync::Mutex<Vec<String>>,
}

/// In the service-account key every run gets, so that every run can be
/// checked for leaking it.
pub const KEY_MARKER: &str = "KEY-MATERIAL-9f1c2e";

/// A service-account key, well-formed but for its private key, which is
/// [`KEY_MARKER`]: under the emulator (which wins over it) it is never used;
/// without one, the job fails at the key, before any network call.
pub fn fake_key() -> String {
    format!(
        r#"{{"type":"service_account","project_id":"{PROJECT}","private_key_id":"{KEY_MARKER}","private_key":"-----BEGIN PRIVATE KEY-----\n{KEY_MARKER}\n-----END PRIVATE KEY-----\n","client_email":"purge@{PROJECT}.iam.gserviceaccount.com"}}"#
    )
}

/// How long one of the harness's own Pulls waits for messages; the same as the
/// job's pull timeout in these tests.
const PULL_DEADLINE: Duration = Duration::from_secs(2);

/// A request to the emulator that carries its deadline, so that the server
/// ends it too.
fn with_deadline<T>(body: T) -> Request<T> {
    let mut request = Request::new(body);
    request.set_timeout(PULL_DEADLINE);
    request
}

/// What the harness does with the messages it pulls.
#[derive(Clone, Copy)]
enum Settle {
    Acknowledge,
    HandBack,
    /// Neither: they come back when their lease runs out.
    Hold,
}

/// How to build a [`TestEnv`]: by default on the shared MariaDB and emulator.
pub struct Setup {
    users: u64,
    ack_deadline_seconds: i32,
    engine: Engine,
    mysql_root: String,
    postgres_root: String,
    /// The shared one ([`emulator_host`]) unless the test names another.
    emulator: Option<String>,
    dead_letter_attempts: Option<i32>,
    retain_acked: bool,
}

impl Setup {
    /// Users 1..=users, each with one order.
    pub fn new(users: u64) -> Setup {
        Setup {
            users,
            ack_deadline_seconds: 10,
            engine: Engine::MariaDb,
            mysql_root: mysql_root_url(),
            postgres_root: engine::postgres_root_url(),
            emulator: None,
            dead_letter_attempts: None,
            retain_acked: false,
        }
    }

    /// The database on this engine (MariaDB unless told).
    pub fn engine(mut self, engine: Engine) -> Setup {
        self.engine = engine;
        self
    }

    /// Another MariaDB server than the shared one.
    pub fn mysql_root(mut self, url: String) -> Setup {
        self.mysql_root = url;
        self
    }

    pub fn emulator(mut self, host: String) -> Setup {
        self.emulator = Some(host);
        self
    }

    /// A dead-letter topic (with a subscription to read it) that takes a
    /// message after this many delivery attempts.
    pub fn dead_letter(mut self, max_delivery_attempts: i32) -> Setup {
        self.dead_letter_attempts = Some(max_delivery_attempts);
        self
    }

    /// The subscription keeps acknowledged messages, so it can seek back.
    pub fn retain_acked(mut self) -> Setup {
        self.retain_acked = true;
        self
    }

    pub async fn create(self) -> TestEnv {
        let emulator = match self.emulator {
            Some(host) => host,
            None => emulator_host().await,
        };
        let database = unique("up_");
        let user = format!("u{}", &database[3..]);
        let password = format!("Pw-{database}-secret");
        let (db, root_url) = match self.engine {
            Engine::MariaDb => {
                let pool =
                    create_mariadb_world(&self.mysql_root, &database, &user, &password, self.users)
                        .await;
                (Db::MariaDb(pool), self.mysql_root)
            }
            Engine::Postgres => {
                let client = engine::create_postgres_world(
                    &self.postgres_root,
                    &database,
                    &user,
                    &password,
                    self.users,
                )
                .await;
                (Db::Postgres(client), self.postgres_root)
            }
        };

        let client = pubsub_client_on(&emulator).await;
        let topic = unique("topic-");
        let subscription = unique("sub-");
        client.topic(&topic).create(None, None).await.unwrap();
        let mut config = SubscriptionConfig {
            ack_deadline_seconds: self.ack_deadline_seconds,
            retain_acked_messages: self.retain_acked,
            ..SubscriptionConfig::default()
        };
        let mut dead_letter_subscription = None;
        if let Some(attempts) = self.dead_letter_attempts {
            let dead_topic = unique("dead-");
            let dead_subscription = unique("deadsub-");
            client.topic(&dead_topic).create(None, None).await.unwrap();
            client
                .create_subscription(
                    &dead_subscription,
                    &dead_topic,
                    SubscriptionConfig::default(),
                    None,
                )
                .await
                .unwrap();
            config.dead_letter_policy = Some(DeadLetterPolicy {
                dead_letter_topic: format!("projects/{PROJECT}/topics/{dead_topic}"),
                max_delivery_attempts: attempts,
            });
            dead_letter_subscription = Some(dead_subscription);
        }
        client
            .create_subscription(&subscription, &topic, config, None)
            .await
            .unwrap();
        TestEnv {
            engine: self.engine,
            initial_users: self.users,
            database,
            topic,
            subscription,
            dead_letter_subscription,
            client,
            db,
            root_url,
            emulator,
            user,
            password,
            extra_users: Default::default(),
        }
    }
}

/// Makes a test's MariaDB database `database` on the server of `root_url`,
/// with `users` 1..=users (each with one order) and `user` granted all on
/// it, and returns root's pool on it.
async fn create_mariadb_world(
    root_url: &str,
    database: &str,
    user: &str,
    password: &str,
    users: u64,
) -> mysql_async::Pool {
    let root = mysql_async::Pool::new(root_url);
    let mut conn = root.get_conn().await.expect("MariaDB must be running");
    conn.query_drop(format!("CREATE DATABASE `{database}`"))
        .await
        .unwrap();
    drop(conn);
    root.disconnect().await.unwrap();
    let pool = mysql_async::Pool::new(url_on(root_url, "root", "", database).as_str());
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop(
        "CREATE TABLE users (id BIGINT UNSIGNED PRIMARY KEY, email VARCHAR(100) NOT NULL) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    conn.query_drop(
        "CREATE TABLE orders (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
         user_id BIGINT UNSIGNED NOT NULL, \
         FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    for start in (1..=users).step_by(5_000) {
        let end = (start + 4_999).min(users);
        let rows: Vec<String> = (start..=end)
            .map(|id| format!("({id},'user{id}@example.com')"))
            .collect();
        conn.query_drop(format!("INSERT INTO users VALUES {}", rows.join(",")))
            .await
            .unwrap();
        conn.query_drop(format!(
            "INSERT INTO orders (user_id) SELECT id FROM users WHERE id BETWEEN {start} AND {end}"
        ))
        .await
        .unwrap();
    }
    conn.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
    ))
    .await
    .unwrap();
    conn.query_drop(format!("GRANT ALL ON `{database}`.* TO '{user}'@'%'"))
        .await
        .unwrap();
    drop(conn);
    pool
}

impl TestEnv {
    /// Users 1..=users, on the shared services.
    pub async fn new(users: u64) -> TestEnv {
        Setup::new(users).create().await
    }

    /// Users 1..=users on `engine`, on the shared services.
    pub async fn on(engine: Engine, users: u64) -> TestEnv {
        Setup::new(users).engine(engine).create().await
    }

    /// The DATABASE_URL the job gets.
    pub fn database_url(&self) -> String {
        self.database_url_as(&self.user, &self.password)
    }

    /// The URL of this test's database for another user.
    pub fn database_url_as(&self, user: &str, password: &str) -> String {
        match self.engine {
            Engine::MariaDb => url_on(&self.root_url, user, password, &self.database),
            Engine::Postgres => {
                engine::postgres_url_on(&self.root_url, user, password, &self.database)
            }
        }
    }

    /// Root's pool on this test's MariaDB database; MariaDB only.
    pub fn pool(&self) -> &mysql_async::Pool {
        match &self.db {
            Db::MariaDb(pool) => pool,
            Db::Postgres(_) => panic!("a MariaDB-only helper was used on PostgreSQL"),
        }
    }

    /// Publishes each payload as one message, and waits until all are stored.
    /// Returns their message ids, in the payloads' order.
    pub async fn publish(&self, payloads: Vec<Vec<u8>>) -> Vec<String> {
        self.publish_on(&self.topic, payloads).await
    }

    async fn publish_on(&self, topic: &str, payloads: Vec<Vec<u8>>) -> Vec<String> {
        let mut publisher = self.client.topic(topic).new_publisher(None);
        let mut ids = Vec::with_capacity(payloads.len());
        for chunk in payloads.chunks(1_000) {
            let messages = chunk
                .iter()
                .map(|data| PubsubMessage {
                    data: data.clone(),
                    ..PubsubMessage::default()
                })
                .collect();
            for awaiter in publisher.publish_bulk(messages).await {
                ids.push(awaiter.get().await.expect("publish failed"));
            }
        }
        publisher.shutdown().await;
        ids
    }

    /// Publishes USER_REMOVED for each id.
    pub async fn publish_removals(&self, ids: impl IntoIterator<Item = u64>) {
        self.publish(
            ids.into_iter()
                .map(|id| event::encode(event_type::REMOVED, id))
                .collect(),
        )
        .await;
    }

    /// The user ids left in the table, ascending.
    pub async fn users(&self) -> Vec<u64> {
        self.db.numbers("SELECT id FROM users ORDER BY id").await
    }

    /// The user ids that still have orders, ascending and distinct.
    pub async fn users_with_orders(&self) -> Vec<u64> {
        self.db
            .numbers("SELECT DISTINCT user_id FROM orders ORDER BY user_id")
            .await
    }

    /// Takes every message left in the subscription (acknowledging them) and
    /// returns their payloads. Waits for leased messages only as long as `wait`.
    pub async fn drain(&self, wait: Duration) -> Vec<Vec<u8>> {
        self.take_from(&self.subscription, wait, Settle::Acknowledge)
            .await
    }

    /// Takes every message of the dead-letter topic.
    pub async fn drain_dead_letters(&self, wait: Duration) -> Vec<Vec<u8>> {
        let subscription = self
            .dead_letter_subscription
            .as_ref()
            .expect("no dead-letter topic");
        self.take_from(subscription, wait, Settle::Acknowledge)
            .await
    }

    /// The payloads of every message in the subscription now, which are then
    /// all handed back (nacked), so that the next run gets them at once.
    /// Each peek counts as a delivery of each message.
    pub async fn peek(&self, wait: Duration) -> Vec<Vec<u8>> {
        self.peek_at(&self.subscription, wait).await
    }

    /// The same for another subscription (of this test's topic, say).
    pub async fn peek_at(&self, subscription: &str, wait: Duration) -> Vec<Vec<u8>> {
        self.take_from(subscription, wait, Settle::HandBack).await
    }

    /// Waits until every lease of `lease` at most that the emulator granted
    /// before now has run out, as the emulator's own clock tells: a message
    /// on a topic of the test's own, pulled now and held for `lease`, comes
    /// back to its subscription.
    pub async fn outlast_leases(&self, lease: Duration) {
        let topic = unique("lease-");
        let subscription = unique("leasesub-");
        self.client.topic(&topic).create(None, None).await.unwrap();
        let config = SubscriptionConfig {
            ack_deadline_seconds: lease.as_secs().try_into().unwrap(),
            ..SubscriptionConfig::default()
        };
        self.client
            .create_subscription(&subscription, &topic, config, None)
            .await
            .unwrap();
        self.publish_on(&topic, vec![b"lease".to_vec()]).await;
        let held = self
            .take_from(&subscription, Duration::ZERO, Settle::Hold)
            .await;
        assert_eq!(held.len(), 1, "the test's own message was not delivered");
        let what = format!("a lease of {lease:?}, taken after the others, to run out");
        let limit = lease + Duration::from_secs(60);
        wait::poll_until(&what, limit, Duration::from_millis(100), async || {
            let back = self
                .take_from(&subscription, Duration::ZERO, Settle::Acknowledge)
                .await;
            (!back.is_empty()).then_some(())
        })
        .await;
        let _ = self.client.subscription(&subscription).delete(None).await;
        let _ = self.client.topic(&topic).delete(None).await;
    }

    /// Pulls until a Pull comes back empty after `wait`. Each Pull carries its
    /// deadline to the emulator, as the job's do: a Pull the client merely
    /// abandoned would stay open there and swallow messages handed back later.
    async fn take_from(&self, subscription: &str, wait: Duration, settle: Settle) -> Vec<Vec<u8>> {
        let connections = ConnectionManager::new(
            1,
            "",
            &Environment::Emulator(self.emulator.clone()),
            &ConnectionOptions::default(),
        )
        .await
        .expect("cannot reach the Pub/Sub emulator");
        let mut client: SubscriberClient<Channel> = SubscriberClient::new(connections.conn());
        let name = format!("projects/{PROJECT}/subscriptions/{subscription}");
        let deadline = Instant::now() + wait;
        let mut payloads = Vec::new();
        let mut held = Vec::new();
        loop {
            #[allow(deprecated)]
            let pull = PullRequest {
                subscription: name.clone(),
                max_messages: 1_000,
                return_immediately: false,
            };
            let received = match client.pull(with_deadline(pull)).await {
                Ok(response) => response.into_inner().received_messages,
                Err(status) if status.code() == Code::DeadlineExceeded => Vec::new(),
                Err(status) => panic!("Pull from {name}: {status}"),
            };
            if received.is_empty() {
                if Instant::now() >= deadline {
                    break;
                }
                continue;
            }
            let ack_ids: Vec<String> = received.iter().map(|m| m.ack_id.clone()).collect();
            payloads.extend(
                received
                    .into_iter()
                    .filter_map(|m| m.message.map(|m| m.data)),
            );
            match settle {
                Settle::Acknowledge => {
                    let ack = AcknowledgeRequest {
                        subscription: name.clone(),
                        ack_ids,
                    };
                    client.acknowledge(with_deadline(ack)).await.unwrap();
                }
                // Not yet: handed back now, they would be pulled again.
                Settle::HandBack => held.extend(ack_ids),
                Settle::Hold => {}
            }
        }
        for ack_ids in held.chunks(1_000) {
            let nack = ModifyAckDeadlineRequest {
                subscription: name.clone(),
                ack_ids: ack_ids.to_vec(),
                ack_deadline_seconds: 0,
            };
            client
                .modify_ack_deadline(with_deadline(nack))
                .await
                .unwrap();
        }
        payloads
    }

    /// Runs the binary against this test's world, with extra arguments and
    /// environment.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with_env(args, &[]).await
    }

    pub async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let output = self.command(args, env).output().await.unwrap();
        self.checked(output)
    }

    /// Starts the job in the background, with extra arguments and environment.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Job {
        Job::new(self.command(args, env).spawn().unwrap())
    }

    /// The run, after checking that no secret appears in what it printed.
    /// Every JSON line on stdout, whatever the outcome, must parse as an object.
    pub fn checked(&self, output: std::process::Output) -> Run {
        let run = Run::from(output);
        run.assert_no_secret(&[&self.password, KEY_MARKER]);
        for line in run.stdout.lines().filter(|l| l.starts_with('{')) {
            let parsed: Result<serde_json::Map<String, Value>, _> = serde_json::from_str(line);
            assert!(parsed.is_ok(), "not a JSON object ({parsed:?}): {line}");
        }
        run
    }

    /// The job's command, ready to spawn: emulator, subscription and database set.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut command = job_command(args);
        command
            .env("PUBSUB_EMULATOR_HOST", &self.emulator)
            .env("PUBSUB_SUBSCRIPTION", &self.subscription)
            .env("PUBSUB_PROJECT", PROJECT)
            .env("DATABASE_URL", self.database_url())
            .env("PUBSUB_SERVICE_ACCOUNT", fake_key())
            // Every scenario runs at the most verbose level, so that the leak
            // check covers every log line the job and its crates can write.
            .env("RUST_LOG", "trace")
            // The tests share one emulator on two cores: a Pull can take longer
            // than the production default before the first message arrives.
            .env("PULL_TIMEOUT_MS", "2000");
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    /// Drops the database, the subscription and the topic. Called at the end of
    /// each test; a failed test leaves them behind for inspection.
    pub async fn cleanup(self) {
        let _ = self
            .client
            .subscription(&self.subscription)
            .delete(None)
            .await;
        let _ = self.client.topic(&self.topic).delete(None).await;
        let extra_users = std::mem::take(&mut *self.extra_users.lock().unwrap());
        match self.db {
            Db::MariaDb(pool) => {
                let mut conn = pool.get_conn().await.unwrap();
                conn.query_drop(format!("DROP DATABASE `{}`", self.database))
                    .await
                    .unwrap();
                for user in extra_users {
                    conn.query_drop(format!("DROP USER '{user}'@'%'"))
                        .await
                        .unwrap();
                }
                conn.query_drop(format!("DROP USER '{}'@'%'", self.user))
                    .await
                    .unwrap();
                drop(conn);
                pool.disconnect().await.unwrap();
            }
            Db::Postgres(client) => {
                drop(client);
                let mut roles = extra_users;
                roles.push(self.user);
                engine::drop_postgres_world(&self.root_url, &self.database, &roles).await;
            }
        }
    }

    /// A root connection to this test's database of its own, not the pool's:
    /// dropping it closes it, so the server rolls back whatever transaction
    /// it held, and no pooled connection keeps it.
    pub async fn own_connection(&self) -> mysql_async::Conn {
        assert_eq!(self.engine, Engine::MariaDb, "own_connection is MariaDB's");
        let url = url_on(&self.root_url, "root", "", &self.database);
        mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
            .await
            .unwrap()
    }

    /// Holds a lock on a user's row (every user's with `None`) in another
    /// transaction (an [own connection](TestEnv::own_connection)) until the
    /// returned connection is dropped.
    pub async fn lock_rows(&self, id: Option<u64>) -> Held {
        let filter = id.map_or(String::new(), |id| format!(" WHERE id = {id}"));
        let lock = format!("SELECT id FROM users{filter} FOR UPDATE");
        match self.engine {
            Engine::MariaDb => {
                let mut conn = self.own_connection().await;
                conn.query_drop("START TRANSACTION").await.unwrap();
                conn.query_drop(lock).await.unwrap();
                Held::MariaDb(conn)
            }
            Engine::Postgres => {
                let client = self.postgres_connection().await;
                client.batch_execute("BEGIN").await.unwrap();
                client.batch_execute(&lock).await.unwrap();
                Held::Postgres(client)
            }
        }
    }

    /// A root connection to this test's PostgreSQL database of its own:
    /// dropping it closes it, and the server rolls back what it held.
    pub async fn postgres_connection(&self) -> tokio_postgres::Client {
        assert_eq!(self.engine, Engine::Postgres);
        let url = engine::postgres_url_on(&self.root_url, "postgres", "", &self.database);
        engine::postgres_connect(&url).await
    }

    /// Waits until the job's DELETE runs in this test's database (blocked on
    /// a lock, in the tests that use this).
    pub async fn wait_for_delete(&self) {
        let query = match self.engine {
            Engine::MariaDb => format!(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE DB = '{}' AND INFO LIKE 'DELETE FROM%'",
                self.database
            ),
            Engine::Postgres => format!(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = '{}' AND state = 'active' \
                 AND pid <> pg_backend_pid() AND query ILIKE '%DELETE FROM%'",
                self.database
            ),
        };
        let every = Duration::from_millis(20);
        self.wait_for_number("the job's DELETE to start", &query, every, |n| n > 0)
            .await;
    }

    /// Adds a database user with `privileges` on `table` of this test's
    /// database (`*` for every table; `USAGE` for none), and returns its URL.
    pub async fn create_user(
        &self,
        name: &str,
        password: &str,
        privileges: &str,
        table: &str,
    ) -> String {
        let user = format!("{name}{}", &self.user[1..]);
        match self.engine {
            Engine::MariaDb => {
                self.sql(&format!(
                    "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
                ))
                .await;
                self.sql(&format!(
                    "GRANT {privileges} ON `{}`.{table} TO '{user}'@'%'",
                    self.database
                ))
                .await;
            }
            Engine::Postgres => {
                let on = match table {
                    "*" => "ALL TABLES IN SCHEMA public".to_owned(),
                    table => format!("TABLE {table}"),
                };
                self.sql(&format!(
                    "CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'"
                ))
                .await;
                // MariaDB's USAGE is no privilege at all: no GRANT here.
                if privileges != "USAGE" {
                    self.sql(&format!("GRANT {privileges} ON {on} TO \"{user}\""))
                        .await;
                }
            }
        }
        let url = self.database_url_as(&user, password);
        self.extra_users.lock().unwrap().push(user);
        url
    }

    /// Runs SQL in this test's database.
    pub async fn sql(&self, statement: &str) {
        self.db.sql(statement).await;
    }

    /// Runs each statement in turn (a trigger and its function, say).
    pub async fn sql_all(&self, statements: &[String]) {
        for statement in statements {
            self.sql(statement).await;
        }
    }

    /// A number from this test's database (0 for no row).
    pub async fn number(&self, query: &str) -> u64 {
        self.db.number(query).await
    }

    /// The first column of every row of `query`, as text.
    pub async fn texts(&self, query: &str) -> Vec<String> {
        self.db.texts(query).await
    }

    /// Every row of `query`, each value as text.
    pub async fn rows(&self, query: &str) -> Vec<Vec<String>> {
        self.db.rows(query).await
    }

    /// Waits (30 s at most) until `query`'s [number](TestEnv::number) is one
    /// that `wanted` accepts, reading it every `every`: `what` has happened.
    pub async fn wait_for_number(
        &self,
        what: &str,
        query: &str,
        every: Duration,
        wanted: impl Fn(u64) -> bool,
    ) {
        let limit = Duration::from_secs(30);
        wait::poll_until(what, limit, every, async || {
            wanted(self.number(query).await).then_some(())
        })
        .await
    }

    /// Waits until the job (connected as the test's user) runs a `verb`
    /// statement on `table` (blocked on a lock, in the tests that use this).
    pub async fn wait_for_statement(&self, verb: &str, table: &str) {
        let query = match self.engine {
            Engine::MariaDb => format!(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE DB = '{}' AND USER = '{}' AND INFO LIKE '%{verb}%{table}%'",
                self.database, self.user
            ),
            Engine::Postgres => format!(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = '{}' AND usename = '{}' AND state = 'active' \
                 AND query ILIKE '%{verb}%{table}%'",
                self.database, self.user
            ),
        };
        let what = format!("the job to run {verb} on {table}");
        self.wait_for_number(&what, &query, Duration::from_millis(20), |n| n > 0)
            .await;
    }

    /// Waits until the server has closed every connection of the job, so that
    /// its transaction is over.
    pub async fn wait_until_disconnected(&self) {
        let query = match self.engine {
            Engine::MariaDb => format!(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{}' AND USER = '{}'",
                self.database, self.user
            ),
            Engine::Postgres => format!(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{}' AND usename = '{}'",
                self.database, self.user
            ),
        };
        let what = "the server to close the killed job's connections";
        self.wait_for_number(what, &query, Duration::from_millis(20), |n| n == 0)
            .await;
    }
}

/// The job's binary with a clean environment: none of the caller's settings leak in.
pub fn job_command(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_user-purge"));
    // Every variable the binary reads, from clap's own declarations, and the
    // ones that are not flags (the Google auth crate's, the log filter).
    let settings = user_purge::config::cli::settings();
    let variables = settings.iter().filter_map(|s| s.env.as_deref());
    let google = [
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_APPLICATION_CREDENTIALS_JSON",
        "GCE_METADATA_HOST",
    ];
    for key in variables.chain(google).chain(["RUST_LOG"]) {
        command.env_remove(key);
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.kill_on_drop(true);
    command
}

/// A URL for `database` as `user` on the server that `root_url` points at.
pub fn url_on(root_url: &str, user: &str, password: &str, database: &str) -> String {
    let host = mysql_async::Opts::from_url(root_url).unwrap();
    format!(
        "mysql://{user}:{password}@{}:{}/{database}",
        host.ip_or_hostname(),
        host.tcp_port()
    )
}

pub async fn pubsub_client_on(host: &str) -> Client {
    let config = ClientConfig {
        project_id: Some(PROJECT.into()),
        environment: Environment::Emulator(host.to_owned()),
        ..ClientConfig::default()
    };
    Client::new(config)
        .await
        .expect("cannot reach the Pub/Sub emulator")
}

/// A transaction of the test's own holding locks, rolled back when dropped
/// (the connection closes).
pub enum Held {
    MariaDb(mysql_async::Conn),
    Postgres(tokio_postgres::Client),
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(output: std::process::Output) -> Run {
        Run {
            code: output.status.code(),
            signal: output.status.signal(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// How long a test waits for the log line it expects from a running job.
pub const LOG_LINE_LIMIT: Duration = Duration::from_secs(90);

/// A job running in the background. A task reads its log as it is written,
/// so that the test can wait for a line, and the job never blocks on a full pipe.
pub struct Job {
    child: tokio::process::Child,
    /// The log's lines, in order, as the reader gets them.
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Every line taken from `lines` so far.
    log: Vec<String>,
}

impl Job {
    /// Spawns this command (the job's, as [`TestEnv::command`] builds it).
    pub fn spawn(mut command: tokio::process::Command) -> Job {
        Job::new(command.spawn().unwrap())
    }

    fn new(mut child: tokio::process::Child) -> Job {
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut line = Vec::new();
            while stderr
                .read_until(b'\n', &mut line)
                .await
                .is_ok_and(|n| n > 0)
            {
                let text = String::from_utf8_lossy(&line);
                if sender.send(text.trim_end_matches('\n').to_owned()).is_err() {
                    return;
                }
                line.clear();
            }
        });
        Job {
            child,
            lines,
            log: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the job was already waited for")
    }

    /// Sends a signal to the job.
    pub fn signal(&self, signal: i32) {
        private::signal(self.pid(), signal);
    }

    /// Reads the log until a line contains `marker`, and returns that line;
    /// `None` when the log ended first (the job exited). Gives up (panics)
    /// after [`LOG_LINE_LIMIT`].
    pub async fn wait_for(&mut self, marker: &str) -> Option<String> {
        self.next_line(|line| line.contains(marker)).await
    }

    /// Reads the log until a line satisfies `wanted`; false if the job ended
    /// first. Gives up (panics) after [`LOG_LINE_LIMIT`].
    pub async fn wait_until(&mut self, wanted: impl FnMut(&str) -> bool) -> bool {
        self.next_line(wanted).await.is_some()
    }

    async fn next_line(&mut self, mut wanted: impl FnMut(&str) -> bool) -> Option<String> {
        let read = async {
            while let Some(line) = self.lines.recv().await {
                let found = wanted(&line);
                self.log.push(line);
                if found {
                    return self.log.last().cloned();
                }
            }
            None
        };
        tokio::time::timeout(LOG_LINE_LIMIT, read)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no such log line within {LOG_LINE_LIMIT:?}:\n{}",
                    self.log.join("\n")
                )
            })
    }

    /// Waits for `event`: true when it came, false when the job ended first.
    pub async fn until(&mut self, event: impl Future<Output = ()>) -> bool {
        tokio::select! {
            _ = event => true,
            _ = self.child.wait() => false,
        }
    }

    /// The log so far.
    pub fn log(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }

    /// SIGKILL; true if the job was still running to be killed.
    pub async fn kill(mut self) -> bool {
        let _ = self.child.start_kill();
        let status = self.child.wait().await.unwrap();
        status.code().is_none()
    }

    /// Like [`Job::finish`], but the job must exit within `limit`; if it does
    /// not, it is killed and the test fails with its log.
    pub async fn finish_within(mut self, env: &TestEnv, limit: Duration) -> Run {
        if tokio::time::timeout(limit, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
            while let Some(line) = self.lines.recv().await {
                self.log.push(line);
            }
            panic!(
                "the job did not exit within {limit:?}; its log:\n{}",
                self.log.join("\n")
            );
        }
        self.finish(env).await
    }

    /// Waits for the job to exit, and returns what it did, its whole log
    /// included, checked for secrets like every run.
    pub async fn finish(mut self, env: &TestEnv) -> Run {
        let mut output = self.child.wait_with_output().await.unwrap();
        while let Some(line) = self.lines.recv().await {
            self.log.push(line);
        }
        let mut stderr = self.log.join("\n");
        stderr.push('\n');
        output.stderr = stderr.into_bytes();
        env.checked(output)
    }
}

impl Run {
    /// The one summary line on stdout, parsed.
    pub fn summary(&self) -> HashMap<String, Value> {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "stdout must be exactly one line; it was {:?}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        serde_json::from_str(lines[0])
            .unwrap_or_else(|e| panic!("the summary is not JSON ({e}): {}", lines[0]))
    }

    /// One numeric field of the summary.
    pub fn count(&self, field: &str) -> u64 {
        match self.summary().get(field) {
            Some(value) => value
                .as_u64()
                .unwrap_or_else(|| panic!("{field} is not a number: {}", self.stdout)),
            None => panic!(
                "the summary has no `{field}`: {}\nstderr:\n{}",
                self.stdout, self.stderr
            ),
        }
    }

    pub fn outcome(&self) -> String {
        self.summary()["outcome"].as_str().unwrap().to_owned()
    }

    /// Whether `text` shows anywhere in what the run printed.
    pub fn shows(&self, text: &str) -> bool {
        self.stdout.contains(text) || self.stderr.contains(text)
    }

    /// Asserts that none of `secrets` shows in what the run printed.
    pub fn assert_no_secret(&self, secrets: &[&str]) -> &Run {
        for secret in secrets {
            assert!(
                !self.shows(secret),
                "a secret ({secret}) leaked into the output:\n{}{}",
                self.stdout,
                self.stderr
            );
        }
        self
    }

    /// Asserts that the log has `text`, showing the log when it does not.
    pub fn assert_logged(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "no {text:?} in the log:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts the exit code, showing the log when it is not the expected one.
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "stdout: {}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Decodes drained payloads into (event type, user id) for comparison; payloads
/// that do not decode become (-1, 0).
pub fn decoded(payloads: &[Vec<u8>]) -> Vec<(i32, u64)> {
    let mut events: Vec<(i32, u64)> = payloads
        .iter()
        .map(|data| match event::classify(data) {
            Ok(event::Event::Removed(id)) => (event_type::REMOVED, id),
            _ => (-1, 0),
        })
        .collect();
    events.sort_unstable();
    events
}

/// Removals of these ids, sorted as [`decoded`] returns them.
pub fn removals(ids: impl IntoIterator<Item = u64>) -> Vec<(i32, u64)> {
    let mut events: Vec<(i32, u64)> = ids
        .into_iter()
        .map(|id| (event_type::REMOVED, id))
        .collect();
    events.sort_unstable();
    events
}

/// The users named (`user <id>`) by log lines that also carry `reason` and
/// `table`: the job's refusal lines.
pub fn users_refused_in_log(stderr: &str, table: &str, reason: &str) -> BTreeSet<u64> {
    let mut named = BTreeSet::new();
    for line in stderr
        .lines()
        .filter(|l| l.contains(reason) && l.contains(table))
    {
        let mut rest = line;
        while let Some(at) = rest.find("user ") {
            rest = &rest[at + "user ".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(id) = digits.parse() {
                named.insert(id);
            }
        }
    }
    named
}

/// Fails with every case's failure at once, if any case failed.
pub fn assert_no_failures(failures: &[String], cases: usize) {
    assert!(
        failures.is_empty(),
        "{} of {cases} cases broke the promise:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
