//! The state of an IMAP folder sync, and what changed between two looks at a folder.
//!
//! IMAP without CONDSTORE (Exchange does not offer it) tells changes only by comparison: the
//! state remembers the folder's UIDVALIDITY, every UID it held and which of them were seen and
//! flagged. The next sync fetches UIDs and flags (`UID FETCH 1:* (FLAGS)`) and compares: new
//! UIDs are new messages, missing ones were removed (moved, deleted, expunged), a changed flag
//! is a change. A different UIDVALIDITY voids every UID: the folder is synced again from
//! scratch and the answer says so ([`crate::mailbox::FolderChanges::reset`]).
//!
//! Text form (sealed by the caller with `PageTokens`): `s1;<uidvalidity>;<uids>;<seen>;<flagged>`,
//! each set as ranges (`1-5,7`).

use std::collections::BTreeMap;

/// The flags a sync follows, per UID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Flags {
    pub seen: bool,
    pub flagged: bool,
}

/// What a folder held at the last sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncState {
    pub uid_validity: u32,
    pub messages: BTreeMap<u32, Flags>,
}

/// What changed since a state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Diff {
    /// UIDs to fetch and report as changed (new or with other flags).
    pub changed: Vec<u32>,
    /// UIDs no longer in the folder (under the old UIDVALIDITY).
    pub removed: Vec<u32>,
    /// The old UIDs mean nothing any more: everything is `changed`.
    pub reset: bool,
}

/// The most ranges a state may hold when read back (a bound on work, far above real folders).
const MAX_RANGES: usize = 1_000_000;

fn write_ranges(uids: impl Iterator<Item = u32>) -> String {
    let mut out = String::new();
    let mut run: Option<(u32, u32)> = None;
    let flush = |out: &mut String, (a, b): (u32, u32)| {
        if !out.is_empty() {
            out.push(',');
        }
        if a == b {
            out.push_str(&a.to_string());
        } else {
            out.push_str(&format!("{a}-{b}"));
        }
    };
    for uid in uids {
        run = match run {
            Some((a, b)) if b.checked_add(1) == Some(uid) => Some((a, uid)),
            Some(r) => {
                flush(&mut out, r);
                Some((uid, uid))
            }
            None => Some((uid, uid)),
        };
    }
    if let Some(r) = run {
        flush(&mut out, r);
    }
    out
}

fn read_ranges(s: &str) -> Option<Vec<(u32, u32)>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    let mut last = 0u32;
    for part in s.split(',') {
        if out.len() >= MAX_RANGES {
            return None;
        }
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let a = part.parse::<u32>().ok()?;
                (a, a)
            }
        };
        // Ascending, disjoint, no UID 0: a state exgate wrote, nothing else.
        if a == 0 || b < a || (!out.is_empty() && a <= last) {
            return None;
        }
        last = b;
        out.push((a, b));
    }
    Some(out)
}

fn in_ranges(ranges: &[(u32, u32)], uid: u32) -> bool {
    ranges
        .binary_search_by(|&(a, b)| {
            if b < uid {
                std::cmp::Ordering::Less
            } else if a > uid {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

impl SyncState {
    pub(crate) fn encode(&self) -> String {
        let uids = write_ranges(self.messages.keys().copied());
        let seen = write_ranges(
            self.messages
                .iter()
                .filter(|(_, f)| f.seen)
                .map(|(u, _)| *u),
        );
        let flagged = write_ranges(
            self.messages
                .iter()
                .filter(|(_, f)| f.flagged)
                .map(|(u, _)| *u),
        );
        format!("s1;{};{uids};{seen};{flagged}", self.uid_validity)
    }

    /// A state [`SyncState::encode`] wrote; anything else is `None`.
    pub(crate) fn decode(s: &str) -> Option<SyncState> {
        let mut parts = s.split(';');
        if parts.next()? != "s1" {
            return None;
        }
        let uid_validity = parts.next()?.parse::<u32>().ok().filter(|v| *v != 0)?;
        let uids = read_ranges(parts.next()?)?;
        let seen = read_ranges(parts.next()?)?;
        let flagged = read_ranges(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        let count: u64 = uids.iter().map(|(a, b)| u64::from(b - a) + 1).sum();
        // A bound on memory: no real folder holds more.
        if count > 10_000_000 {
            return None;
        }
        let mut messages = BTreeMap::new();
        for (a, b) in uids {
            for uid in a..=b {
                messages.insert(
                    uid,
                    Flags {
                        seen: in_ranges(&seen, uid),
                        flagged: in_ranges(&flagged, uid),
                    },
                );
            }
        }
        Some(SyncState {
            uid_validity,
            messages,
        })
    }

    /// What changed from `self` (the last state; `None`: nothing known yet) to `now`.
    pub(crate) fn diff(before: Option<&SyncState>, now: &SyncState) -> Diff {
        let Some(before) = before else {
            return Diff {
                changed: now.messages.keys().copied().collect(),
                ..Diff::default()
            };
        };
        if before.uid_validity != now.uid_validity {
            return Diff {
                changed: now.messages.keys().copied().collect(),
                removed: Vec::new(),
                reset: true,
            };
        }
        let changed = now
            .messages
            .iter()
            .filter(|(uid, flags)| before.messages.get(uid) != Some(flags))
            .map(|(uid, _)| *uid)
            .collect();
        let removed = before
            .messages
            .keys()
            .filter(|uid| !now.messages.contains_key(uid))
            .copied()
            .collect();
        Diff {
            changed,
            removed,
            reset: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn state(uid_validity: u32, messages: &[(u32, bool, bool)]) -> SyncState {
        SyncState {
            uid_validity,
            messages: messages
                .iter()
                .map(|&(u, seen, flagged)| (u, Flags { seen, flagged }))
                .collect(),
        }
    }

    #[test]
    fn a_state_round_trips_compactly() {
        let s = state(
            77,
            &[
                (1, true, false),
                (2, true, false),
                (3, false, true),
                (7, false, false),
                (8, true, true),
            ],
        );
        let text = s.encode();
        assert_eq!(text, "s1;77;1-3,7-8;1-2,8;3,8");
        assert_eq!(SyncState::decode(&text), Some(s));
        assert_eq!(SyncState::decode("s1;5;;;"), Some(state(5, &[])));
    }

    #[test]
    fn states_exgate_did_not_write_are_refused() {
        for bad in [
            "",
            "s2;1;1;;",
            "s1;0;1;;",
            "s1;1;3-1;;",
            "s1;1;5,2;;",
            "s1;1;0;;",
            "s1;1;1;;;",
            "s1;1;1;",
            "s1;1;1-4294967295;;",
            "s1;x;1;;",
        ] {
            assert_eq!(SyncState::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_diff_names_new_changed_and_removed_messages() {
        let before = state(9, &[(1, false, false), (2, true, false), (3, false, false)]);
        let now = state(9, &[(2, true, false), (3, true, false), (4, false, false)]);
        assert_eq!(
            SyncState::diff(Some(&before), &now),
            Diff {
                changed: vec![3, 4],
                removed: vec![1],
                reset: false,
            }
        );
        // A new UIDVALIDITY: start over.
        let renumbered = state(10, &[(1, false, false)]);
        assert_eq!(
            SyncState::diff(Some(&before), &renumbered),
            Diff {
                changed: vec![1],
                removed: vec![],
                reset: true,
            }
        );
        assert_eq!(SyncState::diff(None, &now).changed, vec![2, 3, 4]);
    }

    proptest! {
        #[test]
        fn any_text_decodes_or_is_refused(s in "[s1;0-9,\\-]{0,80}") {
            let _ = SyncState::decode(&s);
        }

        #[test]
        fn any_state_round_trips(uv in 1u32.., uids in proptest::collection::btree_map(1u32..5000, (any::<bool>(), any::<bool>()), 0..200)) {
            let s = SyncState {
                uid_validity: uv,
                messages: uids.into_iter().map(|(u, (seen, flagged))| (u, Flags { seen, flagged })).collect(),
            };
            prop_assert_eq!(SyncState::decode(&s.encode()), Some(s));
        }
    }
}
