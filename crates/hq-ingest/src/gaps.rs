//! Gap repair decisions (pure): where a stream's contiguous prefix ends, which holes it has,
//! and which hole to ask a station for now. The sweeper feeds it what the database holds.

use crate::config::RepairSettings;

/// Inclusive seq range.
pub type SeqRange = (i64, i64);

/// What the database holds of one (station, stream) above its contiguous prefix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamView {
    /// Every seq up to here is stored or declared unrecoverable.
    pub contiguous_to: i64,
    /// The highest seq known to exist: stored, or reported by the station as acknowledged.
    pub known_to: i64,
    /// Runs of stored seqs above `contiguous_to`, ascending, not overlapping.
    pub stored: Vec<SeqRange>,
    /// Ranges the station said it no longer holds, in any order; may overlap.
    pub unrecoverable: Vec<SeqRange>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamPlan {
    pub contiguous_to: i64,
    /// Seqs missing between stored or unrecoverable runs, and after the last run up to
    /// `known_to`, ascending.
    pub holes: Vec<SeqRange>,
}

pub fn plan(view: &StreamView) -> StreamPlan {
    let mut runs: Vec<SeqRange> = view
        .stored
        .iter()
        .chain(view.unrecoverable.iter())
        .filter(|(a, b)| a <= b && *b > view.contiguous_to)
        .copied()
        .collect();
    runs.sort_unstable();
    let mut cursor = view.contiguous_to;
    let mut contiguous_to = None;
    let mut holes = Vec::new();
    for (a, b) in runs {
        if a > cursor.saturating_add(1) {
            holes.push((cursor + 1, a - 1));
            contiguous_to.get_or_insert(cursor);
        }
        cursor = cursor.max(b);
    }
    if view.known_to > cursor {
        holes.push((cursor + 1, view.known_to));
        contiguous_to.get_or_insert(cursor);
    }
    StreamPlan {
        contiguous_to: contiguous_to.unwrap_or(cursor),
        holes,
    }
}

/// A hole being repaired: since when it is known and how often it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub from_seq: i64,
    pub to_seq: i64,
    pub first_seen_ms: i64,
    pub asked: i32,
    pub last_asked_ms: Option<i64>,
}

/// This sweep's holes, each taking over the history of the earlier gap it overlaps (a hole
/// shrinks or splits as records arrive; its age and asks go on).
pub fn carry_over(earlier: &[Gap], holes: &[SeqRange], now_ms: i64) -> Vec<Gap> {
    holes
        .iter()
        .map(|&(from_seq, to_seq)| {
            let before = earlier
                .iter()
                .find(|g| g.from_seq <= to_seq && from_seq <= g.to_seq);
            Gap {
                from_seq,
                to_seq,
                first_seen_ms: before.map_or(now_ms, |g| g.first_seen_ms),
                asked: before.map_or(0, |g| g.asked),
                last_asked_ms: before.and_then(|g| g.last_asked_ms),
            }
        })
        .collect()
}

/// Whether to ask for `gap` now: once it outlived the grace period (its records may still be
/// on their way), then again after a wait that doubles per ask up to the maximum.
pub fn due(gap: &Gap, now_ms: i64, settings: &RepairSettings) -> bool {
    if now_ms - gap.first_seen_ms < ms(settings.gap_grace_ms) {
        return false;
    }
    let Some(last) = gap.last_asked_ms else {
        return true;
    };
    let doublings = u32::try_from(gap.asked.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let wait = ms(settings.resend_retry_ms)
        .saturating_mul(1_i64 << doublings)
        .min(ms(settings.resend_retry_max_ms));
    now_ms - last >= wait
}

/// The part of `gone` (what a station says it no longer holds) inside the hole asked for:
/// a station's word never covers seqs HQ was not asking about.
pub fn clip(gone: SeqRange, asked: SeqRange) -> Option<SeqRange> {
    let (a, b) = (gone.0.max(asked.0), gone.1.min(asked.1));
    (a <= b).then_some((a, b))
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn view(c: i64, stored: &[SeqRange], gone: &[SeqRange]) -> StreamView {
        StreamView {
            contiguous_to: c,
            known_to: 0,
            stored: stored.to_vec(),
            unrecoverable: gone.to_vec(),
        }
    }

    #[test]
    fn the_prefix_grows_over_stored_and_unrecoverable_runs() {
        assert_eq!(
            plan(&view(0, &[(1, 5), (6, 9)], &[])),
            StreamPlan {
                contiguous_to: 9,
                holes: vec![]
            }
        );
        assert_eq!(
            plan(&view(3, &[(7, 9), (12, 12)], &[])),
            StreamPlan {
                contiguous_to: 3,
                holes: vec![(4, 6), (10, 11)]
            }
        );
        // A hole the station declared gone no longer stops the prefix.
        assert_eq!(
            plan(&view(3, &[(7, 9)], &[(4, 6)])),
            StreamPlan {
                contiguous_to: 9,
                holes: vec![]
            }
        );
        // Overlapping declarations and runs below the prefix change nothing.
        assert_eq!(
            plan(&view(10, &[(12, 20)], &[(1, 4), (11, 11), (11, 13)])),
            StreamPlan {
                contiguous_to: 20,
                holes: vec![]
            }
        );
        assert_eq!(
            plan(&view(5, &[], &[])),
            StreamPlan {
                contiguous_to: 5,
                holes: vec![]
            }
        );
    }

    proptest! {
        /// For any set of stored seqs: the prefix is exactly the longest run from 1, and the
        /// holes are exactly the missing seqs below the highest stored one.
        #[test]
        fn plan_matches_a_seq_by_seq_count(present in proptest::collection::btree_set(1i64..200, 0..120)) {
            let mut stored: Vec<SeqRange> = Vec::new();
            for &s in &present {
                match stored.last_mut() {
                    Some(last) if last.1 + 1 == s => last.1 = s,
                    _ => stored.push((s, s)),
                }
            }
            let p = plan(&view(0, &stored, &[]));
            let mut prefix = 0;
            while present.contains(&(prefix + 1)) { prefix += 1; }
            prop_assert_eq!(p.contiguous_to, prefix);
            let top = present.iter().next_back().copied().unwrap_or(0);
            let missing: Vec<i64> = (1..top).filter(|s| !present.contains(s)).collect();
            let in_holes: Vec<i64> = p.holes.iter().flat_map(|&(a, b)| a..=b).collect();
            prop_assert_eq!(in_holes, missing);
        }
    }

    #[test]
    fn a_hole_at_the_tail_shows_once_the_station_reports_it() {
        let mut tail = view(3, &[(5, 6)], &[]);
        tail.known_to = 9;
        assert_eq!(
            plan(&tail),
            StreamPlan {
                contiguous_to: 3,
                holes: vec![(4, 4), (7, 9)]
            }
        );
        let mut nothing_stored = view(0, &[], &[]);
        nothing_stored.known_to = 2;
        assert_eq!(plan(&nothing_stored).holes, vec![(1, 2)]);
        let mut behind = view(0, &[(1, 8)], &[]);
        behind.known_to = 5;
        assert_eq!(
            plan(&behind),
            StreamPlan {
                contiguous_to: 8,
                holes: vec![]
            }
        );
    }

    #[test]
    fn a_hole_keeps_its_history_as_it_shrinks() {
        let earlier = [Gap {
            from_seq: 4,
            to_seq: 10,
            first_seen_ms: 1_000,
            asked: 2,
            last_asked_ms: Some(5_000),
        }];
        let now = carry_over(&earlier, &[(4, 5), (8, 10), (20, 21)], 9_000);
        assert_eq!(now[0].first_seen_ms, 1_000);
        assert_eq!(now[1].asked, 2);
        assert_eq!((now[2].first_seen_ms, now[2].asked), (9_000, 0));
    }

    #[test]
    fn asks_wait_for_the_grace_then_back_off() {
        let s = RepairSettings {
            gap_grace_ms: 5_000,
            resend_retry_ms: 10_000,
            resend_retry_max_ms: 30_000,
            ..RepairSettings::default()
        };
        let mut g = Gap {
            from_seq: 1,
            to_seq: 1,
            first_seen_ms: 0,
            asked: 0,
            last_asked_ms: None,
        };
        assert!(!due(&g, 4_999, &s));
        assert!(due(&g, 5_000, &s));
        g.asked = 1;
        g.last_asked_ms = Some(5_000);
        assert!(!due(&g, 14_999, &s));
        assert!(due(&g, 15_000, &s));
        g.asked = 2;
        assert!(!due(&g, 24_999, &s), "second retry waits 20 s");
        g.asked = 30;
        assert!(due(&g, 35_000, &s), "never more than the maximum");
    }

    #[test]
    fn a_stations_word_is_clipped_to_the_hole() {
        assert_eq!(clip((1, 100), (4, 6)), Some((4, 6)));
        assert_eq!(clip((5, 5), (4, 6)), Some((5, 5)));
        assert_eq!(clip((7, 9), (4, 6)), None);
    }
}
