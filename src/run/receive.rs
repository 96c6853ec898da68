//! Receiving one round's messages: several Pulls at once, until the round has
//! its batch or the server itself says the subscription is empty.
//!
//! "Drained" is the server's word, never the client's clock. The first Pull
//! asks for an immediate answer (after connecting and authenticating, which
//! the Pull pays for), and its round trip sets how long the later long polls
//! may take on the client's side: the server's wait plus two round trips and
//! a margin for the server's own work. A
//! long poll that still gets no answer in that time says nothing about the
//! subscription; the round then asks for immediate answers only. The
//! subscription counts as drained after [`EMPTY_ANSWERS`] empty answers to
//! Pulls sent after the last messages arrived (with several Pulls in flight,
//! one may come back empty while another is being filled), and an immediate
//! Pull that gets no answer either is a Pub/Sub failure.

use std::time::{Duration, Instant};

use log::{debug, warn};
use tokio::task::JoinSet;

use super::lease::Lease;
use super::plan::Delivery;
use crate::event;
use crate::outcome::{ExitBy, Signal};
use crate::pubsub::{MAX_PER_PULL, Received, Subscription, Wait};
use crate::timestamp;

/// How many Pulls are in flight at once: enough to hide one Pull's latency,
/// few enough that every message taken is one this run can finish.
pub const PULLS_IN_FLIGHT: usize = 4;

/// The first Pull, alone, asks for this many: it measures the link and the
/// size of the messages before several Pulls of up to [`MAX_PER_PULL`] go out.
const FIRST_ASK: usize = 10;

/// Each Pull asks for about this many bytes at most, by the messages' average
/// size so far: [`PULLS_IN_FLIGHT`] Pulls hold at most about 32 MiB of messages.
const PULL_BYTES: usize = 8 << 20;

/// Empty answers in a row from the server that make the subscription drained.
/// Pub/Sub may answer one Pull empty while messages wait.
const EMPTY_ANSWERS: usize = 2;

/// The longest a long poll may take on the client's side.
const MAX_POLL: Duration = Duration::from_secs(30);

/// Added to a long poll's client deadline for the server's own work: a Pull
/// the client gives up on while the server fills it strands its messages
/// until their ack deadline (measured: the emulator takes 0.5 s and more per
/// Pull under a backlog of hundreds of thousands).
const POLL_MARGIN: Duration = Duration::from_secs(1);

/// Why receiving stopped before the round was complete.
pub enum Stop {
    Signal(Signal),
    PubSub(anyhow::Error),
}

/// What a round received.
pub struct Taken {
    /// Every message, in the order received, with what it asks for.
    pub deliveries: Vec<Delivery>,
    /// Another round may find messages: this one was full, or it saw
    /// ordering keys, whose next messages come once these are acknowledged.
    pub more_may_come: bool,
}

/// Receiving stopped early: why, what it had received (all of it to hand
/// back), and the exit deadline that began then.
pub struct Stopped {
    pub stop: Stop,
    pub deliveries: Vec<Delivery>,
    pub exit_by: ExitBy,
}

/// Pulls up to `max` messages, putting each under the lease. Stops at `max`,
/// when the server says the subscription is drained, or at `deadline` (no new
/// Pull starts after it).
pub async fn receive<S: Subscription>(
    subscription: &S,
    max: usize,
    pull_timeout: Duration,
    deadline: tokio::time::Instant,
    lease: &Lease,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = Signal>>,
) -> Result<Taken, Stopped> {
    let mut deliveries = Vec::new();
    let mut pulls = JoinSet::new();
    // Messages asked for by the Pulls in flight: held + reserved never exceeds max.
    let mut reserved = 0;
    let mut link = Link::new(pull_timeout);
    let mut empty_answers = 0;
    // When the last message-bearing answer arrived.
    let mut last_messages: Option<Instant> = None;
    let mut drained = false;
    let mut ordered = false;
    debug!("receiving: up to {max} messages");
    let stop = loop {
        while !drained
            && tokio::time::Instant::now() < deadline
            && pulls.len() < link.pulls_in_flight()
            && deliveries.len() + reserved < max
        {
            let ask = link.ask(max - deliveries.len() - reserved);
            let wait = link.wait();
            reserved += ask;
            let subscription = subscription.clone();
            pulls.spawn(async move {
                let sent = Instant::now();
                let pulled = subscription.pull(ask, wait).await;
                (ask, wait, sent, pulled)
            });
        }
        let joined = tokio::select! {
            joined = pulls.join_next() => joined,
            signal = shutdown.as_mut() => {
                warn!("stopped by {signal:?} while receiving; handing every message back");
                break Stop::Signal(signal);
            }
        };
        let (ask, wait, sent, pulled) = match joined {
            None => {
                let more_may_come = !deliveries.is_empty() && (deliveries.len() >= max || ordered);
                return Ok(Taken {
                    deliveries,
                    more_may_come,
                });
            }
            Some(Ok(done)) => done,
            Some(Err(e)) => break Stop::PubSub(anyhow::anyhow!("a Pull task failed: {e}")),
        };
        reserved -= ask;
        let took = sent.elapsed();
        match pulled {
            Ok(Some(messages)) => {
                debug!("a Pull returned {} messages", messages.len());
                link.answered(wait, took, &messages);
                if !messages.is_empty() {
                    empty_answers = 0;
                    last_messages = Some(Instant::now());
                } else if last_messages.is_none_or(|at| sent >= at) {
                    empty_answers += 1;
                    drained |= empty_answers >= EMPTY_ANSWERS;
                }
                ordered |= messages.iter().any(|m| m.ordered);
                take(&mut deliveries, lease, messages);
            }
            Ok(None) => match wait {
                Wait::Poll(limit) => {
                    debug!(
                        "a Pull got no answer within {limit:?}; asking for immediate answers from now on"
                    );
                    link.unanswered();
                }
                Wait::Now => {
                    break Stop::PubSub(anyhow::anyhow!(
                        "Pub/Sub answered no Pull within {:?}",
                        took
                    ));
                }
            },
            Err(error) => break Stop::PubSub(error),
        }
    };
    // Await the Pulls in flight for a while, so that their messages are
    // handed back now instead of staying leased to nobody.
    let exit_by = ExitBy::now();
    let _ = tokio::time::timeout_at(exit_by.pulls(), async {
        while let Some(joined) = pulls.join_next().await {
            if let Ok((_, _, _, Ok(Some(messages)))) = joined {
                take(&mut deliveries, lease, messages);
            }
        }
    })
    .await;
    pulls.abort_all();
    Err(Stopped {
        stop,
        deliveries,
        exit_by,
    })
}

/// What the round has learnt of the link: round trip, message size, whether
/// long polls get answers.
struct Link {
    pull_timeout: Duration,
    /// The first answer's round trip, once there is one.
    round_trip: Option<Duration>,
    /// Long polls went unanswered: ask for immediate answers only.
    immediate: bool,
    /// Bytes and messages seen, for the average size.
    bytes: usize,
    messages: usize,
}

impl Link {
    fn new(pull_timeout: Duration) -> Link {
        Link {
            pull_timeout,
            round_trip: None,
            immediate: false,
            bytes: 0,
            messages: 0,
        }
    }

    /// One Pull until the first answer, then several.
    fn pulls_in_flight(&self) -> usize {
        if self.round_trip.is_some() {
            PULLS_IN_FLIGHT
        } else {
            1
        }
    }

    /// How many messages the next Pull asks for, of the `left` still wanted.
    fn ask(&self, left: usize) -> usize {
        let by_size = match self.messages {
            0 => FIRST_ASK,
            n => (PULL_BYTES / (self.bytes / n).max(1)).max(1),
        };
        left.min(MAX_PER_PULL).min(by_size)
    }

    /// How long the server may hold the next Pull.
    fn wait(&self) -> Wait {
        match self.round_trip {
            Some(round_trip) if !self.immediate => {
                Wait::Poll((self.pull_timeout + 2 * round_trip + POLL_MARGIN).min(MAX_POLL))
            }
            _ => Wait::Now,
        }
    }

    fn answered(&mut self, wait: Wait, took: Duration, messages: &[Received]) {
        if self.round_trip.is_none() && wait == Wait::Now {
            self.round_trip = Some(took);
        }
        self.messages += messages.len();
        self.bytes += messages
            .iter()
            .map(|m| m.data.len() + m.ack_id.len() + m.message_id.len())
            .sum::<usize>();
    }

    fn unanswered(&mut self) {
        self.immediate = true;
    }
}

/// Puts received messages under the lease and classifies them as they come
/// (their data is not kept), logging the malformed ones by id and publish
/// time, never by content.
fn take(deliveries: &mut Vec<Delivery>, lease: &Lease, messages: Vec<Received>) {
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
        deliveries.push(Delivery {
            ack_id: message.ack_id,
            message_id: message.message_id,
            verdict,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: usize) -> Received {
        Received {
            ack_id: "a".repeat(10),
            message_id: "m".repeat(10),
            publish_time: None,
            data: vec![0; bytes],
            ordered: false,
        }
    }

    #[test]
    fn the_first_pull_is_alone_small_and_immediate() {
        let link = Link::new(Duration::from_millis(500));
        assert_eq!(link.pulls_in_flight(), 1);
        assert_eq!(link.ask(10_000), FIRST_ASK);
        assert_eq!(link.ask(3), 3);
        assert_eq!(link.wait(), Wait::Now);
    }

    #[test]
    fn the_round_trip_sets_the_long_polls_client_deadline() {
        let mut link = Link::new(Duration::from_millis(500));
        link.answered(Wait::Now, Duration::from_millis(700), &[message(20)]);
        assert_eq!(link.pulls_in_flight(), PULLS_IN_FLIGHT);
        assert_eq!(link.wait(), Wait::Poll(Duration::from_millis(2_900)));
        // Only the first immediate answer measures the link.
        link.answered(Wait::Now, Duration::from_secs(9), &[]);
        assert_eq!(link.wait(), Wait::Poll(Duration::from_millis(2_900)));
        link.answered(
            Wait::Poll(Duration::from_secs(1)),
            Duration::from_secs(20),
            &[],
        );
        assert_eq!(link.wait(), Wait::Poll(Duration::from_millis(2_900)));
        link.unanswered();
        assert_eq!(link.wait(), Wait::Now);
    }

    #[test]
    fn a_slow_first_answer_caps_the_long_poll() {
        let mut link = Link::new(Duration::from_millis(500));
        link.answered(Wait::Now, Duration::from_secs(60), &[]);
        assert_eq!(link.wait(), Wait::Poll(MAX_POLL));
    }

    #[test]
    fn large_messages_shrink_each_pull_to_its_byte_budget() {
        let mut link = Link::new(Duration::from_millis(500));
        link.answered(Wait::Now, Duration::from_millis(1), &[message(50)]);
        assert_eq!(link.ask(10_000), MAX_PER_PULL, "small events: full Pulls");
        let mut big = Link::new(Duration::from_millis(500));
        big.answered(
            Wait::Now,
            Duration::from_millis(1),
            &vec![message(1 << 20); 4],
        );
        let ask = big.ask(10_000);
        assert!((7..=8).contains(&ask), "{ask}");
        let mut huge = Link::new(Duration::from_millis(500));
        huge.answered(Wait::Now, Duration::from_millis(1), &[message(10 << 20)]);
        assert_eq!(huge.ask(10_000), 1, "always at least one");
    }
}
