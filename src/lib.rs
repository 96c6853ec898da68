//! user-purge erases removed users: one pass pulls the user service's events
//! from a Pub/Sub subscription, deletes the users named by valid USER_REMOVED
//! events from one MySQL table in one transaction, and only after the commit
//! acknowledges the messages.
//!
//! The modules, in the order a run meets them:
//!
//! - [`cli`]: flags and environment (clap) into a validated configuration.
//! - [`config`]: the typed configuration; secrets that never print.
//! - [`pass`]: one pass, top to bottom, over two seams (`Subscription`, `Store`).
//! - [`event`]: the user service's protobuf schema (prost) and what a message means.
//! - [`plan`]: pure bookkeeping: ids to delete, messages to ack or hand back.
//! - [`pubsub`]: the `Subscription` seam on Google Cloud Pub/Sub (gcloud-pubsub).
//! - [`store`]: the `Store` seam on MySQL / MariaDB (mysql_async).
//! - [`outcome`]: exit codes, outcomes and the summary line.
//! - [`metrics`]: the run's gauges, pushed to a Pushgateway (ureq).
//! - [`timestamp`]: RFC 3339, for log lines and `replay --since` (jiff).
//!
//! The operator's commands ([`replay`], [`create_snapshot`], [`publish`]) use
//! the same configuration and the `pubsub` module's admin client.
//!
//! `main.rs` sets up logging and signals, calls [`run`], prints the summary and
//! returns the exit code.
//!
//! Each crate that touches the world or parses input lives in one module: clap
//! in `cli`, prost in `event`, gcloud-* in `pubsub`, mysql_async in `store`,
//! ureq in `metrics`, jiff in `timestamp`, env_logger in `main`. Three are vocabulary shared by all: tokio (the runtime;
//! `pass` orchestrates with it), anyhow (the error the two seams return) and
//! log (the logging facade).

pub mod cli;
pub mod config;
pub mod event;
pub mod metrics;
pub mod outcome;
pub mod pass;
pub mod plan;
pub mod pubsub;
pub mod store;
pub mod timestamp;

use log::info;

use config::Config;
use outcome::{Outcome, Report, Signal, Summary};

/// Connects to Pub/Sub and runs one pass. The database is connected inside the
/// pass, before the first Pull.
pub async fn run(config: Config, shutdown: impl Future<Output = Signal>) -> Report {
    let started = std::time::Instant::now();
    let mut shutdown = std::pin::pin!(shutdown);
    info!(
        "purging users named by {} from {}.{} ({}){}",
        config.subscription,
        store::describe(config.database.url.expose()),
        config.database.table.as_str(),
        config.database.id_column.as_str(),
        if config.pass.dry_run { ", dry run" } else { "" }
    );
    let connect = pubsub::PubSub::connect(
        &config.subscription,
        &config.credentials,
        config.pass.pull_timeout,
    );
    let subscription = tokio::select! {
        connected = connect => connected,
        signal = shutdown.as_mut() => return failed_early(Outcome::Interrupted(signal), &config, started),
    };
    let subscription = match subscription {
        Ok(subscription) => subscription,
        Err(error) => {
            let error = error.context("nothing was received or deleted");
            return failed_early(Outcome::PubSubFailed(error), &config, started);
        }
    };
    let database = &config.database;
    pass::run(
        subscription,
        store::MySql::connect(database),
        &config.pass,
        shutdown,
    )
    .await
}

/// Seeks the subscription back (`replay`).
pub async fn replay(admin: &config::Admin, to: &config::ReplayTo) -> anyhow::Result<String> {
    let pubsub = pubsub::Admin::connect(&admin.subscription.project, &admin.credentials).await?;
    match to {
        config::ReplayTo::Time(time) => {
            pubsub.seek_to_time(&admin.subscription, *time).await?;
            Ok(format!(
                "{} now delivers again every message published since {}; the next runs erase those users again",
                admin.subscription,
                timestamp::format(*time)
            ))
        }
        config::ReplayTo::Snapshot(name) => {
            pubsub.seek_to_snapshot(&admin.subscription, name).await?;
            Ok(format!(
                "{} is back at snapshot {name}; the next runs erase again the users removed since",
                admin.subscription
            ))
        }
    }
}

/// Snapshots the subscription (`snapshot create`).
pub async fn create_snapshot(admin: &config::Admin, name: &str) -> anyhow::Result<String> {
    let pubsub = pubsub::Admin::connect(&admin.subscription.project, &admin.credentials).await?;
    pubsub.create_snapshot(&admin.subscription, name).await?;
    Ok(format!(
        "snapshot {name} of {} created; `user-purge replay --snapshot {name}` returns to it",
        admin.subscription
    ))
}

/// Publishes drill events (`publish`).
pub async fn publish(
    project: &str,
    credentials: &config::Credentials,
    topic: &str,
    events: &[(i32, u64)],
) -> anyhow::Result<String> {
    let pubsub = pubsub::Admin::connect(project, credentials).await?;
    let payloads = events
        .iter()
        .map(|&(kind, user_id)| event::encode(kind, user_id))
        .collect();
    let ids = pubsub.publish(topic, payloads).await?;
    Ok(format!("published {} messages on {topic}", ids.len()))
}

fn failed_early(outcome: Outcome, config: &Config, started: std::time::Instant) -> Report {
    Report {
        outcome,
        summary: Summary {
            dry_run: config.pass.dry_run,
            elapsed_ms: started.elapsed().as_millis(),
            ..Summary::default()
        },
    }
}
