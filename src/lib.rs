//! user-purge erases removed users: one run pulls the user service's events
//! from a Pub/Sub subscription, erases the users named by valid USER_REMOVED
//! events from MySQL (one table, or every table of an erasure map) in one
//! transaction per round, and only after the commit acknowledges the messages.
//!
//! The modules, in the order a run meets them:
//!
//! - [`cli`]: flags and environment (clap), validated once into a [`config::Config`].
//! - [`config`]: the typed configuration.
//! - [`secret`]: values that never print.
//! - [`logging`]: the log on stderr, text or JSON for Cloud Logging (env_logger).
//! - [`map`]: the erasure map (toml): tables, columns, delete or redact.
//! - [`job`]: one run: connect to Pub/Sub, run the pass.
//! - [`pass`]: the run's rounds, top to bottom, over two seams (`Subscription`,
//!   `Store`), and the lease renewal.
//! - [`receive`]: one round's Pulls, and when the subscription is drained.
//! - [`event`]: the user service's protobuf schema (prost) and what a message means.
//! - [`plan`]: pure bookkeeping: users to erase, messages to ack or hand back.
//! - [`erase`]: the `Store` seam, and one transaction that isolates refused users.
//! - [`pubsub`]: the `Subscription` seam on Google Cloud Pub/Sub (gcloud-pubsub),
//!   and the admin client of the operator's commands.
//! - [`store`]: the `Store` on MySQL / MariaDB (mysql_async): statements,
//!   errors sorted by what happens next, the schema read.
//! - [`schema`]: the database's facts, checked against the map at connect.
//! - [`outcome`]: exit codes, outcomes, the JSON lines on stdout and the JSON
//!   log records (serde_json).
//! - [`metrics`]: the run's gauges, pushed to a Pushgateway (ureq).
//! - [`timestamp`]: RFC 3339, for log lines and `replay --since` (jiff).
//! - [`operate`]: the operator's commands (replay, snapshots, drill publishing,
//!   the schema check).
//! - [`check`]: what the map misses, and the grants it needs (pure).
//!
//! `main.rs` sets up logging and signals, calls [`job::run`] or an operator's
//! command, prints the JSON line and returns the exit code.
//!
//! Each crate that touches the world or parses input lives in one module: clap
//! in `cli`, prost in `event`, gcloud-* in `pubsub`, mysql_async in `store`,
//! serde_json in `outcome`, toml in `map`, ureq in `metrics`, jiff in
//! `timestamp`, env_logger in `logging`. Three are vocabulary shared by all:
//! tokio (the runtime; `pass` orchestrates with it), anyhow (the error the
//! seams return) and log (the logging facade).

pub mod check;
pub mod cli;
pub mod config;
pub mod erase;
pub mod event;
pub mod job;
pub mod logging;
pub mod map;
pub mod metrics;
pub mod operate;
pub mod outcome;
pub mod pass;
pub mod plan;
pub mod pubsub;
pub mod receive;
pub mod schema;
pub mod secret;
pub mod store;
pub mod timestamp;
