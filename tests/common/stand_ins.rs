//! Bad configuration, refused before anything is contacted: two listening
//! sockets of this process stand in for the emulator and the database, and
//! each run gets settings that would work but for the one under test. After
//! the run, neither socket may have seen a connection. So these checks need
//! neither the emulator nor MariaDB.

use std::net::TcpListener;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use super::{KEY_MARKER, Run, assert_no_failures, fake_key, job_command};

/// In the stand-in database URL, so that any output showing it is caught.
pub const PASSWORD: &str = "Pw-stand-in-7Qx";

/// A listening socket on a free port, which never blocks to accept.
pub fn listener() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

/// Two sockets standing in for the services: a run that contacts either one
/// leaves a connection behind in its backlog.
pub struct StandIns {
    pub emulator: TcpListener,
    pub database: TcpListener,
}

impl StandIns {
    pub fn new() -> StandIns {
        StandIns {
            emulator: listener(),
            database: listener(),
        }
    }

    pub fn emulator_host(&self) -> String {
        self.emulator.local_addr().unwrap().to_string()
    }

    /// A valid database URL on the stand-in, with the password.
    pub fn url(&self) -> String {
        self.url_with("mysql", "/app")
    }

    pub fn url_with(&self, scheme: &str, rest: &str) -> String {
        let port = self.database.local_addr().unwrap().port();
        format!("{scheme}://purger:{PASSWORD}@127.0.0.1:{port}{rest}")
    }

    /// Settings that work: the emulator, a full subscription name, the URL,
    /// a key whose material must not show either, and every log line on.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PUBSUB_EMULATOR_HOST", self.emulator_host()),
            (
                "PUBSUB_SUBSCRIPTION",
                "projects/test-project/subscriptions/purge-sub".into(),
            ),
            ("DATABASE_URL", self.url()),
            ("PUBSUB_SERVICE_ACCOUNT", fake_key()),
            ("RUST_LOG", "trace".into()),
        ]
    }

    /// Waits for `job`, run with these settings, to connect to one of the
    /// `wanted` stand-ins ("the emulator", "the database"), and returns which.
    /// Fails if the job exits first, or has not within 20 s.
    pub async fn wait_for_contact(
        &self,
        job: &mut tokio::process::Child,
        wanted: &[&'static str],
    ) -> &'static str {
        let listen = |listener: &TcpListener| {
            tokio::net::TcpListener::from_std(listener.try_clone().unwrap()).unwrap()
        };
        let (emulator, database) = (listen(&self.emulator), listen(&self.database));
        let contact = async {
            loop {
                let service = tokio::select! {
                    _ = emulator.accept() => "the emulator",
                    _ = database.accept() => "the database",
                };
                if wanted.contains(&service) {
                    return service;
                }
            }
        };
        let limit = Duration::from_secs(20);
        tokio::select! {
            contacted = tokio::time::timeout(limit, contact) => contacted
                .unwrap_or_else(|_| panic!("the job contacted none of {wanted:?} within {limit:?}")),
            status = job.wait() => {
                let mut stderr = String::new();
                if let Some(mut pipe) = job.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr).await;
                }
                panic!("the job ended ({status:?}) before it contacted any of {wanted:?}: {stderr}")
            }
        }
    }

    /// Which of the two saw a connection since the last call.
    pub fn contacted(&self) -> Vec<&'static str> {
        let mut contacted = Vec::new();
        while self.emulator.accept().is_ok() {
            contacted.push("the emulator");
        }
        while self.database.accept().is_ok() {
            contacted.push("the database");
        }
        contacted
    }

    /// The job's command with these arguments and the settings of
    /// [`StandIns::env`], and none of the caller's.
    pub fn command(&self, args: &[impl AsRef<str>]) -> tokio::process::Command {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let mut command = job_command(&args);
        for key in ["DATABASE_CA_FILE", "ERASURE_MAP", "ERASURE_RECORD"] {
            command.env_remove(key);
        }
        for (key, value) in self.env() {
            command.env(key, value);
        }
        command
    }
}

/// A configuration that must be refused with exit 2.
pub struct Bad {
    /// What is wrong, for the failure message.
    pub what: String,
    pub args: Vec<String>,
    /// Variables to set (`Some`) or to remove (`None`) on top of the valid ones.
    pub vars: Vec<(&'static str, Option<String>)>,
    /// What the error line must contain, exactly.
    pub exact: Vec<String>,
    /// Groups of words: the error line must contain, for each group, one of
    /// its words (case-insensitively).
    pub names: Vec<Vec<String>>,
}

impl Bad {
    pub fn new(what: impl Into<String>) -> Bad {
        Bad {
            what: what.into(),
            args: Vec::new(),
            vars: Vec::new(),
            exact: Vec::new(),
            names: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Bad {
        self.args.push(arg.into());
        self
    }

    pub fn set(mut self, key: &'static str, value: impl Into<String>) -> Bad {
        self.vars.push((key, Some(value.into())));
        self
    }

    pub fn unset(mut self, key: &'static str) -> Bad {
        self.vars.push((key, None));
        self
    }

    /// The error line must contain this, as it is.
    pub fn contains(mut self, text: impl Into<String>) -> Bad {
        self.exact.push(text.into());
        self
    }

    /// The error line must contain one of these, in any case.
    pub fn names(mut self, any_of: &[&str]) -> Bad {
        self.names
            .push(any_of.iter().map(|s| s.to_string()).collect());
        self
    }

    /// The error line must name entry `n` (1-based, in file order).
    pub fn entry(mut self, n: usize) -> Bad {
        self.names
            .push(vec![format!("entry {n}"), format!("entry #{n}")]);
        self
    }

    /// The same, as `user-purge check ...`.
    pub fn in_check(mut self) -> Bad {
        self.what = format!("check: {}", self.what);
        self.args.insert(0, "check".to_owned());
        self
    }
}

/// Runs each case and collects every way it broke the promise, so that one
/// failure shows them all: exit 2, nothing on stdout, one `error: ` line
/// naming what it must, no other line but clap's pointers, no secret,
/// nothing contacted.
pub async fn refuse_all(stand_ins: &StandIns, cases: Vec<Bad>) {
    let mut failures = Vec::new();
    for case in &cases {
        let mut command = stand_ins.command(&case.args);
        for (key, value) in &case.vars {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let run = Run::from(command.output().await.unwrap());
        let (stdout, stderr) = (&run.stdout, &run.stderr);
        let mut wrong = Vec::new();
        if run.code != Some(2) {
            wrong.push(format!("exit {:?}, not 2", run.code));
        }
        if !stdout.is_empty() {
            wrong.push("something on stdout".to_owned());
        }
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| line.to_lowercase().contains("error"))
            .collect();
        match errors[..] {
            [line] if line.starts_with("error: ") => {
                for text in &case.exact {
                    if !line.contains(text.as_str()) {
                        wrong.push(format!("the error line does not name {text:?}"));
                    }
                }
                let lower = line.to_lowercase();
                for group in &case.names {
                    if !group
                        .iter()
                        .any(|word| lower.contains(&word.to_lowercase()))
                    {
                        wrong.push(format!("the error line names none of {group:?}"));
                    }
                }
            }
            _ => wrong.push(format!("not one `error: ` line but {}", errors.len())),
        }
        // Besides that line, only clap's pointers: no log line, no second
        // message.
        let others = stderr.lines().filter(|line| {
            !(line.is_empty()
                || line.starts_with("error: ")
                || line.starts_with("Usage: ")
                || line.trim_start().starts_with("user-purge ")
                || line.starts_with("  tip: ")
                || line.starts_with("  [possible values: ")
                || *line == "For more information, try '--help'.")
        });
        if let Some(line) = others.into_iter().next() {
            wrong.push(format!("an unexpected line {line:?}"));
        }
        for secret in [PASSWORD, KEY_MARKER] {
            if run.shows(secret) {
                wrong.push(format!("shows {secret}"));
            }
        }
        for service in stand_ins.contacted() {
            wrong.push(format!("contacted {service}"));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n  args {:?}\n  stdout {stdout:?}\n  stderr {stderr:?}",
                case.what,
                wrong.join("; "),
                case.args
            ));
        }
    }
    assert_no_failures(&failures, cases.len());
}
