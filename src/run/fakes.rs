//! The in-memory fakes of the run's unit tests: a subscription that behaves
//! like the emulator and a store with transactions. Both write to one shared
//! [`Log`], so a test can assert the order of the calls across both seams: no
//! acknowledgement before the commit, lease renewals before the acks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::outcome::Signal;
use crate::pubsub::{Received, Subscription, Wait};
use crate::store::{Chunked, Erased, Refusal, Removal, Store, StoreError};

/// The emulator answers at most this many messages per Pull.
pub(super) const EMULATOR_PULL_CAP: usize = 100;

/// Long enough that only a signal, or a dropped future, ends it within a test.
pub(super) const FOREVER: Duration = Duration::from_secs(3_600);

/// One call through either seam, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Call {
    Connect,
    Pull {
        asked: usize,
        got: usize,
    },
    /// A long poll that got no answer within its deadline.
    Unanswered,
    Acknowledge(Vec<String>),
    SetDeadline(Vec<String>, u16),
    DeleteStarted(Vec<u64>),
    DeleteCommitted(Vec<u64>),
    /// The pass took the test's signal (see [`signal_at`]).
    Signalled(Signal),
}

/// Every call, in order; a watch channel, so that a test can wait for a call.
#[derive(Clone)]
pub(super) struct Log(Arc<watch::Sender<Vec<Call>>>);

impl Default for Log {
    fn default() -> Log {
        Log(Arc::new(watch::Sender::new(Vec::new())))
    }
}

impl Log {
    pub(super) fn push(&self, call: Call) {
        self.0.send_modify(|calls| calls.push(call));
    }

    pub(super) fn calls(&self) -> Vec<Call> {
        self.0.borrow().clone()
    }

    /// Returns once a call that `wanted` matches has been logged.
    pub(super) async fn reached(&self, wanted: impl Fn(&Call) -> bool) {
        self.0
            .subscribe()
            .wait_for(|calls| calls.iter().any(&wanted))
            .await
            .expect("the log lives as long as this borrow of it");
    }

    pub(super) fn position(&self, wanted: impl Fn(&Call) -> bool) -> Option<usize> {
        self.calls().iter().position(wanted)
    }

    /// The index of the first call that `wanted` matches; fails the test,
    /// saying that `what` never happened, when there is none.
    pub(super) fn first(&self, what: &str, wanted: impl Fn(&Call) -> bool) -> usize {
        self.position(wanted)
            .unwrap_or_else(|| panic!("{what} never happened: {:?}", self.calls()))
    }

    pub(super) fn commit_index(&self) -> usize {
        self.first("the commit", |c| matches!(c, Call::DeleteCommitted(_)))
    }

    pub(super) fn first_ack_index(&self) -> usize {
        self.first("an acknowledgement", |c| matches!(c, Call::Acknowledge(_)))
    }

    pub(super) fn connected(&self) -> bool {
        self.position(|c| *c == Call::Connect).is_some()
    }

    /// The ids of every delete that was started.
    pub(super) fn deletes(&self) -> Vec<Vec<u64>> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::DeleteStarted(ids) => Some(ids),
                _ => None,
            })
            .collect()
    }

    pub(super) fn committed(&self) -> bool {
        self.position(|c| matches!(c, Call::DeleteCommitted(_)))
            .is_some()
    }
}

/// A subscription held in memory, behaving like the emulator.
#[derive(Clone)]
pub(super) struct FakeSubscription {
    pub(super) state: Arc<Mutex<Queue>>,
    pub(super) log: Log,
}

#[derive(Default)]
pub(super) struct Queue {
    /// Published and not yet pulled.
    pub(super) waiting: VecDeque<Received>,
    /// Ack ids of every message pulled, in order.
    pub(super) pulled: Vec<String>,
    pub(super) pulls: usize,
    /// Pulls after this many fail.
    pub(super) fail_pulls_after: Option<usize>,
    /// These Pulls (counted from 1) fail.
    pub(super) failing_pulls: Vec<usize>,
    /// Acknowledging these ack ids fails.
    pub(super) failing_acks: HashSet<String>,
    /// Ack ids acknowledged successfully.
    pub(super) acked: Vec<String>,
    /// Every deadline change: lease extensions, and with 0 hand-backs.
    pub(super) deadlines: Vec<(Vec<String>, u16)>,
    /// How long an empty Pull waits, like a real Pull until its timeout.
    pub(super) empty_pull_wait: Duration,
    /// Acknowledge requests are answered only once the pass has taken the
    /// test's signal, so that the signal lands while they are in flight.
    pub(super) acks_wait_for_the_signal: bool,
    /// Long polls get no answer within their deadline (a slow link): only
    /// immediate Pulls are answered.
    pub(super) long_polls_unanswered: bool,
    /// Immediate Pulls after the first get no answer either (Pub/Sub gone).
    pub(super) later_pulls_unanswered: bool,
    /// Every other answer is empty although messages wait, as Pub/Sub may do
    /// with several Pulls in flight.
    pub(super) flaky_empty_answers: bool,
}

impl FakeSubscription {
    pub(super) fn new(messages: Vec<Received>) -> FakeSubscription {
        FakeSubscription {
            state: Arc::new(Mutex::new(Queue {
                waiting: messages.into(),
                ..Queue::default()
            })),
            log: Log::default(),
        }
    }

    pub(super) fn with(self, change: impl FnOnce(&mut Queue)) -> FakeSubscription {
        change(&mut self.state.lock().unwrap());
        self
    }

    /// A store sharing this subscription's log, holding users `1..=1000`.
    pub(super) fn store(&self) -> FakeStore {
        FakeStore {
            log: self.log.clone(),
            users: (1..=1_000).collect(),
            delay: Duration::ZERO,
            fail: false,
            refusing: HashSet::new(),
            erased: Vec::new(),
            tables: vec!["users".into()],
            heavy: HashMap::new(),
            lagging_until: None,
            replica_wait: Duration::ZERO,
        }
    }

    pub(super) fn waiting(&self) -> usize {
        self.state.lock().unwrap().waiting.len()
    }

    pub(super) fn pulled(&self) -> Vec<String> {
        self.state.lock().unwrap().pulled.clone()
    }

    pub(super) fn acked(&self) -> Vec<String> {
        self.state.lock().unwrap().acked.clone()
    }

    pub(super) fn deadlines(&self) -> Vec<(Vec<String>, u16)> {
        self.state.lock().unwrap().deadlines.clone()
    }

    /// Every ack id nacked with deadline 0.
    pub(super) fn handed_back(&self) -> Vec<String> {
        self.deadlines()
            .into_iter()
            .filter(|(_, seconds)| *seconds == 0)
            .flat_map(|(ids, _)| ids)
            .collect()
    }

    /// Each message pulled was either acknowledged or handed back, exactly once.
    pub(super) fn assert_each_settled_once(&self) {
        let mut pulled = self.pulled();
        let mut settled = self.acked();
        settled.extend(self.handed_back());
        pulled.sort();
        settled.sort();
        assert_eq!(settled, pulled, "acked + handed back != pulled");
    }
}

impl Subscription for FakeSubscription {
    async fn pull(&self, max: usize, wait: Wait) -> anyhow::Result<Option<Vec<Received>>> {
        let unanswered = {
            let queue = self.state.lock().unwrap();
            match wait {
                Wait::Poll(deadline) => queue.long_polls_unanswered.then_some(deadline),
                Wait::Now => (queue.later_pulls_unanswered && queue.pulls > 0).then_some(FOREVER),
            }
        };
        if let Some(deadline) = unanswered {
            self.state.lock().unwrap().pulls += 1;
            self.log.push(Call::Unanswered);
            tokio::time::sleep(deadline).await;
            return Ok(None);
        }
        let (messages, empty_wait) = {
            let mut queue = self.state.lock().unwrap();
            queue.pulls += 1;
            let n = queue.pulls;
            if queue.fail_pulls_after.is_some_and(|after| n > after)
                || queue.failing_pulls.contains(&n)
            {
                bail!("fake: Pull {n} failed: UNAVAILABLE");
            }
            let take = if queue.flaky_empty_answers && n.is_multiple_of(2) {
                0
            } else {
                max.min(EMULATOR_PULL_CAP).min(queue.waiting.len())
            };
            let messages: Vec<Received> = queue.waiting.drain(..take).collect();
            queue
                .pulled
                .extend(messages.iter().map(|m| m.ack_id.clone()));
            (messages, queue.empty_pull_wait)
        };
        self.log.push(Call::Pull {
            asked: max,
            got: messages.len(),
        });
        if messages.is_empty() && matches!(wait, Wait::Poll(_)) && !empty_wait.is_zero() {
            tokio::time::sleep(empty_wait).await;
        }
        Ok(Some(messages))
    }

    const MAX_ACK_IDS: usize = 1_000;

    /// Like Pub/Sub, a request fails or succeeds as a whole.
    async fn acknowledge(&self, ack_ids: Vec<String>, _give_up: Instant) -> anyhow::Result<()> {
        assert!(
            ack_ids.len() <= Self::MAX_ACK_IDS,
            "{} ack ids in one request",
            ack_ids.len()
        );
        self.log.push(Call::Acknowledge(ack_ids.clone()));
        if self.state.lock().unwrap().acks_wait_for_the_signal {
            self.log.reached(|c| matches!(c, Call::Signalled(_))).await;
        }
        let mut queue = self.state.lock().unwrap();
        if let Some(id) = ack_ids.iter().find(|id| queue.failing_acks.contains(*id)) {
            bail!("fake: Acknowledge failed because of {id}");
        }
        queue.acked.extend(ack_ids);
        Ok(())
    }

    async fn set_deadline(
        &self,
        ack_ids: Vec<String>,
        seconds: u16,
        _give_up: Instant,
    ) -> anyhow::Result<()> {
        assert!(
            ack_ids.len() <= Self::MAX_ACK_IDS,
            "{} ack ids in one request",
            ack_ids.len()
        );
        self.log.push(Call::SetDeadline(ack_ids.clone(), seconds));
        self.state
            .lock()
            .unwrap()
            .deadlines
            .push((ack_ids, seconds));
        Ok(())
    }
}

/// A users table held in memory, with transactions: erased users are gone
/// only once committed.
pub(super) struct FakeStore {
    pub(super) log: Log,
    pub(super) users: HashSet<u64>,
    pub(super) delay: Duration,
    pub(super) fail: bool,
    /// Users whose rows refuse the delete (a RESTRICT child, a trigger).
    pub(super) refusing: HashSet<u64>,
    /// Erased in the open transaction, not yet committed.
    pub(super) erased: Vec<u64>,
    /// Its one table.
    pub(super) tables: Vec<String>,
    /// Users with more rows than a chunk, and how long erasing them alone
    /// takes; at the deadline it stops (rolled back).
    pub(super) heavy: HashMap<u64, Duration>,
    /// The replicas lag until then.
    pub(super) lagging_until: Option<tokio::time::Instant>,
    pub(super) replica_wait: Duration,
}

impl FakeStore {
    pub(super) fn slow(self, delay: Duration) -> FakeStore {
        FakeStore { delay, ..self }
    }

    pub(super) fn failing(self) -> FakeStore {
        FakeStore { fail: true, ..self }
    }

    pub(super) fn heavy(self, user: u64, takes: Duration) -> FakeStore {
        let mut heavy = self.heavy.clone();
        heavy.insert(user, takes);
        FakeStore { heavy, ..self }
    }

    pub(super) fn lagging_for(self, lag: Duration) -> FakeStore {
        FakeStore {
            lagging_until: Some(tokio::time::Instant::now() + lag),
            ..self
        }
    }

    pub(super) fn refusing(self, users: impl IntoIterator<Item = u64>) -> FakeStore {
        FakeStore {
            refusing: users.into_iter().collect(),
            ..self
        }
    }
}

impl Store for FakeStore {
    fn tables(&self) -> &[String] {
        &self.tables
    }

    async fn begin(&mut self) -> Result<(), StoreError> {
        self.erased.clear();
        Ok(())
    }

    fn users_entry(&self) -> usize {
        self.tables.len() - 1
    }

    fn chunked_tables(&self) -> Vec<&str> {
        Vec::new()
    }

    async fn wait_for_replicas(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<(), StoreError> {
        let Some(until) = self.lagging_until else {
            return Ok(());
        };
        let now = tokio::time::Instant::now();
        if until > deadline {
            tokio::time::sleep_until(deadline.max(now)).await;
            self.replica_wait += deadline.saturating_duration_since(now);
            return Err(StoreError::Lagging(
                "replica fake lagged until --max-duration: replication stopped (limit 5 s)".into(),
            ));
        }
        tokio::time::sleep_until(until).await;
        self.replica_wait += until.saturating_duration_since(now);
        Ok(())
    }

    fn replica_wait(&self) -> Duration {
        self.replica_wait
    }

    async fn erase_chunked(
        &mut self,
        _removals: &[Removal],
        _deadline: tokio::time::Instant,
    ) -> Result<Chunked, StoreError> {
        unreachable!("the fake has no chunked entries")
    }

    async fn erase(
        &mut self,
        removals: &[Removal],
        deadline: tokio::time::Instant,
    ) -> Result<Erased, StoreError> {
        let user_ids: Vec<u64> = removals.iter().map(|r| r.user_id).collect();
        self.log.push(Call::DeleteStarted(user_ids.clone()));
        let heavy: Vec<u64> = user_ids
            .iter()
            .copied()
            .filter(|id| self.heavy.contains_key(id))
            .collect();
        match heavy[..] {
            [] => {}
            [user] if user_ids.len() == 1 => {
                let done = tokio::time::Instant::now() + self.heavy[&user];
                if done > deadline {
                    tokio::time::sleep_until(deadline).await;
                    return Err(StoreError::OutOfTime);
                }
                tokio::time::sleep_until(done).await;
            }
            _ => return Err(StoreError::Heavy(heavy)),
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.fail {
            return Err(StoreError::Failed(anyhow!(
                "fake: Lock wait timeout exceeded; the transaction rolled back"
            )));
        }
        if let Some(id) = user_ids.iter().find(|id| self.refusing.contains(id)) {
            return Err(StoreError::Refused(Refusal {
                table: "users".into(),
                reason: format!("fake: legal hold on {id}"),
            }));
        }
        self.erased.extend_from_slice(&user_ids);
        Ok(Erased {
            rows: vec![user_ids.iter().filter(|id| self.users.contains(id)).count() as u64],
            recorded: 0,
            chunks: 0,
        })
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        let erased = std::mem::take(&mut self.erased);
        for id in &erased {
            self.users.remove(id);
        }
        self.log.push(Call::DeleteCommitted(erased));
        Ok(())
    }

    async fn rollback(&mut self) {
        self.erased.clear();
    }
}

/// Connects to the store, leaving a trace in the log when polled.
pub(super) async fn connected(store: FakeStore) -> anyhow::Result<FakeStore> {
    store.log.push(Call::Connect);
    Ok(store)
}
