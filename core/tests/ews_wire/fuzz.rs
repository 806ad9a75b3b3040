//! No input makes a decoder panic: arbitrary bytes, and valid answers with bytes changed,
//! cut, repeated or inserted, go through every decoder.

use exgate_core::ews::EwsAnswers;
use exgate_core::ews::wire::*;
use exgate_core::mailbox::TimeZone;
use exgate_core::pipeline::Classify as _;
use proptest::prelude::*;
use time::macros::datetime;

use super::samples;

fn every_decoder(bytes: &[u8]) {
    let availability = GetUserAvailability {
        mailboxes: vec!["a@contoso.com".into(), "b@contoso.com".into()],
        start: datetime!(2026-12-01 00:00 UTC),
        end: datetime!(2026-12-02 00:00 UTC),
        interval_minutes: 30,
    };
    let _ = decode_find_folders(bytes);
    let _ = decode_get_folders(bytes);
    let _ = decode_find_messages(bytes);
    let _ = decode_get_messages(bytes).map(|d| d.into_results());
    let _ = decode_get_attachments(bytes);
    let _ = decode_create_attachments(bytes);
    let _ = decode_item_ids(bytes, "CreateItem");
    let _ = decode_item_ids(bytes, "UpdateItem");
    let _ = decode_move_items(bytes);
    let _ = decode_delete_items(bytes).map(|d| d.busy());
    let _ = decode_send_items(bytes);
    let _ = decode_find_events(bytes, None);
    let _ = decode_get_events(bytes, Some(&TimeZone::UTC));
    let _ = decode_find_contacts(bytes);
    let _ = decode_get_contacts(bytes);
    let _ = decode_resolve_names(bytes);
    let _ = decode_get_user_availability(bytes, &availability);
    let _ = decode_sync_folder_items(bytes);
    let _ = decode_sync_folder_hierarchy(bytes);
    let _ = decode_fault(bytes);
    let _ = find_busy(bytes);
    let headers = reqwest::header::HeaderMap::new();
    for status in [200u16, 500, 503] {
        let status = reqwest::StatusCode::from_u16(status).unwrap();
        let _ = EwsAnswers.classify(status, &headers, bytes);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
    /// Repeats a range (nesting, duplicate elements).
    Repeat(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes that matter to XML, often.
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"<>/&;\"'=:#x0123456789 ZT-+".to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..256).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
}

fn apply(mut doc: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = doc.len().max(1);
        match *m {
            Mutation::Replace(i, b) => {
                if let Some(x) = doc.get_mut(i % len) {
                    *x = b;
                }
            }
            Mutation::Insert(i, b) => doc.insert((i % len).min(doc.len()), b),
            Mutation::Delete(i, n) => {
                let start = (i % len).min(doc.len());
                let end = (start + n).min(doc.len());
                doc.drain(start..end);
            }
            Mutation::Truncate(i) => doc.truncate(i % len),
            Mutation::Repeat(i, n) => {
                let start = (i % len).min(doc.len());
                let end = (start + n).min(doc.len());
                let copy = doc[start..end].to_vec();
                doc.splice(end..end, copy);
            }
        }
    }
    doc
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        every_decoder(&bytes);
    }

    #[test]
    fn mutated_answers_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let all = samples::all();
        let doc = all[which.index(all.len())].clone().into_bytes();
        every_decoder(&apply(doc, &mutations));
    }
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    let mut doc = samples::get_item();
    let deep = "<t:X>".repeat(100_000) + &"</t:X>".repeat(100_000);
    doc = doc.replace(
        "<t:Subject>Quarterly report</t:Subject>",
        &format!("<t:Subject>x</t:Subject>{deep}"),
    );
    every_decoder(doc.as_bytes());
    assert!(decode_get_messages(doc.as_bytes()).is_err());
    // Deep nesting around the response messages, where find_busy looks.
    let wrapped = samples::delete_item_busy().replace(
        "<m:ResponseMessages>",
        &("<m:ResponseMessages>".to_owned() + &"<m:X>".repeat(10_000)),
    );
    every_decoder(wrapped.as_bytes());
}
