//! One run of the job, in the order of the promise, round after round:
//! receive → plan → erase (one transaction) → settle (acknowledge) → outcome.
//!
//! The run talks to the world through two narrow seams,
//! [`Subscription`](crate::pubsub::Subscription) and [`Store`], so it runs
//! the same against the real services and against the in-memory fakes of its
//! unit tests. Shutdown is a future passed in and selected against the work;
//! leases are renewed by a task of their own ([`lease::Lease`]), so that a
//! signal is never kept waiting by a renewal.
//!
//! A run repeats rounds while messages keep coming: an ordered subscription
//! withholds a key's next message until the previous one is acknowledged, and
//! a backlog larger than `--batch-size` is drained one bounded transaction at
//! a time. The messages a round hands back (malformed, or of users the
//! database refused) are held until the run ends, so that its later rounds do
//! not take them again, and are handed back then.

use std::collections::BTreeSet;
use std::pin::{Pin, pin};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::config::Engine;
use crate::config::{Config, PassSettings};
use crate::outcome::{self, ExitBy, Outcome, Report, Signal, Summary};
use crate::pubsub::{Subscription, google::PubSub};
use crate::store::engine::SqlStore;
use crate::store::{self, Store, StoreError, mysql, postgres};

pub mod erase;
mod lease;
pub mod plan;
mod receive;

use lease::{Lease, REQUEST_BUDGET, Request};
use plan::Plan;
use receive::{Stop, Stopped};

/// How long connecting to the database may take.
const DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The shutdown signal, pinned once and polled by every phase.
type Shutdown<'a, F> = Pin<&'a mut F>;

/// Connects to Pub/Sub and runs one pass on MySQL. The pass connects the
/// database before its first Pull, so that a database outage touches no
/// message.
pub async fn run(config: Config, shutdown: impl Future<Output = Signal>) -> Report {
    // The run's one clock: `elapsed_ms` means the same on every outcome.
    let started = Instant::now();
    let mut shutdown = pin!(shutdown);
    let database = &config.database;
    let entries: Vec<String> = database
        .map
        .entries()
        .iter()
        .map(|e| {
            let via: Vec<&str> = e.via.iter().map(|hop| hop.table.as_str()).collect();
            match via.is_empty() {
                true => format!("{}.{}", e.table, e.column),
                false => format!("{}.{} via {}", e.table, e.column, via.join(", ")),
            }
        })
        .collect();
    info!(
        "purging users named by {} from {}: {}{}{}",
        config.subscription,
        store::url::describe(database.engine, database.url.expose()),
        entries.join(", "),
        match &database.record {
            Some(record) => format!("; recording each erasure in {record}"),
            None => String::new(),
        },
        if config.pass.dry_run { ", dry run" } else { "" }
    );
    let connect = PubSub::connect(&config.subscription, &config.credentials);
    let connected = tokio::select! {
        connected = connect => connected.map_err(|error| {
            Outcome::PubSubFailed(error.context("nothing was received or deleted"))
        }),
        signal = shutdown.as_mut() => Err(Outcome::Interrupted(signal)),
    };
    match connected {
        Ok(subscription) => match database.engine {
            Engine::MySql => {
                let connect = SqlStore::<mysql::MySql>::connect(database);
                pass(subscription, connect, &config.pass, started, shutdown).await
            }
            Engine::Postgres => {
                let connect = SqlStore::<postgres::Postgres>::connect(database);
                pass(subscription, connect, &config.pass, started, shutdown).await
            }
        },
        Err(outcome) => Report {
            exit_by: matches!(outcome, Outcome::Interrupted(_)).then(ExitBy::now),
            outcome,
            summary: Summary {
                dry_run: config.pass.dry_run,
                elapsed_ms: outcome::elapsed_ms(started),
                ..Summary::default()
            },
        },
    }
}

/// Runs the job's rounds over the two seams and reports what happened; the
/// run began at `started`. Never panics on bad input: every failure becomes
/// an [`Outcome`].
///
/// The database is connected first, so that an outage leaves every message
/// untouched: each delivery counts toward the subscription's dead-letter limit.
pub async fn pass<S: Subscription, D: Store>(
    subscription: S,
    connect_store: impl Future<Output = anyhow::Result<D>>,
    settings: &PassSettings,
    started: Instant,
    shutdown: impl Future<Output = Signal>,
) -> Report {
    let mut shutdown = pin!(shutdown);
    let mut summary = Summary {
        dry_run: settings.dry_run,
        ..Summary::default()
    };
    let mode = if settings.dry_run {
        Mode::DryRun
    } else {
        match connect(connect_store, shutdown.as_mut()).await {
            Ok(store) => {
                for table in store.tables() {
                    summary.tables.add(table, 0);
                }
                Mode::Erase(store)
            }
            Err(outcome) => {
                summary.elapsed_ms = outcome::elapsed_ms(started);
                return Report {
                    exit_by: matches!(outcome, Outcome::Interrupted(_)).then(ExitBy::now),
                    outcome,
                    summary,
                };
            }
        }
    };
    let run = Run {
        lease: Lease::start(subscription.clone()),
        subscription,
        mode,
        settings,
        deadline: tokio::time::Instant::now() + settings.max_duration,
        held_back: Vec::new(),
        exit_by: None,
        committed: false,
        summary,
    };
    let mut report = run.rounds(shutdown).await;
    report.summary.elapsed_ms = outcome::elapsed_ms(started);
    report
}

/// Connects the store, unless a signal comes first.
async fn connect<D: Store>(
    connect_store: impl Future<Output = anyhow::Result<D>>,
    shutdown: Shutdown<'_, impl Future<Output = Signal>>,
) -> Result<D, Outcome> {
    let connect = tokio::time::timeout(DB_CONNECT_TIMEOUT, connect_store);
    tokio::select! {
        connected = connect => match connected {
            Ok(Ok(store)) => Ok(store),
            Ok(Err(error)) => Err(Outcome::DatabaseFailed(
                error.context("no message was received; every one stays in the subscription"),
            )),
            Err(_) => Err(Outcome::DatabaseFailed(anyhow::anyhow!(
                "no connection to the database within {DB_CONNECT_TIMEOUT:?}; \
                 no message was received"
            ))),
        },
        signal = shutdown => Err(Outcome::Interrupted(signal)),
    }
}

/// Whether the run erases, or only looks.
enum Mode<D> {
    /// Erase through this store, then acknowledge.
    Erase(D),
    /// Receive and decode, log what would be erased, hand everything back.
    DryRun,
}

/// What one round did (zero2prod's worker returns its `ExecutionOutcome`).
enum Round {
    /// Settled; another round may find more messages.
    MoreMayCome,
    /// Settled; the subscription is drained as far as this run can tell, or
    /// a dry run took its one look.
    Done,
    /// The run cannot go on: this ends it. Every message of the round was
    /// handed back unless its erasure had committed.
    Stopped(Outcome),
}

/// One run's state, the same in every round.
struct Run<'a, S, D> {
    subscription: S,
    mode: Mode<D>,
    settings: &'a PassSettings,
    /// No round starts after this (`--max-duration`).
    deadline: tokio::time::Instant,
    /// The messages held from receipt to settlement.
    lease: Lease,
    /// Messages to hand back at the end of the run, under the lease until then.
    held_back: Vec<String>,
    /// Set once the run must stop: everything it still does ends by then.
    exit_by: Option<ExitBy>,
    /// Whether an erasure of this run has committed: a replica that lags
    /// afterwards carries the rest over, rather than failing the run.
    committed: bool,
    summary: Summary,
}

impl<S: Subscription, D: Store> Run<'_, S, D> {
    /// Runs rounds until the subscription is drained or a limit is reached;
    /// then hands back what was held back, whatever the outcome.
    async fn rounds<F: Future<Output = Signal>>(mut self, mut shutdown: Shutdown<'_, F>) -> Report {
        let settings = self.settings;
        let outcome = loop {
            self.summary.rounds += 1;
            let batch = (settings.max_messages - self.summary.received).min(settings.batch_size);
            match self.round(batch, shutdown.as_mut()).await {
                Round::Stopped(outcome) => break outcome,
                Round::Done => break Outcome::Completed,
                Round::MoreMayCome if self.summary.received >= settings.max_messages => {
                    break Outcome::Completed;
                }
                Round::MoreMayCome if tokio::time::Instant::now() >= self.deadline => {
                    info!(
                        "--max-duration ({} s) reached after {} rounds; the next run goes on",
                        settings.max_duration.as_secs(),
                        self.summary.rounds
                    );
                    break Outcome::Completed;
                }
                Round::MoreMayCome => {}
            }
        };
        if let Mode::Erase(store) = &self.mode {
            self.summary.replica_wait_ms = store.replica_wait().as_millis() as u64;
        }
        let Run {
            subscription,
            lease,
            held_back,
            exit_by,
            mut summary,
            ..
        } = self;
        drop(lease);
        // One hand-back for everything held back: within the exit budget when
        // the run is stopping (the messages come back when their lease ends
        // anyway), within one request's budget otherwise.
        let give_up = match exit_by {
            Some(exit_by) => exit_by.hand_back(),
            None => tokio::time::Instant::now() + REQUEST_BUDGET,
        };
        summary.nacked += lease::hand_back(&subscription, held_back, give_up).await;
        let outcome = match outcome {
            Outcome::Completed if summary.refused > 0 => {
                Outcome::PartiallyCompleted(anyhow::anyhow!(
                    "partially completed: {} users could not be erased; their messages were \
                     handed back and will reach the dead-letter topic",
                    summary.refused
                ))
            }
            outcome => outcome,
        };
        Report {
            outcome,
            summary,
            exit_by,
        }
    }

    /// One round: receive up to `batch` messages, erase their users in one
    /// transaction, acknowledge.
    async fn round<F: Future<Output = Signal>>(
        &mut self,
        batch: usize,
        mut shutdown: Shutdown<'_, F>,
    ) -> Round {
        // A database that cannot take the work now gets no Pull: each
        // delivery counts toward the dead-letter limit.
        if let Err(round) = self.replicas_ready(shutdown.as_mut()).await {
            return round;
        }
        // Receive.
        let receiving = Instant::now();
        let received = receive::receive(
            &self.subscription,
            batch,
            self.settings.pull_timeout,
            self.deadline,
            &self.lease,
            shutdown.as_mut(),
        )
        .await;
        let (deliveries, taken) = match received {
            Ok(taken) => (taken.deliveries, Ok(taken.more_may_come)),
            Err(Stopped {
                stop,
                deliveries,
                exit_by,
            }) => (deliveries, Err((stop, exit_by))),
        };
        let plan = Plan::new(deliveries);
        self.count_received(&plan, receiving);
        let more_may_come = match taken {
            Ok(more_may_come) => more_may_come,
            Err((stop, exit_by)) => {
                self.exit_by = Some(exit_by);
                self.held_back.append(&mut plan.take_all());
                return Round::Stopped(match stop {
                    Stop::Signal(signal) => Outcome::Interrupted(signal),
                    Stop::PubSub(error) => Outcome::PubSubFailed(
                        error.context("receiving stopped; nothing was deleted"),
                    ),
                });
            }
        };

        let store = match &mut self.mode {
            Mode::Erase(store) => store,
            Mode::DryRun => {
                info!(
                    "dry run: would delete {} users, acknowledge {} messages and hand back {}; handing all back",
                    plan.removals().len(),
                    plan.ack().len(),
                    plan.hand_back().len()
                );
                debug!("dry run: user ids {:?}", plan.user_ids());
                self.held_back.append(&mut plan.take_all());
                // A dry run takes one round: the next would take the same messages.
                return Round::Done;
            }
        };

        // Erase, before any acknowledgement.
        let erased = erase_users(
            store,
            &plan,
            self.deadline,
            self.committed,
            shutdown.as_mut(),
        )
        .await;
        let erasure = match erased {
            Ok(erasure) => erasure,
            Err(outcome) => {
                if matches!(outcome, Outcome::Interrupted(_)) {
                    self.exit_by = Some(ExitBy::now());
                }
                self.held_back.append(&mut plan.take_all());
                return Round::Stopped(outcome);
            }
        };
        for (table, rows) in store.tables().iter().zip(&erasure.erased.rows) {
            self.summary.tables.add(table, *rows);
        }
        let users_entry = store.users_entry();
        self.summary.deleted_rows += erasure.erased.rows.get(users_entry).copied().unwrap_or(0);
        self.summary.refused += erasure.refused.len();
        self.summary.carried_over += erasure.carried.len();
        self.summary.chunks += erasure.erased.chunks;
        let kept: BTreeSet<u64> = erasure.kept().collect();
        self.committed |= plan.removals().len() > kept.len();

        // Settle: acknowledge; the hand-backs wait for the end of the run,
        // under the lease, so that later rounds do not take them again.
        let settlement = plan.settle(&kept);
        self.held_back.extend(settlement.hand_back);
        self.lease.hold_only(&self.held_back);
        if let Err(outcome) = self.acknowledge(settlement.ack, shutdown).await {
            return Round::Stopped(outcome);
        }
        if more_may_come {
            Round::MoreMayCome
        } else {
            Round::Done
        }
    }

    /// Waits for the replicas before a round's first Pull. When the wait
    /// runs out, the run ends: with its work so far when it has committed
    /// some (the rest is the next run's), else as a database failure.
    async fn replicas_ready<F: Future<Output = Signal>>(
        &mut self,
        shutdown: Shutdown<'_, F>,
    ) -> Result<(), Round> {
        let Mode::Erase(store) = &mut self.mode else {
            return Ok(());
        };
        let waited = tokio::select! {
            waited = store.wait_for_replicas(self.deadline) => waited,
            signal = shutdown => {
                self.exit_by = Some(ExitBy::now());
                return Err(Round::Stopped(Outcome::Interrupted(signal)));
            }
        };
        match waited {
            Ok(()) => Ok(()),
            Err(StoreError::Lagging(line)) if self.committed => {
                info!("{line}; the next run goes on");
                Err(Round::Stopped(Outcome::Completed))
            }
            Err(StoreError::Lagging(line)) => Err(Round::Stopped(Outcome::DatabaseFailed(
                anyhow::anyhow!("{line}; no message was received"),
            ))),
            Err(error) => Err(Round::Stopped(Outcome::DatabaseFailed(
                erase::failure(error)
                    .context("the replicas' lag could not be read; no message was received"),
            ))),
        }
    }

    /// Adds a round's receipts to the summary, and says what came.
    fn count_received(&mut self, plan: &Plan, receiving: Instant) {
        let summary = &mut self.summary;
        summary.received += plan.len();
        summary.removed_ids += plan.removals().len();
        summary.ignored += plan.ignored();
        summary.malformed += plan.malformed();
        info!(
            "received {} messages in {} ms (round {}): {} users to delete, {} ignored, {} malformed",
            plan.len(),
            receiving.elapsed().as_millis(),
            summary.rounds,
            plan.removals().len(),
            plan.ignored(),
            plan.malformed()
        );
    }

    /// Acknowledges the round's messages. A signal now does not stop this:
    /// the erasure has committed, so finishing the acknowledgements is the
    /// quickest way to a clean state; the run then ends.
    async fn acknowledge<F: Future<Output = Signal>>(
        &mut self,
        ack_ids: Vec<String>,
        mut shutdown: Shutdown<'_, F>,
    ) -> Result<(), Outcome> {
        let acking = Instant::now();
        let give_up = tokio::time::Instant::now() + REQUEST_BUDGET;
        let mut settling = pin!(lease::settle(
            &self.subscription,
            ack_ids,
            Request::Acknowledge,
            give_up
        ));
        let mut signalled = None;
        let acked = loop {
            tokio::select! {
                settled = settling.as_mut() => break settled,
                signal = shutdown.as_mut(), if signalled.is_none() => {
                    info!("{signal:?} received; finishing the acknowledgements of the committed delete");
                    self.exit_by = Some(ExitBy::now());
                    signalled = Some(signal);
                }
            }
        };
        self.summary.acked += acked.done;
        info!(
            "acknowledged {} messages in {} ms",
            acked.done,
            acking.elapsed().as_millis()
        );
        match (acked.error, signalled) {
            (Some(error), _) => {
                self.exit_by.get_or_insert_with(ExitBy::now);
                Err(Outcome::AckFailed(error.context(format!(
                    "the delete committed, but {} acknowledgements failed; those messages will \
                     come back and their deletes repeat harmlessly",
                    acked.failed
                ))))
            }
            (None, Some(signal)) => Err(Outcome::Interrupted(signal)),
            (None, None) => Ok(()),
        }
    }
}

/// Erases the plan's users in one transaction, isolating those the database
/// refuses, then their chunked entries. On failure or a signal nothing was
/// committed (or, if COMMIT had already landed, the redelivered messages
/// repeat it harmlessly), and the caller hands every message back. A
/// replica lagging until the deadline carries the users over when the run
/// has `committed` work already, and fails it otherwise.
async fn erase_users<D: Store>(
    store: &mut D,
    plan: &Plan,
    deadline: tokio::time::Instant,
    committed: bool,
    shutdown: Shutdown<'_, impl Future<Output = Signal>>,
) -> Result<erase::Erasure, Outcome> {
    let removals = plan.removals();
    if removals.is_empty() {
        return Ok(erase::Erasure::default());
    }
    let erasing = Instant::now();
    // Dropping the erasure mid-way leaves its transaction open on a
    // connection that is dropped with the store at the end of the run, so it
    // rolls back.
    let erased = tokio::select! {
        erased = erase::erase(store, removals, deadline) => erased,
        signal = shutdown => {
            warn!("stopped by {signal:?} before the delete committed; handing every message back");
            return Err(Outcome::Interrupted(signal));
        }
    };
    match erased {
        Ok(erasure) => {
            info!(
                "deleted {} rows for {} users and committed in {} ms{}{}",
                erasure.erased.rows.iter().sum::<u64>(),
                removals.len() - erasure.refused.len() - erasure.carried.len(),
                erasing.elapsed().as_millis(),
                match erasure.refused.len() {
                    0 => String::new(),
                    n => format!("; {n} users refused"),
                },
                match erasure.carried.len() {
                    0 => String::new(),
                    n => format!("; {n} users carried over to the next run"),
                }
            );
            Ok(erasure)
        }
        Err(erase::Halt::Lagging(line)) if committed => {
            for removal in removals {
                info!(
                    "user {} carried over to the next run: {line}",
                    removal.user_id
                );
            }
            Ok(erase::Erasure {
                carried: removals.iter().map(|r| r.user_id).collect(),
                ..erase::Erasure::default()
            })
        }
        Err(erase::Halt::Lagging(line)) => Err(Outcome::DatabaseFailed(anyhow::anyhow!(
            "{line}; nothing was committed, and every message was handed back"
        ))),
        Err(erase::Halt::Failed(error)) => Err(Outcome::DatabaseFailed(
            error.context("nothing was acknowledged; every message was handed back"),
        )),
    }
}

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;
