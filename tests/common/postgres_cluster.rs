//! Private PostgreSQL 15 servers, for the tests that need a server of their
//! own: a primary and a streaming replica of it (`replication`), or one that
//! speaks TLS with a certificate the test made. Each is a cluster that
//! `initdb` (or `pg_basebackup -R`, for a replica) writes into a temporary
//! directory, run as the `postgres` OS user (PostgreSQL refuses to run as
//! root) on a free port, its unix socket in that directory, and stopped by
//! its PID when dropped.
//!
//! Root (`postgres`) connects without a password, over TCP from 127.0.0.0/8
//! and for replication; every other role must give its password
//! (SCRAM), so that a test's run shows the job's account really logged in.
//! A TLS server serves the certificates that
//! [`make_certificates`](super::scratch::make_certificates) makes, and is
//! checked with its CA, or the unrelated one.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::free_port;
use super::wait::{poll_until, until_listening};

/// Where Debian's PostgreSQL 15 keeps its programs, unless
/// `TEST_POSTGRES_BIN` names another directory.
fn program(name: &str) -> PathBuf {
    let dir =
        std::env::var("TEST_POSTGRES_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    Path::new(&dir).join(name)
}

/// The `postgres` OS user's uid and gid.
fn postgres_account() -> (u32, u32) {
    let name = c"postgres";
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !entry.is_null(),
        "no `postgres` OS user: install PostgreSQL 15 (apt-get install postgresql)"
    );
    let entry = unsafe { &*entry };
    (entry.pw_uid, entry.pw_gid)
}

/// A command that runs `name` as the `postgres` OS user, in `dir`.
fn as_postgres(name: &str, dir: &Path) -> Command {
    let (uid, gid) = postgres_account();
    let mut command = Command::new(program(name));
    command
        .uid(uid)
        .gid(gid)
        .current_dir(dir)
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to its end; it must succeed.
fn run(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (is PostgreSQL 15 installed?)"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Makes `path` the `postgres` OS user's.
fn give_to_postgres(path: &Path) {
    let (uid, gid) = postgres_account();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// Who may connect how: root without a password, every other role with its
/// password, over TLS only when `tls_only`.
fn hba(tls_only: bool) -> String {
    let mut lines = vec![
        "local all all trust",
        "host all postgres 127.0.0.0/8 trust",
        "host replication postgres 127.0.0.0/8 trust",
    ];
    match tls_only {
        true => lines.extend([
            "hostssl all all 127.0.0.0/8 scram-sha-256",
            "host all all 127.0.0.0/8 reject",
        ]),
        false => lines.push("host all all 127.0.0.0/8 scram-sha-256"),
    }
    lines.join("\n") + "\n"
}

/// A PostgreSQL server of the test's own.
pub struct PrivatePostgres {
    pub port: u16,
    /// The cluster's directory: `data`, the socket, `server.log`.
    pub dir: PathBuf,
    child: Option<Child>,
    /// `-c name=value` settings beyond the defaults.
    settings: Vec<String>,
}

impl PrivatePostgres {
    /// Initialises a cluster and starts it; `settings` are more `name=value`
    /// server settings.
    pub async fn start(settings: &[String]) -> PrivatePostgres {
        let mut server = PrivatePostgres::init(settings, false);
        server.launch().await;
        server
    }

    /// A server with `ssl=on` and this certificate and key (PEM), which
    /// takes every role but root over TLS only, on 127.0.0.1 and 127.0.0.2
    /// (an address its certificate may not name).
    pub async fn start_tls(certificate: &Path, key: &Path) -> PrivatePostgres {
        let mut server = PrivatePostgres::init(&[], true);
        for (from, to) in [(certificate, "server.pem"), (key, "server.key")] {
            let copy = server.dir.join(to);
            std::fs::copy(from, &copy).unwrap();
            give_to_postgres(&copy);
            // PostgreSQL refuses a key that others may read.
            std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        server.settings.extend([
            "ssl=on".to_owned(),
            format!("ssl_cert_file={}", server.dir.join("server.pem").display()),
            format!("ssl_key_file={}", server.dir.join("server.key").display()),
            "listen_addresses=127.0.0.1,127.0.0.2".to_owned(),
        ]);
        server.launch().await;
        server
    }

    /// A streaming replica of `primary`, from a base backup with `-R` (its
    /// `standby.signal` and `primary_conninfo`), started with `settings`.
    pub async fn replica_of(primary: &PrivatePostgres, settings: &[String]) -> PrivatePostgres {
        let (port, dir) = PrivatePostgres::directory();
        let mut backup = as_postgres("pg_basebackup", &dir);
        backup
            // A fast checkpoint: a spread one takes minutes once there is data.
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ])
            .arg("-p")
            .arg(primary.port.to_string())
            .arg("-D")
            .arg(dir.join("data"));
        run(backup, "pg_basebackup");
        let mut replica = PrivatePostgres {
            port,
            dir,
            child: None,
            settings: settings.to_vec(),
        };
        replica.launch().await;
        replica
    }

    /// A new directory, the `postgres` user's, for a server on a free port.
    fn directory() -> (u16, PathBuf) {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("user-purge-postgres-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        give_to_postgres(&dir);
        (port, dir)
    }

    /// `initdb`, and who may connect how.
    fn init(settings: &[String], tls_only: bool) -> PrivatePostgres {
        let (port, dir) = PrivatePostgres::directory();
        let mut initdb = as_postgres("initdb", &dir);
        initdb
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .arg("-D")
            .arg(dir.join("data"));
        run(initdb, "initdb");
        let hba_file = dir.join("data/pg_hba.conf");
        std::fs::write(&hba_file, hba(tls_only)).unwrap();
        give_to_postgres(&hba_file);
        PrivatePostgres {
            port,
            dir,
            child: None,
            settings: settings.to_vec(),
        }
    }

    /// Starts the server on its data directory and port, and waits until it
    /// answers queries.
    async fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = self.dir.join("server.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut command = as_postgres("postgres", &self.dir);
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            // Nothing writes but the test: its WAL is all there is to replay.
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "autovacuum=off"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let mut child = command.spawn().unwrap();
        until_listening(self.port, "postgres", || {
            let status = child.try_wait().ok()??;
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            Some(format!("{status}: {log}"))
        })
        .await;
        self.child = Some(child);
        // It listens before it takes connections ("the database system is
        // starting up").
        let url = self.root_url("postgres");
        poll_until(
            &format!(
                "the PostgreSQL server on port {} to take queries",
                self.port
            ),
            Duration::from_secs(60),
            Duration::from_millis(100),
            async || {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(connection);
                client.simple_query("SELECT 1").await.ok().map(drop)
            },
        )
        .await;
    }

    /// Stops the server at once (SIGQUIT: an immediate shutdown, which ends
    /// its backends too), and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        super::private::signal(child.id(), libc::SIGQUIT);
        for _ in 0..100 {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Root's URL for `database`, over TCP without TLS.
    pub fn root_url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// A root connection of its own to `database`.
    pub async fn root(&self, database: &str) -> tokio_postgres::Client {
        super::engine::postgres_connect(&self.root_url(database)).await
    }

    /// Runs SQL as root in `database`.
    pub async fn sql(&self, database: &str, statement: &str) {
        self.root(database)
            .await
            .batch_execute(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement} on port {}: {e:?}", self.port));
    }

    /// The first column of the first row of `query`, as root in
    /// `database`, as text (`None` for NULL or no row).
    pub async fn text(&self, database: &str, query: &str) -> Option<String> {
        let messages = self
            .root(database)
            .await
            .simple_query(query)
            .await
            .unwrap_or_else(|e| panic!("{query} on port {}: {e:?}", self.port));
        messages.into_iter().find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
            _ => None,
        })?
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
