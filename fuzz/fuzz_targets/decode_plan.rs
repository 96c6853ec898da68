//! The decode+plan path on arbitrary bytes: the input is split into messages,
//! each goes through `event::classify` and into a `Plan`, and the plan must be
//! exactly what the verdicts ask for. Any panic, in our code or in an assert
//! here, is a finding.
//!
//! Input format: messages one after another, each a length byte and then that
//! many bytes of data (fewer at the end of the input).

#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use user_purge::event::{self, Event, Malformed, event_type, proto};
use user_purge::run::plan::{Delivery, Plan};

fn messages(mut input: &[u8]) -> Vec<&[u8]> {
    let mut messages = Vec::new();
    while let Some((&len, rest)) = input.split_first() {
        let len = usize::from(len).min(rest.len());
        messages.push(&rest[..len]);
        input = &rest[len..];
    }
    messages
}

fuzz_target!(|input: &[u8]| {
    let messages = messages(input);
    let mut deliveries = Vec::new();
    let mut removed = BTreeSet::new();
    let mut to_ack = BTreeSet::new();
    let mut to_hand_back = BTreeSet::new();
    let mut ignored = 0;
    for (i, data) in messages.iter().enumerate() {
        let verdict = event::classify(data);
        assert_eq!(
            event::classify(data),
            verdict,
            "not a function of the bytes"
        );
        // Each verdict is what the schema says the bytes say.
        let decoded = proto::UserEventData::decode(*data);
        match (&verdict, &decoded) {
            (Ok(Event::Removed(id)), Ok(event)) => {
                assert_ne!(*id, 0);
                assert_eq!(event.event_type, event_type::REMOVED);
                assert_eq!(event.user_id, *id);
                assert_eq!(
                    event::classify(&event::encode(event_type::REMOVED, *id)),
                    verdict
                );
                removed.insert(*id);
            }
            (Ok(Event::Other(_)), Ok(event)) => {
                assert!((1..=3).contains(&event.event_type), "{event:?}");
                ignored += 1;
            }
            (Err(Malformed::Undecodable), Err(_)) => {}
            (Err(Malformed::UnspecifiedType), Ok(event)) => assert_eq!(event.event_type, 0),
            (Err(Malformed::NoUserId), Ok(event)) => {
                assert_eq!((event.event_type, event.user_id), (event_type::REMOVED, 0));
            }
            (Err(Malformed::UnknownType(n)), Ok(event)) => {
                assert_eq!(event.event_type, *n);
                assert!(!(0..=4).contains(n));
            }
            (verdict, decoded) => panic!("{verdict:?} for {decoded:?}"),
        }
        let ack_id = format!("ack-{i}");
        if verdict.is_ok() {
            to_ack.insert(ack_id.clone());
        } else {
            to_hand_back.insert(ack_id.clone());
        }
        deliveries.push(Delivery {
            ack_id,
            message_id: String::new(),
            verdict,
        });
    }
    let plan = Plan::new(deliveries);

    // Exactly the distinct removed ids, ascending.
    assert!(
        plan.removals()
            .iter()
            .map(|r| &r.user_id)
            .eq(removed.iter())
    );
    // Every message in exactly one list, none invented.
    let acked: BTreeSet<_> = plan.ack().iter().cloned().collect();
    let handed_back: BTreeSet<_> = plan.hand_back().iter().cloned().collect();
    assert_eq!(
        (acked.len(), handed_back.len()),
        (plan.ack().len(), plan.hand_back().len())
    );
    assert_eq!(acked, to_ack);
    assert_eq!(handed_back, to_hand_back);
    assert_eq!(plan.len(), messages.len());
    assert_eq!(plan.ignored(), ignored);
    assert_eq!(plan.malformed(), to_hand_back.len());
    // Handing everything back returns each message once.
    let held: Vec<String> = plan.ack().iter().chain(plan.hand_back()).cloned().collect();
    let mut all = plan.take_all();
    assert_eq!(all, held);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), messages.len());
});
