//! Votes one plate text out of many per-frame reads of the same car: first the length, then each
//! character, weighting every read by its confidence and by whether it obeys the plate grammar.

use std::collections::HashMap;

/// A read as the vote sees it.
#[derive(Debug, Clone, Copy)]
pub struct Ballot<'a> {
    pub text: &'a str,
    pub confidence: f32,
    pub well_formed: bool,
}

/// The voted text and how sure the vote is of every character.
#[derive(Debug, Clone, PartialEq)]
pub struct VotedText {
    pub text: String,
    /// Probability-like certainty that every character is right (0..1).
    pub certainty: f32,
    /// Reads of the winning length that agree with the voted text exactly.
    pub exact_reads: usize,
    /// Reads that took part.
    pub reads: usize,
}

/// Malformed reads still say something about single characters, but little.
const MALFORMED_WEIGHT: f32 = 0.2;
/// Log-odds one full-confidence read adds for its character: misreads of one character happen
/// in a few percent of reads, so one agreeing read is worth about e^2.5 : 1.
const LOG_ODDS_PER_READ: f32 = 2.5;

/// A vote's running tallies: ballots are added one at a time (a track's vote grows with its
/// reads, and only the new ones need counting) and [`VoteTally::result`] is what [`vote`] gives
/// over the same ballots in the same order, to the bit: every weight is summed in ballot order.
#[derive(Debug, Clone, Default)]
pub struct VoteTally {
    /// Per text length (in characters), ascending: its weight, and per position the weight per
    /// character (in first-seen order; a position sees a handful of characters, so a list beats
    /// a map).
    by_length: Vec<LengthTally>,
    /// Ballots per exact text.
    texts: HashMap<String, usize>,
    ballots: usize,
}

/// The ballots of one text length.
#[derive(Debug, Clone)]
struct LengthTally {
    length: usize,
    weight: f32,
    positions: Vec<Vec<(char, f32)>>,
}

impl VoteTally {
    /// Counts one ballot (an empty text says nothing and is not counted).
    pub fn add(&mut self, ballot: Ballot) {
        if ballot.text.is_empty() {
            return;
        }
        // Squared: a recogniser's confident reads are right far more often than its hesitant
        // ones.
        let weight = ballot.confidence.clamp(0.0, 1.0).powi(2)
            * if ballot.well_formed {
                1.0
            } else {
                MALFORMED_WEIGHT
            };
        let length = ballot.text.chars().count();
        let at = match self.by_length.binary_search_by_key(&length, |l| l.length) {
            Ok(at) => at,
            Err(at) => {
                self.by_length.insert(
                    at,
                    LengthTally {
                        length,
                        weight: 0.0,
                        positions: vec![Vec::new(); length],
                    },
                );
                at
            }
        };
        let tally = &mut self.by_length[at];
        tally.weight += weight;
        for (position, c) in tally.positions.iter_mut().zip(ballot.text.chars()) {
            match position.iter_mut().find(|(seen, _)| *seen == c) {
                Some((_, w)) => *w += weight,
                None => position.push((c, weight)),
            }
        }
        match self.texts.get_mut(ballot.text) {
            Some(n) => *n += 1,
            None => {
                self.texts.insert(ballot.text.to_string(), 1);
            }
        }
        self.ballots += 1;
    }

    /// The vote over every ballot counted so far; None if there was none.
    pub fn result(&self) -> Option<VotedText> {
        // Highest weight; ties go to the shorter length (BTreeMap order, first max wins).
        let length = self
            .by_length
            .iter()
            .fold(None::<&LengthTally>, |best, l| match best {
                Some(b) if b.weight >= l.weight => best,
                _ => Some(l),
            })?;
        let mut text = String::new();
        let mut certainty = 1.0f32;
        for tally in &length.positions {
            let mut ranked: Vec<(char, f32)> = tally.clone();
            // Highest weight first; equal weights by character so the result never depends on
            // order.
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let (winner, first) = ranked[0];
            let second = ranked.get(1).map_or(0.0, |r| r.1);
            let all: f32 = ranked.iter().map(|r| r.1).sum();
            text.push(winner);
            let margin = (first - second) * LOG_ODDS_PER_READ;
            // Many reads make a margin large even when a character is misread systematically
            // (dirt, a bolt); a close split stays doubtful however many reads there are. The
            // share is of every read, so a character smeared three ways is as doubtful as one
            // split in two.
            let share = first / all.max(f32::EPSILON);
            let split = ((share - 0.5) / 0.2).clamp(0.0, 1.0);
            certainty *= split.min(1.0 / (1.0 + (-margin).exp()));
        }
        let exact_reads = self.texts.get(&text).copied().unwrap_or(0);
        Some(VotedText {
            text,
            certainty,
            exact_reads,
            reads: self.ballots,
        })
    }
}

pub fn vote<'a>(ballots: impl IntoIterator<Item = Ballot<'a>>) -> Option<VotedText> {
    let mut tally = VoteTally::default();
    for ballot in ballots {
        tally.add(ballot);
    }
    tally.result()
}

pub use forecourt_events::text_distance;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ballots<'a>(reads: &[(&'a str, f32)]) -> Vec<Ballot<'a>> {
        reads
            .iter()
            .map(|(text, confidence)| Ballot {
                text,
                confidence: *confidence,
                well_formed: text.chars().count() == 7,
            })
            .collect()
    }

    #[test]
    fn characters_vote_separately() {
        // No read is right as a whole, but each character is right in most reads.
        let v = vote(ballots(&[
            ("苏E05EV8", 0.9),
            ("苏ED5EV8", 0.8),
            ("苏E05EVB", 0.8),
            ("赣E05EV8", 0.7),
            ("苏E05EV8", 0.9),
            ("苏E05EV", 0.9),
        ]))
        .unwrap();
        assert_eq!(v.text, "苏E05EV8");
        assert_eq!(v.exact_reads, 2);
        assert!(v.certainty > 0.9, "{v:?}");
    }

    #[test]
    fn a_character_smeared_three_ways_is_uncertain() {
        let v = vote(ballots(&[
            ("苏E05EV8", 0.9),
            ("苏E05EV8", 0.9),
            ("苏E05EVB", 0.9),
            ("苏E05EV6", 0.9),
            ("苏E05EV8", 0.9),
            ("苏E05EVB", 0.9),
            ("苏E05EV6", 0.9),
        ]))
        .unwrap();
        assert_eq!(v.text, "苏E05EV8");
        assert!(v.certainty < 0.2, "{v:?}");
    }

    #[test]
    fn a_split_vote_is_uncertain() {
        let v = vote(ballots(&[("苏E05EV8", 0.9), ("苏E05EVB", 0.9)])).unwrap();
        assert!(v.certainty < 0.6, "{v:?}");
        assert!(vote(ballots(&[])).is_none());
    }

    /// The vote as it was before the running tally: over all ballots at once, written out
    /// independently of [`VoteTally`], as the reference the tally must equal to the bit.
    fn batch_vote(ballots: &[Ballot]) -> Option<VotedText> {
        let ballots: Vec<&Ballot> = ballots.iter().filter(|b| !b.text.is_empty()).collect();
        let weight = |b: &Ballot| {
            b.confidence.clamp(0.0, 1.0).powi(2)
                * if b.well_formed { 1.0 } else { MALFORMED_WEIGHT }
        };
        let mut by_length: BTreeMap<usize, f32> = BTreeMap::new();
        for b in &ballots {
            *by_length.entry(b.text.chars().count()).or_default() += weight(b);
        }
        let length = by_length
            .iter()
            .fold(None::<(usize, f32)>, |best, (&len, &w)| match best {
                Some((_, bw)) if bw >= w => best,
                _ => Some((len, w)),
            })?
            .0;
        let same_length: Vec<(Vec<char>, f32)> = ballots
            .iter()
            .filter(|b| b.text.chars().count() == length)
            .map(|b| (b.text.chars().collect(), weight(b)))
            .collect();
        let (mut text, mut certainty) = (String::new(), 1.0f32);
        for position in 0..length {
            let mut tally: BTreeMap<char, f32> = BTreeMap::new();
            for (chars, w) in &same_length {
                *tally.entry(chars[position]).or_default() += w;
            }
            let mut ranked: Vec<(char, f32)> = tally.into_iter().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let (winner, first) = ranked[0];
            let second = ranked.get(1).map_or(0.0, |r| r.1);
            let all: f32 = ranked.iter().map(|r| r.1).sum();
            text.push(winner);
            let margin = (first - second) * LOG_ODDS_PER_READ;
            let split = ((first / all.max(f32::EPSILON) - 0.5) / 0.2).clamp(0.0, 1.0);
            certainty *= split.min(1.0 / (1.0 + (-margin).exp()));
        }
        let exact_reads = ballots.iter().filter(|b| b.text == text).count();
        Some(VotedText {
            text,
            certainty,
            exact_reads,
            reads: ballots.len(),
        })
    }

    #[test]
    fn a_tally_counted_read_by_read_votes_as_the_whole_vote_does() {
        // Misreads, other lengths, malformed and empty reads, in a scrambled order.
        let texts = [
            "苏E05EV8",
            "苏ED5EV8",
            "苏E05EVB",
            "苏E05EV",
            "",
            "赣E05EV8",
            "苏E05EV8",
            "苏E05EV88",
            "苏E05EV6",
        ];
        let mut all: Vec<Ballot> = Vec::new();
        let mut tally = VoteTally::default();
        let mut state = 7u64;
        for k in 0..200 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let text = texts[(state >> 33) as usize % texts.len()];
            let ballot = Ballot {
                text,
                confidence: ((state >> 20) % 1000) as f32 / 999.0,
                well_formed: k % 5 != 0 && text.chars().count() == 7,
            };
            all.push(ballot);
            tally.add(ballot);
            // Equal to the bit, certainty included.
            assert_eq!(tally.result(), batch_vote(&all), "after {} ballots", k + 1);
        }
    }

    #[test]
    fn distance() {
        assert_eq!(text_distance("苏E05EV8", "苏E05EV8"), 0);
        assert_eq!(text_distance("苏E05EV8", "苏ED5EVB"), 2);
        assert_eq!(text_distance("苏E05EV8", "苏E05EV"), 1);
        assert_eq!(text_distance("", "abc"), 3);
    }
}
