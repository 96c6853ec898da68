//! Private instances of the services, for tests that stop, freeze or
//! reconfigure them: a MariaDB on its own port and data directory, and a
//! Pub/Sub emulator on its own port. Each is stopped by its PID when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::free_port;
use super::wait::until_listening;

/// Sends a signal to one process.
pub fn signal(pid: u32, signal: i32) {
    unsafe { libc::kill(pid as i32, signal) };
}

/// Waits until the server `child` listens on `port`; if it exits first,
/// fails with its log.
async fn started(port: u16, what: &str, child: &mut Child, log: &std::path::Path) {
    until_listening(port, what, || {
        let status = child.try_wait().ok()??;
        let log = std::fs::read_to_string(log).unwrap_or_default();
        Some(format!("{status}: {log}"))
    })
    .await
}

/// A MariaDB server of the test's own.
pub struct PrivateMariaDb {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl PrivateMariaDb {
    /// Initialises a data directory and starts the server; `extra` are more
    /// server options (TLS, say).
    pub async fn start(extra: &[String]) -> PrivateMariaDb {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("user-purge-mariadb-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A tmpdir of its own: bootstraps that share /tmp collide on their
        // temporary tables' names and fail at random when tests run at once.
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let output = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ])
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .stdin(Stdio::null())
            .output()
            .expect("mariadb-install-db must be installed");
        assert!(
            output.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let mut db = PrivateMariaDb {
            port,
            dir,
            child: None,
            extra: extra.to_vec(),
        };
        db.restart().await;
        db
    }

    /// Starts the server again on the same data directory and port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = self.dir.join("error.log");
        let mut child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!("--socket={}", self.dir.join("sock").display()))
            .arg(format!("--tmpdir={}", self.dir.join("tmp").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-name-resolve",
            ])
            .arg(format!("--log-error={}", log.display()))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        started(self.port, "mariadbd", &mut child, &log).await;
        self.child = Some(child);
    }

    /// Kills the server at once (SIGKILL), as a crash or a lost host would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "mysql://{user}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Pub/Sub emulator of the test's own.
pub struct PrivateEmulator {
    pub host: String,
    child: Child,
}

impl PrivateEmulator {
    pub async fn start() -> PrivateEmulator {
        let port = free_port();
        let (mut command, log) = super::emulator_command(port);
        let mut child = command.spawn().unwrap();
        started(port, "the Pub/Sub emulator", &mut child, &log).await;
        PrivateEmulator {
            host: format!("127.0.0.1:{port}"),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes the emulator (SIGSTOP): it keeps its messages but answers nothing.
    pub fn freeze(&self) {
        signal(self.pid(), libc::SIGSTOP);
    }

    pub fn thaw(&self) {
        signal(self.pid(), libc::SIGCONT);
    }
}

impl Drop for PrivateEmulator {
    fn drop(&mut self) {
        self.thaw();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus Pushgateway of the test's own (Debian's prometheus-pushgateway).
pub struct PrivatePushgateway {
    pub url: String,
    child: Child,
}

impl PrivatePushgateway {
    pub async fn start() -> PrivatePushgateway {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("user-purge-pushgateway-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect(
                "prometheus-pushgateway must be installed (apt-get install prometheus-pushgateway)",
            );
        started(port, "prometheus-pushgateway", &mut child, &log).await;
        PrivatePushgateway {
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    /// What the gateway serves at `path`.
    pub fn get(&self, path: &str) -> String {
        ureq::get(&format!("{}{path}", self.url))
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap()
    }

    /// The value of a metric of the user-purge job, as the gateway serves it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metric_of("user-purge", name)
    }

    /// The value of a metric pushed by `job`.
    pub fn metric_of(&self, job: &str, name: &str) -> Option<f64> {
        self.get("/metrics")
            .lines()
            .filter(|line| {
                line.starts_with(&format!("{name}{{")) && line.contains(&format!("job=\"{job}\""))
            })
            .find_map(|line| line.rsplit(' ').next()?.parse().ok())
    }
}

impl Drop for PrivatePushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
