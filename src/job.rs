//! One run of the job: say what it works on, connect to Pub/Sub, then hand the
//! subscription and the database's connector to the pass. Each service's
//! connection has its home in its seam (`pubsub::PubSub::connect`,
//! `store::MySql::connect`); this module only puts them in order.

use std::time::Instant;

use log::info;

use crate::config::Config;
use crate::outcome::{self, Outcome, Report, Signal, Summary};
use crate::{pass, pubsub, store};

/// Connects to Pub/Sub and runs one pass. The pass connects the database
/// before its first Pull, so that a database outage touches no message.
pub async fn run(config: Config, shutdown: impl Future<Output = Signal>) -> Report {
    let started = Instant::now();
    let mut shutdown = std::pin::pin!(shutdown);
    let database = &config.database;
    let entries: Vec<String> = database
        .map
        .entries()
        .iter()
        .map(|e| format!("{}.{}", e.table, e.column))
        .collect();
    info!(
        "purging users named by {} from {}: {}{}{}",
        config.subscription,
        store::describe(database.url.expose()),
        entries.join(", "),
        match &database.record {
            Some(record) => format!("; recording each erasure in {record}"),
            None => String::new(),
        },
        if config.pass.dry_run { ", dry run" } else { "" }
    );
    let connect = pubsub::PubSub::connect(&config.subscription, &config.credentials);
    let connected = tokio::select! {
        connected = connect => connected,
        signal = shutdown.as_mut() => return failed_early(Outcome::Interrupted(signal), &config, started),
    };
    let subscription = match connected {
        Ok(subscription) => subscription,
        Err(error) => {
            let error = error.context("nothing was received or deleted");
            return failed_early(Outcome::PubSubFailed(error), &config, started);
        }
    };
    pass::run(
        subscription,
        store::MySql::connect(database),
        &config.pass,
        shutdown,
    )
    .await
}

fn failed_early(outcome: Outcome, config: &Config, started: Instant) -> Report {
    Report {
        outcome,
        summary: Summary {
            dry_run: config.pass.dry_run,
            elapsed_ms: outcome::elapsed_ms(started),
            ..Summary::default()
        },
    }
}
