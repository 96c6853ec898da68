//! Deciding what to do with each received message: pure logic over data.
//!
//! A [`Plan`] is a function of what one round received: which users to
//! erase, which messages to acknowledge once the erasure has committed, and
//! which to hand back. Every message lands in exactly one of the two lists.

use std::collections::{BTreeSet, HashSet};

use crate::event::{Event, Malformed};
use crate::store::Removal;

/// One message as received, with what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub ack_id: String,
    pub message_id: String,
    pub verdict: Result<Event, Malformed>,
}

/// What the run will do with the messages of one round.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Messages acknowledged once the erasure has committed: removals and
    /// other valid events.
    ack: Vec<String>,
    /// Malformed messages, nacked at the end of the run so that the
    /// subscription's dead-letter policy counts the attempt.
    hand_back: Vec<String>,
    /// Valid events that ask for nothing (created, changed, access changed).
    ignored: usize,
    /// Which message asked for which user, so that the messages of users the
    /// database refused can be handed back and the rest acknowledged.
    asked_by: Vec<(u64, String)>,
    /// Each user to erase with the first message that asked, by user id:
    /// ascending ids give concurrent runs one lock order.
    removals: Vec<Removal>,
}

/// The messages of a round once its erasure is settled.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// To acknowledge now.
    pub ack: Vec<String>,
    /// To hand back: malformed, or asking for users left as they were.
    pub hand_back: Vec<String>,
}

impl Plan {
    /// The plan for these deliveries, in the order they were received.
    pub fn new(deliveries: impl IntoIterator<Item = Delivery>) -> Plan {
        let mut plan = Plan::default();
        for delivery in deliveries {
            match delivery.verdict {
                Ok(Event::Removed(user_id)) => {
                    plan.removals.push(Removal {
                        user_id,
                        message_id: delivery.message_id,
                    });
                    plan.asked_by.push((user_id, delivery.ack_id.clone()));
                    plan.ack.push(delivery.ack_id);
                }
                Ok(Event::Other(_)) => {
                    plan.ignored += 1;
                    plan.ack.push(delivery.ack_id);
                }
                Err(_) => plan.hand_back.push(delivery.ack_id),
            }
        }
        // Stable: of several messages for one user, the first stays.
        plan.removals.sort_by_key(|r| r.user_id);
        plan.removals.dedup_by_key(|r| r.user_id);
        plan
    }

    /// The users to erase, each with the first message that asked: distinct
    /// and ascending.
    pub fn removals(&self) -> &[Removal] {
        &self.removals
    }

    /// The user ids to erase: distinct and ascending.
    pub fn user_ids(&self) -> Vec<u64> {
        self.removals.iter().map(|r| r.user_id).collect()
    }

    /// Messages to acknowledge if every user is erased.
    pub fn ack(&self) -> &[String] {
        &self.ack
    }

    /// Messages handed back whatever happens: the malformed ones.
    pub fn hand_back(&self) -> &[String] {
        &self.hand_back
    }

    /// How many messages the plan holds.
    pub fn len(&self) -> usize {
        self.ack.len() + self.hand_back.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Valid events that ask for nothing.
    pub fn ignored(&self) -> usize {
        self.ignored
    }

    /// How many messages were malformed.
    pub fn malformed(&self) -> usize {
        self.hand_back.len()
    }

    /// What to acknowledge and hand back once the erasure committed: the
    /// messages that asked for any of the `kept` users (the database refused
    /// them, or they were not tried) go back with the malformed ones.
    pub fn settle(self, kept: &BTreeSet<u64>) -> Settlement {
        let withheld: HashSet<&str> = self
            .asked_by
            .iter()
            .filter(|(user_id, _)| kept.contains(user_id))
            .map(|(_, ack_id)| ack_id.as_str())
            .collect();
        let (back, ack): (Vec<String>, Vec<String>) = self
            .ack
            .iter()
            .cloned()
            .partition(|ack_id| withheld.contains(ack_id.as_str()));
        let mut hand_back = self.hand_back;
        hand_back.extend(back);
        Settlement { ack, hand_back }
    }

    /// Every ack id held, for handing everything back when the round cannot finish.
    pub fn take_all(self) -> Vec<String> {
        let mut all = self.ack;
        all.extend(self.hand_back);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{classify, encode, event_type};

    fn plan_of(messages: &[(&str, Vec<u8>)]) -> Plan {
        Plan::new(messages.iter().map(|(ack_id, data)| Delivery {
            ack_id: ack_id.to_string(),
            message_id: format!("m-{ack_id}"),
            verdict: classify(data),
        }))
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
        assert_eq!(plan.ack(), ["a", "b", "c", "d", "g"]);
        assert_eq!(plan.hand_back(), ["e", "f"]);
        assert_eq!((plan.ignored(), plan.malformed(), plan.len()), (2, 2, 7));
    }

    #[test]
    fn each_user_is_erased_once_for_the_first_message_that_asked() {
        let plan = plan_of(&[
            ("a", encode(event_type::REMOVED, 9)),
            ("b", encode(event_type::REMOVED, 3)),
            ("c", encode(event_type::REMOVED, 9)),
        ]);
        let removals: Vec<(u64, &str)> = plan
            .removals()
            .iter()
            .map(|r| (r.user_id, r.message_id.as_str()))
            .collect();
        assert_eq!(removals, [(3, "m-b"), (9, "m-a")]);
    }

    #[test]
    fn take_all_hands_back_everything_once() {
        let plan = plan_of(&[("a", encode(event_type::REMOVED, 1)), ("b", vec![0xff])]);
        assert_eq!(plan.take_all(), ["a", "b"]);
    }

    #[test]
    fn the_messages_of_refused_users_are_handed_back_and_only_theirs() {
        let plan = plan_of(&[
            ("a", encode(event_type::REMOVED, 7)),
            ("b", encode(event_type::REMOVED, 8)),
            ("c", encode(event_type::CHANGED, 7)),
            ("d", encode(event_type::REMOVED, 7)),
            ("e", vec![0xff]),
        ]);
        let all = plan.clone().settle(&BTreeSet::new());
        assert_eq!(all.ack, ["a", "b", "c", "d"]);
        assert_eq!(all.hand_back, ["e"]);
        let kept = plan.settle(&BTreeSet::from([7, 99]));
        assert_eq!(kept.ack, ["b", "c"]);
        assert_eq!(kept.hand_back, ["e", "a", "d"]);
    }

    #[test]
    fn an_empty_plan_deletes_nothing() {
        let plan = Plan::new([]);
        assert!(plan.user_ids().is_empty());
        assert!(plan.is_empty());
    }

    #[test]
    fn ids_above_a_signed_bigint_keep_their_value_and_sort_unsigned() {
        let huge = (1 << 63) + 1;
        let plan = plan_of(&[
            ("a", encode(event_type::REMOVED, u64::MAX)),
            ("b", encode(event_type::REMOVED, huge)),
            ("c", encode(event_type::REMOVED, 5)),
            ("d", encode(event_type::REMOVED, huge)),
        ]);
        assert_eq!(plan.user_ids(), &[5, huge, u64::MAX]);
        assert_eq!(plan.ack(), ["a", "b", "c", "d"]);
    }

    #[test]
    fn a_malformed_message_never_cancels_a_valid_removal_of_the_same_user() {
        let plan = plan_of(&[
            ("a", encode(event_type::REMOVED, 4)),
            ("b", encode(event_type::REMOVED, 4)[..3].to_vec()),
            ("c", encode(17, 4)),
        ]);
        assert_eq!(plan.user_ids(), &[4]);
        assert_eq!((plan.ack().len(), plan.malformed()), (1, 2));
    }

    /// The property test: any list of messages, checked against an oracle
    /// that reads the wire format on its own, without prost.
    mod property {
        use std::collections::BTreeSet;

        use proptest::prelude::*;

        use super::super::{Delivery, Plan};
        use crate::event::{Event, classify};

        /// What a message asks for, by the README: a valid USER_REMOVED with a
        /// user id is a removal; USER_CREATED, USER_CHANGED and
        /// USER_ACCESS_CHANGED are ignored; anything else is malformed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Expected {
            Remove(u64),
            Ignore,
            Malformed,
        }

        fn meaning(event_type: i32, user_id: u64) -> Expected {
            match (event_type, user_id) {
                (4, 0) => Expected::Malformed,
                (4, id) => Expected::Remove(id),
                (1..=3, _) => Expected::Ignore,
                _ => Expected::Malformed,
            }
        }

        /// The oracle: `UserEventData` read by the protobuf encoding rules.
        /// The last value of a field wins, unknown fields are skipped; a key
        /// or value cut short, a known field with the wrong wire type, field
        /// number 0, wire type 6 or 7, an unmatched group, invalid UTF-8 in a
        /// string or nesting beyond 100 levels makes the message undecodable.
        fn oracle(data: &[u8]) -> Expected {
            match read_event(data) {
                Some((event_type, user_id)) => meaning(event_type, user_id),
                None => Expected::Malformed,
            }
        }

        /// prost's nesting limit.
        const DEPTH: u32 = 100;

        fn read_event(data: &[u8]) -> Option<(i32, u64)> {
            let mut reader = Reader(data);
            let (mut event_type, mut user_id) = (0, 0);
            while !reader.0.is_empty() {
                match reader.key()? {
                    // int32 and enum fields keep the low 32 bits.
                    (1, 0) => event_type = reader.varint()? as i32,
                    (2, 0) => user_id = reader.varint()?,
                    (3, 2) => {
                        let timestamp = reader.delimited()?;
                        read_timestamp(timestamp)?;
                    }
                    (4 | 5, 2) => {
                        std::str::from_utf8(reader.delimited()?).ok()?;
                    }
                    (1..=5, _) => return None,
                    (field, wire_type) => reader.skip(field, wire_type, DEPTH)?,
                }
            }
            Some((event_type, user_id))
        }

        fn read_timestamp(data: &[u8]) -> Option<()> {
            let mut reader = Reader(data);
            while !reader.0.is_empty() {
                match reader.key()? {
                    (1 | 2, 0) => drop(reader.varint()?),
                    (1 | 2, _) => return None,
                    (field, wire_type) => reader.skip(field, wire_type, DEPTH - 1)?,
                }
            }
            Some(())
        }

        struct Reader<'a>(&'a [u8]);

        impl<'a> Reader<'a> {
            fn byte(&mut self) -> Option<u8> {
                let (&byte, rest) = self.0.split_first()?;
                self.0 = rest;
                Some(byte)
            }

            /// At most 10 bytes; the tenth may only carry the 64th bit.
            fn varint(&mut self) -> Option<u64> {
                let mut value = 0;
                for i in 0..10 {
                    let byte = self.byte()?;
                    if i == 9 && byte > 1 {
                        return None;
                    }
                    value |= u64::from(byte & 0x7f) << (7 * i);
                    if byte < 0x80 {
                        return Some(value);
                    }
                }
                None
            }

            fn take(&mut self, n: u64) -> Option<&'a [u8]> {
                let n = usize::try_from(n).ok().filter(|&n| n <= self.0.len())?;
                let (taken, rest) = self.0.split_at(n);
                self.0 = rest;
                Some(taken)
            }

            fn delimited(&mut self) -> Option<&'a [u8]> {
                let n = self.varint()?;
                self.take(n)
            }

            /// A field's number and wire type.
            fn key(&mut self) -> Option<(u64, u8)> {
                let key = u32::try_from(self.varint()?).ok()?;
                let (field, wire_type) = (u64::from(key >> 3), (key & 7) as u8);
                (field != 0 && wire_type <= 5).then_some((field, wire_type))
            }

            /// Skips an unknown field's value; `depth` levels of nesting remain.
            fn skip(&mut self, field: u64, wire_type: u8, depth: u32) -> Option<()> {
                if depth == 0 {
                    return None;
                }
                match wire_type {
                    0 => drop(self.varint()?),
                    1 => drop(self.take(8)?),
                    2 => drop(self.delimited()?),
                    3 => loop {
                        match self.key()? {
                            (end, 4) => return (end == field).then_some(()),
                            (inner, wire_type) => self.skip(inner, wire_type, depth - 1)?,
                        }
                    },
                    5 => drop(self.take(4)?),
                    _ => return None, // an end group with no start
                }
                Some(())
            }
        }

        use crate::event::wire::{field_bytes, field_varint, key, varint};

        /// Event types: mostly the known ones, removals above all.
        fn event_types() -> impl Strategy<Value = i32> {
            prop_oneof![
                4 => Just(4),
                3 => 0..=3,
                1 => prop_oneof![Just(5), Just(i32::MAX), Just(i32::MIN), -3..0, any::<i32>()],
            ]
        }

        /// User ids: few small ones, so that duplicates are common; zero; and
        /// ids above a signed BIGINT's range.
        fn user_ids() -> impl Strategy<Value = u64> {
            prop_oneof![
                1 => Just(0),
                6 => 1..=20u64,
                1 => Just(i64::MAX as u64),
                1 => Just(1 << 63),
                1 => Just((1 << 63) + 1),
                1 => Just(u64::MAX),
                2 => (1u64 << 63)..,
                2 => any::<u64>(),
            ]
        }

        /// A field no version of the schema has used yet, of any wire type.
        fn unknown_field() -> impl Strategy<Value = Vec<u8>> {
            let field = prop_oneof![6..=40u64, Just((1 << 29) - 1)];
            let payload = proptest::collection::vec(any::<u8>(), 0..10);
            (field, 0..5u8, any::<u64>(), payload).prop_map(
                |(field, kind, n, payload)| match kind {
                    0 => field_varint(field, n),
                    1 => [key(field, 1), n.to_le_bytes().to_vec()].concat(),
                    2 => field_bytes(field, &payload),
                    3 => [key(field, 5), (n as u32).to_le_bytes().to_vec()].concat(),
                    _ => [key(field, 3), field_varint(1, n), key(field, 4)].concat(),
                },
            )
        }

        /// A well-formed event as a publisher might write it: fields in any
        /// order, zeros left out or written, a timestamp, strings, unknown
        /// fields, and earlier values of event_type and user_id that the last
        /// ones override. Returns the data and what it means by construction.
        fn well_formed() -> impl Strategy<Value = (Vec<u8>, Expected)> {
            (
                event_types(),
                user_ids(),
                any::<(bool, bool)>(),
                proptest::option::of((event_types(), user_ids())),
                proptest::option::of((any::<i64>(), any::<i32>())),
                proptest::option::of(".{0,12}"),
                proptest::collection::vec(unknown_field(), 0..3),
            )
                .prop_flat_map(
                    |(
                        event_type,
                        user_id,
                        (type_written, id_written),
                        earlier,
                        at,
                        email,
                        unknown,
                    )| {
                        let mut fields = unknown;
                        if let Some((seconds, nanos)) = at {
                            let timestamp = [
                                field_varint(1, seconds as u64),
                                field_varint(2, i64::from(nanos) as u64),
                            ]
                            .concat();
                            fields.push(field_bytes(3, &timestamp));
                        }
                        if let Some(email) = email {
                            fields.push(field_bytes(4, email.as_bytes()));
                            fields.push(field_bytes(5, "Zoë".as_bytes()));
                        }
                        // Earlier values go first, and force the last ones to
                        // be written even when they are zero.
                        let prefix = match earlier {
                            Some((t, id)) => {
                                [field_varint(1, i64::from(t) as u64), field_varint(2, id)].concat()
                            }
                            None => Vec::new(),
                        };
                        if event_type != 0 || type_written || earlier.is_some() {
                            fields.push(field_varint(1, i64::from(event_type) as u64));
                        }
                        if user_id != 0 || id_written || earlier.is_some() {
                            fields.push(field_varint(2, user_id));
                        }
                        let expected = meaning(event_type, user_id);
                        Just(fields).prop_shuffle().prop_map(move |fields| {
                            let data = [prefix.clone(), fields.concat()].concat();
                            (data, expected)
                        })
                    },
                )
        }

        /// Fields with random numbers, wire types and payloads, lengths that
        /// may lie: data that is often protobuf and often almost.
        fn protobuf_like() -> impl Strategy<Value = Vec<u8>> {
            let field = (
                prop_oneof![0..=6u64, Just(99)],
                0..8u8,
                prop_oneof![0..=5u64, any::<u64>()],
                proptest::collection::vec(any::<u8>(), 0..6),
            )
                .prop_map(|(field, wire_type, n, payload)| {
                    [key(field, wire_type), varint(n), payload].concat()
                });
            proptest::collection::vec(field, 0..4).prop_map(|fields| fields.concat())
        }

        /// One message's data, and what it means when known by construction.
        fn message_data() -> impl Strategy<Value = (Vec<u8>, Option<Expected>)> {
            prop_oneof![
                5 => well_formed().prop_map(|(data, expected)| (data, Some(expected))),
                2 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(|data| (data, None)),
                2 => protobuf_like().prop_map(|data| (data, None)),
                // A well-formed event cut short anywhere.
                2 => (well_formed(), any::<prop::sample::Index>()).prop_map(|((data, _), cut)| {
                    let cut = cut.index(data.len() + 1);
                    (data[..cut].to_vec(), None)
                }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn the_plan_deletes_exactly_the_valid_removals_and_accounts_for_every_message(
                messages in proptest::collection::vec(message_data(), 0..40)
            ) {
                let mut deliveries = Vec::new();
                let mut expected = Vec::new();
                for (i, (data, by_construction)) in messages.iter().enumerate() {
                    let oracle = oracle(data);
                    if let Some(by_construction) = by_construction {
                        prop_assert_eq!(oracle, *by_construction, "the oracle misread {:?}", data);
                    }
                    let verdict = classify(data);
                    let got = match verdict {
                        Ok(Event::Removed(id)) => Expected::Remove(id),
                        Ok(Event::Other(_)) => Expected::Ignore,
                        Err(_) => Expected::Malformed,
                    };
                    prop_assert_eq!(got, oracle, "message {} is {:?}: {:?}", i, data, verdict);
                    deliveries.push(Delivery {
                        ack_id: format!("ack-{i}"),
                        message_id: format!("m-{i}"),
                        verdict,
                    });
                    expected.push((format!("ack-{i}"), oracle));
                }
                let plan = Plan::new(deliveries);

                let removed: BTreeSet<u64> = expected
                    .iter()
                    .filter_map(|(_, e)| match e {
                        Expected::Remove(id) => Some(*id),
                        _ => None,
                    })
                    .collect();
                let ids: Vec<u64> = removed.into_iter().collect();
                prop_assert_eq!(plan.user_ids(), &ids[..]);

                let to_ack: BTreeSet<&str> = expected
                    .iter()
                    .filter(|(_, e)| *e != Expected::Malformed)
                    .map(|(ack_id, _)| ack_id.as_str())
                    .collect();
                let to_hand_back: BTreeSet<&str> = expected
                    .iter()
                    .filter(|(_, e)| *e == Expected::Malformed)
                    .map(|(ack_id, _)| ack_id.as_str())
                    .collect();
                let acked: BTreeSet<&str> = plan.ack().iter().map(String::as_str).collect();
                let handed_back: BTreeSet<&str> =
                    plan.hand_back().iter().map(String::as_str).collect();
                // Sets equal and lengths equal: each ack id once, in one list.
                prop_assert_eq!(&acked, &to_ack);
                prop_assert_eq!(&handed_back, &to_hand_back);
                prop_assert_eq!(plan.ack().len(), to_ack.len());
                prop_assert_eq!(plan.hand_back().len(), to_hand_back.len());
                prop_assert_eq!(plan.len(), messages.len());

                let ignored = expected.iter().filter(|(_, e)| *e == Expected::Ignore).count();
                prop_assert_eq!(plan.ignored(), ignored);
                prop_assert_eq!(plan.malformed(), to_hand_back.len());
            }
        }
    }
}
