//! The subscription seam: what the run needs of a Pub/Sub subscription
//! (pull, acknowledge, set a deadline), and nothing else. The run and its unit
//! tests' fakes depend on this module only; [`google`] is the real service
//! behind it, and the admin client of the operator's commands.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

pub mod google;

/// The most messages one Pull may ask for on the real service (the emulator
/// answers at most 100, whatever is asked).
pub const MAX_PER_PULL: usize = 1_000;

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
    /// One request acknowledging the messages; Pub/Sub will not deliver them
    /// again. It is retried until `give_up`, and fails then.
    fn acknowledge(
        &self,
        ack_ids: Vec<String>,
        give_up: Instant,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// One request setting the messages' ack deadline: a lease extension, or
    /// with 0 a nack that hands them back at once. Retried until `give_up`.
    fn set_deadline(
        &self,
        ack_ids: Vec<String>,
        seconds: u16,
        give_up: Instant,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}
