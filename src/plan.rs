//! Deciding what to do with each received message: pure logic over data.
//!
//! The pass feeds every message's verdict into a [`Plan`]; the plan says which
//! users to delete, which messages to acknowledge after the delete commits, and
//! which to hand back. Every message lands in exactly one of the two lists.

use crate::event::{Event, Malformed};

/// What the pass will do with the messages it holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Ids of valid USER_REMOVED events, possibly repeated until [`Plan::finish`]
    /// sorts and deduplicates them in place.
    user_ids: Vec<u64>,
    /// Messages acknowledged once the delete has committed: removals and other
    /// valid events.
    pub ack: Vec<String>,
    /// Malformed messages, nacked at the end of the pass so that the
    /// subscription's dead-letter policy counts the attempt.
    pub hand_back: Vec<String>,
    /// Valid events that ask for nothing (created, changed, access changed).
    pub ignored: usize,
}

impl Plan {
    /// Records one message's verdict.
    pub fn add(&mut self, ack_id: String, verdict: Result<Event, Malformed>) {
        match verdict {
            Ok(Event::Removed(user_id)) => {
                self.user_ids.push(user_id);
                self.ack.push(ack_id);
            }
            Ok(Event::Other(_)) => {
                self.ignored += 1;
                self.ack.push(ack_id);
            }
            Err(_) => self.hand_back.push(ack_id),
        }
    }

    /// Sorts and deduplicates the ids once every message is in. Ascending ids
    /// give concurrent runs one lock order.
    pub fn finish(&mut self) {
        self.user_ids.sort_unstable();
        self.user_ids.dedup();
    }

    /// The user ids to delete: distinct and ascending once [`Plan::finish`] ran.
    pub fn user_ids(&self) -> &[u64] {
        &self.user_ids
    }

    /// How many messages the plan holds.
    pub fn len(&self) -> usize {
        self.ack.len() + self.hand_back.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many messages were malformed.
    pub fn malformed(&self) -> usize {
        self.hand_back.len()
    }

    /// Every ack id held, for handing everything back when the pass cannot finish.
    pub fn take_all(&mut self) -> Vec<String> {
        let mut all = std::mem::take(&mut self.ack);
        all.append(&mut self.hand_back);
        all
    }

    /// Every ack id held, copied, for extending their leases.
    pub fn all_ack_ids(&self) -> Vec<String> {
        self.ack.iter().chain(&self.hand_back).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{classify, encode, event_type};

    fn plan_of(messages: &[(&str, Vec<u8>)]) -> Plan {
        let mut plan = Plan::default();
        for (ack_id, data) in messages {
            plan.add(ack_id.to_string(), classify(data));
        }
        plan.finish();
        plan
    }

    #[test]
    fn deletes_distinct_removed_ids_and_accounts_for_every_message() {
        let plan = plan_of(&[
            ("a", encode(event_type::REMOVED, 9)),
            ("b", encode(event_type::CHANGED, 1)),
            ("c", encode(event_type::REMOVED, 3)),
            ("d", encode(event_type::REMOVED, 9)),
            ("e", b"not protobuf \xff\xff".to_vec()),
            ("f", encode(event_type::REMOVED, 0)),
            ("g", encode(event_type::CREATED, 2)),
        ]);
        assert_eq!(plan.user_ids(), &[3, 9]);
        assert_eq!(plan.ack, ["a", "b", "c", "d", "g"]);
        assert_eq!(plan.hand_back, ["e", "f"]);
        assert_eq!((plan.ignored, plan.malformed(), plan.len()), (2, 2, 7));
    }

    #[test]
    fn take_all_hands_back_everything_once() {
        let mut plan = plan_of(&[("a", encode(event_type::REMOVED, 1)), ("b", vec![0xff])]);
        assert_eq!(plan.all_ack_ids(), ["a", "b"]);
        assert_eq!(plan.take_all(), ["a", "b"]);
        assert!(plan.is_empty());
    }

    #[test]
    fn an_empty_plan_deletes_nothing() {
        let mut plan = Plan::default();
        plan.finish();
        assert!(plan.user_ids().is_empty());
        assert!(plan.is_empty());
    }
}
