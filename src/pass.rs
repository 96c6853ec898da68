//! One run of the job, in the order of the promise, round after round:
//! receive → plan → erase (one transaction) → settle (acknowledge) → outcome.
//!
//! The pass talks to the world through two narrow seams, [`Subscription`] and
//! [`Store`], so it runs the same against the real services and against the
//! in-memory fakes of its unit tests. Shutdown is a future passed in and
//! selected against the work; leases are renewed by a task of their own
//! ([`Lease`]), so that a signal is never kept waiting by a renewal.
//!
//! A run repeats rounds while messages keep coming: an ordered subscription
//! withholds a key's next message until the previous one is acknowledged, and
//! a backlog larger than `--batch-size` is drained one bounded transaction at
//! a time. The messages a round hands back (malformed, or of users the
//! database refused) are held until the run ends, so that its later rounds do
//! not take them again, and are handed back then.

use std::collections::BTreeSet;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, warn};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

use crate::config::PassSettings;
use crate::erase::{self, Store};
use crate::outcome::{Outcome, Report, Signal, Summary};
use crate::plan::Plan;
use crate::receive::{self, Stop};

/// One message as the subscription delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub ack_id: String,
    pub message_id: String,
    pub publish_time: Option<SystemTime>,
    pub data: Vec<u8>,
    /// Published with an ordering key: the subscription may withhold the
    /// key's next messages until this one is acknowledged.
    pub ordered: bool,
}

/// How long the server may hold a Pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Up to this long for messages to arrive (a long poll).
    Poll(Duration),
    /// Not at all: answer with what is there now.
    Now,
}

/// The result of acknowledging, or changing the deadline of, a set of messages.
#[derive(Debug, Default)]
pub struct Settled {
    /// Messages whose request succeeded.
    pub done: usize,
    /// Messages whose request failed.
    pub failed: usize,
    /// The first failure, for the log.
    pub error: Option<anyhow::Error>,
}

/// Where the messages come from.
pub trait Subscription: Clone + Send + Sync + 'static {
    /// The most ack ids one Acknowledge or ModifyAckDeadline request may carry.
    const MAX_ACK_IDS: usize;
    /// One Pull of at most `max` messages. `Ok(Some(..))` is the server's
    /// answer, possibly empty; `Ok(None)` means no answer came within the
    /// client's deadline, which says nothing about the subscription.
    fn pull(
        &self,
        max: usize,
        wait: Wait,
    ) -> impl Future<Output = anyhow::Result<Option<Vec<Received>>>> + Send;
    /// One request acknowledging the messages; Pub/Sub will not deliver them again.
    fn acknowledge(&self, ack_ids: Vec<String>) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// One request setting the messages' ack deadline: a lease extension, or
    /// with 0 a nack that hands them back at once.
    fn set_deadline(
        &self,
        ack_ids: Vec<String>,
        seconds: u16,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Leases are renewed this often. The shortest ack deadline Pub/Sub allows is
/// 10 s, so a message received just after one renewal gets its first before then.
const LEASE_RENEWAL: Duration = Duration::from_secs(4);

/// Each renewal sets the ack deadline this far ahead: long enough to ride out a
/// slow renewal, short enough that a killed run's messages come back soon.
const LEASE_SECONDS: u16 = 60;

/// How long the final hand-back may take after Pub/Sub failed.
const HAND_BACK_AFTER_FAILURE: Duration = Duration::from_secs(3);

/// How long connecting to the database may take.
const DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The shutdown signal, pinned once and polled by every phase.
type Shutdown<'a, F> = Pin<&'a mut F>;

/// Runs the job's rounds and reports what happened. Never panics on bad
/// input: every failure becomes an [`Outcome`].
///
/// The database is connected first, so that an outage leaves every message
/// untouched: each delivery counts toward the subscription's dead-letter limit.
pub async fn run<S, D>(
    subscription: S,
    connect_store: impl Future<Output = anyhow::Result<D>>,
    settings: &PassSettings,
    shutdown: impl Future<Output = Signal>,
) -> Report
where
    S: Subscription,
    D: Store,
{
    let started = Instant::now();
    let mut summary = Summary {
        dry_run: settings.dry_run,
        ..Summary::default()
    };
    let shutdown = pin!(shutdown);
    let outcome = pass(
        &subscription,
        connect_store,
        settings,
        shutdown,
        &mut summary,
    )
    .await;
    summary.elapsed_ms = crate::outcome::elapsed_ms(started);
    Report { outcome, summary }
}

/// Connects, then runs rounds until the subscription is drained or a limit
/// is reached. The messages held back for the end are handed back whatever
/// the outcome.
async fn pass<S: Subscription, D: Store, F: Future<Output = Signal>>(
    subscription: &S,
    connect_store: impl Future<Output = anyhow::Result<D>>,
    settings: &PassSettings,
    mut shutdown: Shutdown<'_, F>,
    summary: &mut Summary,
) -> Outcome {
    let deadline = tokio::time::Instant::now() + settings.max_duration;
    let mut store = if settings.dry_run {
        None
    } else {
        match connect(connect_store, shutdown.as_mut()).await {
            Ok(store) => {
                for table in store.tables() {
                    summary.tables.add(table, 0);
                }
                Some(store)
            }
            Err(outcome) => return outcome,
        }
    };
    let lease = Lease::start(subscription.clone());
    let mut held_back = Vec::new();
    let outcome = loop {
        summary.rounds += 1;
        let batch = (settings.max_messages - summary.received).min(settings.batch_size);
        let round = round(
            subscription,
            store.as_mut(),
            settings,
            batch,
            deadline,
            &lease,
            &mut held_back,
            shutdown.as_mut(),
            summary,
        )
        .await;
        let next = match round {
            Ok(next) => next,
            Err(outcome) => break outcome,
        };
        if !next || summary.received >= settings.max_messages {
            break Outcome::Completed;
        }
        if tokio::time::Instant::now() >= deadline {
            info!(
                "--max-duration ({} s) reached after {} rounds; the next run goes on",
                settings.max_duration.as_secs(),
                summary.rounds
            );
            break Outcome::Completed;
        }
    };
    drop(lease);
    // One hand-back for everything held back. When Pub/Sub has just failed,
    // it gets a short budget: the messages come back when their lease ends
    // anyway, and a stopping run keeps its 10 s promise.
    let handing_back = hand_back(subscription, held_back);
    summary.nacked += match outcome {
        Outcome::PubSubFailed(_) | Outcome::AckFailed(_) => {
            tokio::time::timeout(HAND_BACK_AFTER_FAILURE, handing_back)
                .await
                .unwrap_or_else(|_| {
                    warn!("Pub/Sub did not take the hand-backs in time; those messages come back when their lease ends");
                    0
                })
        }
        _ => handing_back.await,
    };
    match outcome {
        Outcome::Completed if summary.refused > 0 => Outcome::PartiallyCompleted(anyhow::anyhow!(
            "partially completed: {} users could not be erased; their messages were handed back \
             and will reach the dead-letter topic",
            summary.refused
        )),
        outcome => outcome,
    }
}

/// Connects the store, unless a signal or the time limit comes first.
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

/// One round: receive up to `batch` messages, erase their users in one
/// transaction, acknowledge. `Ok(true)` when another round may find more;
/// an error outcome ends the run, with every message of the round handed back
/// unless its erasure had committed.
#[allow(clippy::too_many_arguments)]
async fn round<S: Subscription, D: Store, F: Future<Output = Signal>>(
    subscription: &S,
    store: Option<&mut D>,
    settings: &PassSettings,
    batch: usize,
    deadline: tokio::time::Instant,
    lease: &Lease,
    held_back: &mut Vec<String>,
    mut shutdown: Shutdown<'_, F>,
    summary: &mut Summary,
) -> Result<bool, Outcome> {
    // Receive.
    let mut plan = Plan::default();
    let receiving = Instant::now();
    let received = receive::receive(
        subscription,
        &mut plan,
        batch,
        settings.pull_timeout,
        deadline,
        lease,
        shutdown.as_mut(),
    )
    .await;
    plan.finish();
    summary.received += plan.len();
    summary.removed_ids += plan.removals().len();
    summary.ignored += plan.ignored;
    summary.malformed += plan.malformed();
    info!(
        "received {} messages in {} ms (round {}): {} users to delete, {} ignored, {} malformed",
        plan.len(),
        receiving.elapsed().as_millis(),
        summary.rounds,
        plan.removals().len(),
        plan.ignored,
        plan.malformed()
    );
    let received = match received {
        Ok(received) => received,
        Err(stop) => {
            held_back.append(&mut plan.take_all());
            return Err(match stop {
                Stop::Signal(signal) => Outcome::Interrupted(signal),
                Stop::PubSub(error) => {
                    Outcome::PubSubFailed(error.context("receiving stopped; nothing was deleted"))
                }
            });
        }
    };

    let Some(store) = store else {
        info!(
            "dry run: would delete {} users, acknowledge {} messages and hand back {}; handing all back",
            plan.removals().len(),
            plan.ack.len(),
            plan.hand_back.len()
        );
        debug!("dry run: user ids {:?}", plan.user_ids());
        held_back.append(&mut plan.take_all());
        // A dry run takes one round: the next would take the same messages.
        return Ok(false);
    };

    // Erase, before any acknowledgement.
    let erased = erase_users(store, &plan, shutdown.as_mut()).await;
    let erasure = match erased {
        Ok(erasure) => erasure,
        Err(outcome) => {
            held_back.append(&mut plan.take_all());
            return Err(outcome);
        }
    };
    for (table, rows) in store.tables().iter().zip(&erasure.rows) {
        summary.tables.add(table, *rows);
    }
    // The last entry of the map is the users table.
    summary.deleted_rows += erasure.rows.last().copied().unwrap_or(0);
    summary.refused += erasure.refused.len();
    plan.withhold(&erasure.kept().collect::<BTreeSet<u64>>());

    // Settle: acknowledge; the hand-backs wait for the end of the run, under
    // the lease, so that later rounds do not take them again.
    held_back.append(&mut plan.hand_back);
    lease.hold_only(held_back);
    settle_round(subscription, plan.ack, shutdown, summary).await?;
    Ok(received.more_may_come)
}

/// Erases the plan's users in one transaction, isolating those the database
/// refuses. On failure or a signal nothing was committed (or, if COMMIT had
/// already landed, the redelivered messages repeat it harmlessly), and the
/// caller hands every message back.
async fn erase_users<D: Store>(
    store: &mut D,
    plan: &Plan,
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
        erased = erase::erase(store, removals) => erased,
        signal = shutdown => {
            warn!("stopped by {signal:?} before the delete committed; handing every message back");
            return Err(Outcome::Interrupted(signal));
        }
    };
    match erased {
        Ok(erasure) => {
            info!(
                "deleted {} rows for {} users and committed in {} ms{}",
                erasure.rows.iter().sum::<u64>(),
                removals.len() - erasure.refused.len() - erasure.deferred.len(),
                erasing.elapsed().as_millis(),
                match erasure.refused.len() {
                    0 => String::new(),
                    n => format!("; {n} users refused"),
                }
            );
            Ok(erasure)
        }
        Err(error) => Err(Outcome::DatabaseFailed(
            error.context("nothing was acknowledged; every message was handed back"),
        )),
    }
}

/// Acknowledges the round's messages. A signal now does not stop this: the
/// erasure has committed, so finishing the acknowledgements is the quickest
/// way to a clean state; the run then ends.
async fn settle_round<S: Subscription>(
    subscription: &S,
    ack_ids: Vec<String>,
    mut shutdown: Shutdown<'_, impl Future<Output = Signal>>,
    summary: &mut Summary,
) -> Result<(), Outcome> {
    let acking = Instant::now();
    let mut settling = pin!(settle(subscription, ack_ids, Request::Acknowledge));
    let mut signalled = None;
    let acked = loop {
        tokio::select! {
            settled = settling.as_mut() => break settled,
            signal = shutdown.as_mut(), if signalled.is_none() => {
                info!("{signal:?} received; finishing the acknowledgements of the committed delete");
                signalled = Some(signal);
            }
        }
    };
    summary.acked += acked.done;
    info!(
        "acknowledged {} messages in {} ms",
        acked.done,
        acking.elapsed().as_millis()
    );
    match (acked.error, signalled) {
        (Some(error), _) => Err(Outcome::AckFailed(error.context(format!(
            "the delete committed, but {} acknowledgements failed; those messages will come back \
             and their deletes repeat harmlessly",
            acked.failed
        )))),
        (None, Some(signal)) => Err(Outcome::Interrupted(signal)),
        (None, None) => Ok(()),
    }
}

/// Nacks the messages so that the next run gets them at once. Returns how
/// many were handed back; the others come back when their deadline passes.
async fn hand_back<S: Subscription>(subscription: &S, ack_ids: Vec<String>) -> usize {
    if ack_ids.is_empty() {
        return 0;
    }
    let handed_back = settle(subscription, ack_ids, Request::Deadline(0)).await;
    if let Some(error) = handed_back.error {
        warn!(
            "{} messages could not be handed back and will return when their deadline passes: {error:#}",
            handed_back.failed
        );
    }
    handed_back.done
}

/// Keeps the leases of the messages a run holds: a task of its own extends
/// them every [`LEASE_RENEWAL`], so that Pub/Sub does not deliver them to
/// another run while this one still works on them. Dropping it stops the
/// renewals at once, even one in flight (the pass then settles every message
/// itself; an extension that still lands only delays a handed-back message).
pub(crate) struct Lease {
    held: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Lease {
    fn start<S: Subscription>(subscription: S) -> Lease {
        let held = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(renew_every_period(subscription, Arc::clone(&held)));
        Lease { held, task }
    }

    /// Puts more messages under the lease.
    pub(crate) fn hold(&self, ack_ids: impl Iterator<Item = String>) {
        // A poisoned lock only means a renewal panicked; the ids are still good.
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.extend(ack_ids);
    }

    /// Keeps only these messages under the lease (the others were settled).
    fn hold_only(&self, ack_ids: &[String]) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.clear();
        held.extend_from_slice(ack_ids);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The lease task: from one renewal period on, extends every held message.
async fn renew_every_period<S: Subscription>(subscription: S, held: Arc<Mutex<Vec<String>>>) {
    let mut timer =
        tokio::time::interval_at(tokio::time::Instant::now() + LEASE_RENEWAL, LEASE_RENEWAL);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        let ack_ids = held.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if ack_ids.is_empty() {
            continue;
        }
        let n = ack_ids.len();
        let renewed = settle(&subscription, ack_ids, Request::Deadline(LEASE_SECONDS)).await;
        match renewed.error {
            None => debug!("renewed the lease of {n} messages for {LEASE_SECONDS} s"),
            // Not fatal: at worst a message is delivered twice, and deletes
            // repeat harmlessly.
            Some(error) => warn!(
                "could not renew the lease of {} messages: {error:#}",
                renewed.failed
            ),
        }
    }
}

/// How [`settle`] settles messages.
#[derive(Debug, Clone, Copy)]
enum Request {
    Acknowledge,
    /// Set the ack deadline to this many seconds; 0 hands the messages back.
    Deadline(u16),
}

/// Sends the ack ids in requests of at most [`Subscription::MAX_ACK_IDS`], all
/// at once, and waits for every one of them.
async fn settle<S: Subscription>(
    subscription: &S,
    ack_ids: Vec<String>,
    request: Request,
) -> Settled {
    let total = ack_ids.len();
    let mut requests = JoinSet::new();
    let mut rest = ack_ids;
    while !rest.is_empty() {
        // From the end, so that no id is moved twice.
        let chunk = rest.split_off(rest.len().saturating_sub(S::MAX_ACK_IDS));
        let subscription = subscription.clone();
        requests.spawn(async move {
            let n = chunk.len();
            let result = match request {
                Request::Acknowledge => subscription.acknowledge(chunk).await,
                Request::Deadline(seconds) => subscription.set_deadline(chunk, seconds).await,
            };
            (n, result)
        });
    }
    let mut settled = Settled::default();
    while let Some(joined) = requests.join_next().await {
        match joined {
            Ok((n, Ok(()))) => {
                debug!("{request:?}: a request for {n} messages succeeded");
                settled.done += n;
            }
            Ok((_, Err(error))) => {
                settled.error.get_or_insert(error);
            }
            Err(join_error) => {
                settled.error.get_or_insert_with(|| {
                    anyhow::anyhow!("a {request:?} task failed: {join_error}")
                });
            }
        }
    }
    // A request that failed, or whose task failed, counts all its messages.
    settled.failed = total - settled.done;
    settled
}

#[cfg(test)]
mod tests;
