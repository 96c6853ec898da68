//! user-purge erases removed users: one run pulls the user service's events
//! from a Pub/Sub subscription, erases the users named by valid USER_REMOVED
//! events from MySQL or PostgreSQL (one table, or every table of an erasure
//! map) in one transaction per round, and only after the commit acknowledges
//! the messages.
//!
//! This is the module map, kept here only. The folders are the run, the two
//! seams with what is behind them, the configuration, and the operator's
//! commands:
//!
//! - [`run`]: one run, round after round: receive → plan → erase → settle.
//!   - [`run::plan`]: pure bookkeeping: users to erase, messages to ack or hand back.
//!   - [`run::erase`]: one transaction that isolates refused users by bisection.
//!   - `run::receive`: one round's Pulls, and when the subscription is drained.
//!   - `run::lease`: acknowledging, handing back, and renewing the leases.
//! - [`pubsub`]: the `Subscription` seam (pull, acknowledge, set a deadline).
//!   - [`pubsub::google`]: it on Google Cloud Pub/Sub (gcloud-pubsub), and the
//!     admin client of the operator's commands.
//! - [`store`]: the `Store` seam (begin, erase under a savepoint, commit).
//!   - [`store::sql`]: the statements' text, quoting and literals (pure).
//!   - [`store::schema`]: the database's facts, checked against the map (pure).
//!   - [`store::engine`]: the store over any engine's `Session`: the rounds'
//!     statements, chunks, replica waits and what `verify` reads.
//!   - [`store::mysql`]: the session on MySQL / MariaDB (mysql_async):
//!     errors sorted by what happens next, the schema read, the URL.
//!   - [`store::postgres`]: the session on PostgreSQL (tokio-postgres, rustls,
//!     webpki-roots): the same, by SQLSTATE and from `pg_catalog`.
//! - [`config`]: the typed configuration.
//!   - [`config::cli`]: the flags and their environment variables (clap).
//!   - [`config::command`]: the command line validated once into a command.
//!   - [`config::map`]: the erasure map (toml); SQL identifiers.
//!   - [`config::secret`]: values that never print, and redaction.
//! - [`ops`]: the operator's commands: replay, snapshots, drill publishing.
//!   - [`ops::check`]: what the map misses, and the grants it needs (pure).
//!   - [`ops::metrics`]: the run's gauges, pushed to a Pushgateway (ureq).
//! - [`event`]: the user service's protobuf schema (prost) and what a message means.
//! - [`outcome`]: exit codes, outcomes, the exit budget, the JSON lines on
//!   stdout and the JSON log records (serde_json).
//! - [`logging`]: the log on stderr, text or JSON for Cloud Logging (env_logger).
//!
//! No module imports one that imports it back (`tests/architecture.rs`).
//! - [`timestamp`]: RFC 3339, for log lines and `replay --since` (jiff).
//!
//! `main.rs` sets up logging and signals, calls [`run::run`] or an operator's
//! command, prints the JSON line and returns the exit code.
//!
//! Each crate that touches the world or parses input lives in one module: clap
//! in `config::cli`, prost in `event`, gcloud-* in `pubsub::google`,
//! mysql_async in `store::mysql`, tokio-postgres (with its rustls) in
//! `store::postgres`, serde_json in `outcome`, toml in
//! `config::map`, ureq in `ops::metrics`, jiff in `timestamp`, env_logger in
//! `logging`. Three are vocabulary shared by all: tokio (the runtime; `run`
//! orchestrates with it), anyhow (the error the seams return) and log (the
//! logging facade).

pub mod config;
pub mod event;
pub mod logging;
pub mod ops;
pub mod outcome;
pub mod pubsub;
pub mod run;
pub mod store;
pub mod timestamp;
