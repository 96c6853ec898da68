//! One pass, in the order of the promise: receive → plan → erase (delete and
//! commit) → settle (acknowledge, hand back) → outcome.
//!
//! The pass talks to the world through two narrow seams, [`Subscription`] and
//! [`Store`], so it runs the same against the real services and against the
//! in-memory fakes of its unit tests. Shutdown is a future passed in and
//! selected against the work; leases are renewed by a task of their own
//! ([`Lease`]), so that a signal is never kept waiting by a renewal.

use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, warn};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

use crate::config::PassSettings;
use crate::event;
use crate::outcome::{Outcome, Report, Signal, Summary};
use crate::plan::Plan;
use crate::timestamp;

/// One message as the subscription delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub ack_id: String,
    pub message_id: String,
    pub publish_time: Option<SystemTime>,
    pub data: Vec<u8>,
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
    /// One Pull of at most `max` messages. An empty answer means that nothing
    /// arrived within the pull timeout: the subscription is drained for now.
    fn pull(&self, max: usize) -> impl Future<Output = anyhow::Result<Vec<Received>>> + Send;
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

/// Where the users are deleted.
pub trait Store {
    /// Deletes the users in one statement and one transaction, and commits.
    /// Returns the rows deleted.
    fn delete(&mut self, user_ids: &[u64]) -> impl Future<Output = anyhow::Result<u64>>;
}

/// How many Pulls are in flight at once: enough to hide one Pull's latency,
/// few enough that every message taken is one this run can finish.
const PULLS_IN_FLIGHT: usize = 4;

/// Ask for this many per Pull; the service caps it (the emulator at 100).
const PULL_BATCH: usize = 1_000;

/// Leases are renewed this often. The shortest ack deadline Pub/Sub allows is
/// 10 s, so a message received just after one renewal gets its first before then.
const LEASE_RENEWAL: Duration = Duration::from_secs(4);

/// Each renewal sets the ack deadline this far ahead: long enough to ride out a
/// slow renewal, short enough that a killed run's messages come back soon.
const LEASE_SECONDS: u16 = 60;

/// How long connecting to the database may take.
const DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why receiving stopped before the subscription was drained.
enum Stop {
    Signal(Signal),
    PubSub(anyhow::Error),
}

/// The shutdown signal, pinned once and polled by every phase.
type Shutdown<'a, F> = Pin<&'a mut F>;

/// Runs one pass and reports what happened. Never panics on bad input: every
/// failure becomes an [`Outcome`].
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
    summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Report { outcome, summary }
}

/// The pass itself: each step either hands over to the next or ends the pass
/// with every message it held handed back.
async fn pass<S: Subscription, D: Store, F: Future<Output = Signal>>(
    subscription: &S,
    connect_store: impl Future<Output = anyhow::Result<D>>,
    settings: &PassSettings,
    mut shutdown: Shutdown<'_, F>,
    summary: &mut Summary,
) -> Outcome {
    let mut store = if settings.dry_run {
        None
    } else {
        match connect(connect_store, shutdown.as_mut()).await {
            Ok(store) => Some(store),
            Err(outcome) => return outcome,
        }
    };

    // Receive.
    let lease = Lease::start(subscription.clone());
    let mut plan = Plan::default();
    let receiving = Instant::now();
    let stopped = receive(
        subscription,
        &mut plan,
        settings.max_messages,
        &lease,
        shutdown.as_mut(),
    )
    .await;
    plan.finish();
    summary.received = plan.len();
    summary.removed_ids = plan.user_ids().len();
    summary.ignored = plan.ignored;
    summary.malformed = plan.malformed();
    info!(
        "received {} messages in {} ms: {} users to delete, {} ignored, {} malformed",
        summary.received,
        receiving.elapsed().as_millis(),
        summary.removed_ids,
        summary.ignored,
        summary.malformed
    );
    if let Err(stop) = stopped {
        drop(lease);
        summary.nacked = hand_back_all(subscription, &mut plan).await;
        return match stop {
            Stop::Signal(signal) => Outcome::Interrupted(signal),
            Stop::PubSub(error) => {
                Outcome::PubSubFailed(error.context("receiving stopped; nothing was deleted"))
            }
        };
    }

    let Some(store) = store.as_mut() else {
        info!(
            "dry run: would delete {} users, acknowledge {} messages and hand back {}; handing all back",
            summary.removed_ids,
            plan.ack.len(),
            plan.hand_back.len()
        );
        debug!("dry run: user ids {:?}", plan.user_ids());
        drop(lease);
        summary.nacked = hand_back_all(subscription, &mut plan).await;
        return Outcome::Completed;
    };

    // Erase, before any acknowledgement.
    match erase(store, &plan, shutdown.as_mut()).await {
        Ok(rows) => summary.deleted_rows = rows,
        Err(outcome) => {
            drop(lease);
            summary.nacked = hand_back_all(subscription, &mut plan).await;
            return outcome;
        }
    }

    // Settle: the leases end, the acknowledgements and hand-backs settle them.
    drop(lease);
    settle_plan(subscription, plan, shutdown, summary).await
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

/// Deletes the plan's users in one transaction and commits; returns the rows
/// deleted. On failure or a signal nothing was committed (or, if COMMIT had
/// already landed, the redelivered messages repeat it harmlessly), and the
/// caller hands every message back.
async fn erase<D: Store>(
    store: &mut D,
    plan: &Plan,
    shutdown: Shutdown<'_, impl Future<Output = Signal>>,
) -> Result<u64, Outcome> {
    let user_ids = plan.user_ids();
    if user_ids.is_empty() {
        return Ok(0);
    }
    let deleting = Instant::now();
    // Dropping the delete future drops its connection, so an uncommitted
    // transaction rolls back.
    let deleted = tokio::select! {
        deleted = store.delete(user_ids) => deleted,
        signal = shutdown => {
            warn!("stopped by {signal:?} before the delete committed; handing every message back");
            return Err(Outcome::Interrupted(signal));
        }
    };
    match deleted {
        Ok(rows) => {
            info!(
                "deleted {rows} rows for {} users and committed in {} ms",
                user_ids.len(),
                deleting.elapsed().as_millis()
            );
            Ok(rows)
        }
        Err(error) => Err(Outcome::DatabaseFailed(
            error.context("nothing was acknowledged; every message was handed back"),
        )),
    }
}

/// Acknowledges the plan's valid messages and hands back the malformed. A
/// signal now does not stop this: the delete has committed, so finishing the
/// acknowledgements is the quickest way to a clean state.
async fn settle_plan<S: Subscription>(
    subscription: &S,
    mut plan: Plan,
    mut shutdown: Shutdown<'_, impl Future<Output = Signal>>,
    summary: &mut Summary,
) -> Outcome {
    let acking = Instant::now();
    let ack_ids = std::mem::take(&mut plan.ack);
    let hand_back = std::mem::take(&mut plan.hand_back);
    let mut settling = pin!(async {
        tokio::join!(
            settle(subscription, ack_ids, Request::Acknowledge),
            settle(subscription, hand_back, Request::Deadline(0))
        )
    });
    let mut signalled = None;
    let (acked, handed_back) = loop {
        tokio::select! {
            settled = settling.as_mut() => break settled,
            signal = shutdown.as_mut(), if signalled.is_none() => {
                info!("{signal:?} received; finishing the acknowledgements of the committed delete");
                signalled = Some(signal);
            }
        }
    };
    summary.acked = acked.done;
    summary.nacked = handed_back.done;
    info!(
        "acknowledged {} and handed back {} messages in {} ms",
        acked.done,
        handed_back.done,
        acking.elapsed().as_millis()
    );
    if let Some(error) = handed_back.error {
        // They come back when their deadline passes; nothing is lost.
        warn!(
            "{} malformed messages could not be handed back: {error:#}",
            handed_back.failed
        );
    }
    match (acked.error, signalled) {
        (Some(error), _) => Outcome::AckFailed(error.context(format!(
            "the delete committed, but {} acknowledgements failed; those messages will come back \
             and their deletes repeat harmlessly",
            acked.failed
        ))),
        (None, Some(signal)) => Outcome::Interrupted(signal),
        (None, None) => Outcome::Completed,
    }
}

/// Pulls until `max` messages are held or a Pull comes back empty, with up to
/// [`PULLS_IN_FLIGHT`] Pulls at once, and classifies each message as it arrives.
///
/// When it stops early, the Pulls still in flight are cancelled, and the
/// messages of those that had already answered join the plan, so that they
/// are handed back with the rest instead of waiting out their deadline.
async fn receive<S: Subscription>(
    subscription: &S,
    plan: &mut Plan,
    max: usize,
    lease: &Lease,
    mut shutdown: Shutdown<'_, impl Future<Output = Signal>>,
) -> Result<(), Stop> {
    let mut pulls = JoinSet::new();
    // Messages asked for by the Pulls in flight: held + reserved never exceeds max.
    let mut reserved = 0;
    let mut drained = false;
    debug!("receiving: up to {max} messages");
    let stop = loop {
        while !drained && pulls.len() < PULLS_IN_FLIGHT && plan.len() + reserved < max {
            let ask = (max - plan.len() - reserved).min(PULL_BATCH);
            reserved += ask;
            let subscription = subscription.clone();
            pulls.spawn(async move { (ask, subscription.pull(ask).await) });
        }
        let joined = tokio::select! {
            joined = pulls.join_next() => joined,
            signal = shutdown.as_mut() => {
                warn!("stopped by {signal:?} while receiving; handing every message back");
                break Stop::Signal(signal);
            }
        };
        match joined {
            None => return Ok(()),
            Some(Ok((ask, Ok(messages)))) => {
                debug!("a Pull returned {} messages", messages.len());
                reserved -= ask;
                drained |= messages.is_empty();
                take(plan, lease, messages);
            }
            Some(Ok((_, Err(error)))) => break Stop::PubSub(error),
            Some(Err(e)) => break Stop::PubSub(anyhow::anyhow!("a Pull task failed: {e}")),
        }
    };
    pulls.abort_all();
    while let Some(joined) = pulls.join_next().await {
        if let Ok((_, Ok(messages))) = joined {
            take(plan, lease, messages);
        }
    }
    Err(stop)
}

/// Classifies received messages into the plan, logging the malformed ones by
/// id and publish time, never by content, and puts them under the lease.
fn take(plan: &mut Plan, lease: &Lease, messages: Vec<Received>) {
    lease.hold(messages.iter().map(|m| m.ack_id.clone()));
    for message in messages {
        let verdict = event::classify(&message.data);
        if let Err(why) = verdict {
            warn!(
                "malformed message {} published {}: {why}; it will be handed back",
                message.message_id,
                message
                    .publish_time
                    .map_or_else(|| "at an unknown time".into(), timestamp::format)
            );
        }
        plan.add(message.ack_id, verdict);
    }
}

/// Keeps the leases of the messages a pass holds: a task of its own extends
/// them every [`LEASE_RENEWAL`], so that Pub/Sub does not deliver them to
/// another run while this one still works on them. Dropping it stops the
/// renewals at once, even one in flight (the pass then settles every message
/// itself; an extension that still lands only delays a handed-back message).
struct Lease {
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
    fn hold(&self, ack_ids: impl Iterator<Item = String>) {
        // A poisoned lock only means a renewal panicked; the ids are still good.
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.extend(ack_ids);
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

/// Nacks every held message so that the next run gets it at once. Returns how
/// many were handed back; the others come back when their deadline passes.
async fn hand_back_all<S: Subscription>(subscription: &S, plan: &mut Plan) -> usize {
    let all = plan.take_all();
    if all.is_empty() {
        return 0;
    }
    let handed_back = settle(subscription, all, Request::Deadline(0)).await;
    if let Some(error) = handed_back.error {
        warn!(
            "{} messages could not be handed back and will return when their deadline passes: {error:#}",
            handed_back.failed
        );
    }
    handed_back.done
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
