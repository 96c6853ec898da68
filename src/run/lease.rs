//! Settling messages with the subscription: acknowledging, handing back, and
//! keeping the leases of the messages a run holds ([`Lease`]). Requests go in
//! chunks of at most [`Subscription::MAX_ACK_IDS`], all at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{debug, warn};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use crate::pubsub::Subscription;

/// Leases are renewed this often. The shortest ack deadline Pub/Sub allows is
/// 10 s, so a message received just after one renewal gets its first before then.
pub const LEASE_RENEWAL: Duration = Duration::from_secs(4);

/// Each renewal sets the ack deadline this far ahead: long enough to ride out a
/// slow renewal, short enough that a killed run's messages come back soon.
const LEASE_SECONDS: u16 = 60;

/// How long a request may take, retries included, when the run is not
/// stopping (a stopping run's requests end by its [`crate::outcome::ExitBy`]).
pub const REQUEST_BUDGET: Duration = Duration::from_secs(5);

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

/// How [`settle`] settles messages.
#[derive(Debug, Clone, Copy)]
pub enum Request {
    Acknowledge,
    /// Set the ack deadline to this many seconds; 0 hands the messages back.
    Deadline(u16),
}

/// Sends the ack ids in requests of at most [`Subscription::MAX_ACK_IDS`], all
/// at once, and waits for every one of them; each gives up at `give_up`.
pub async fn settle<S: Subscription>(
    subscription: &S,
    ack_ids: Vec<String>,
    request: Request,
    give_up: Instant,
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
                Request::Acknowledge => subscription.acknowledge(chunk, give_up).await,
                Request::Deadline(seconds) => {
                    subscription.set_deadline(chunk, seconds, give_up).await
                }
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

/// Nacks the messages so that the next run gets them at once, giving up at
/// `give_up`. Returns how many were handed back; the others come back when
/// their deadline passes.
pub async fn hand_back<S: Subscription>(
    subscription: &S,
    ack_ids: Vec<String>,
    give_up: Instant,
) -> usize {
    if ack_ids.is_empty() {
        return 0;
    }
    let handed_back = settle(subscription, ack_ids, Request::Deadline(0), give_up).await;
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
/// renewals at once, even one in flight (the run then settles every message
/// itself; an extension that still lands only delays a handed-back message).
pub struct Lease {
    held: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Lease {
    pub fn start<S: Subscription>(subscription: S) -> Lease {
        let held = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(renew_every_period(subscription, Arc::clone(&held)));
        Lease { held, task }
    }

    /// Puts more messages under the lease.
    pub fn hold(&self, ack_ids: impl Iterator<Item = String>) {
        // A poisoned lock only means a renewal panicked; the ids are still good.
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.extend(ack_ids);
    }

    /// Keeps only these messages under the lease (the others were settled).
    pub fn hold_only(&self, ack_ids: &[String]) {
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
    let mut timer = tokio::time::interval_at(Instant::now() + LEASE_RENEWAL, LEASE_RENEWAL);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        let ack_ids = held.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if ack_ids.is_empty() {
            continue;
        }
        let n = ack_ids.len();
        let give_up = Instant::now() + REQUEST_BUDGET;
        let renewed = settle(
            &subscription,
            ack_ids,
            Request::Deadline(LEASE_SECONDS),
            give_up,
        )
        .await;
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
