//! Plate texts: random well-formed Chinese plates, the misreads a recogniser makes of them, and
//! the plate grammar (shared with the reader, from forecourt-events) the evaluation hands to the
//! matcher.

use seeded_rng::Rng;

pub(crate) const PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";
const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
pub(crate) const ALNUM: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Provinces a recogniser mistakes for one another.
const PROVINCE_SWAPS: &[(char, char)] = &[
    ('苏', '赣'),
    ('京', '津'),
    ('浙', '湘'),
    ('鲁', '晋'),
    ('粤', '桂'),
    ('沪', '渝'),
    ('皖', '豫'),
];

pub use forecourt_events::is_valid_plate;

/// A random plate: mostly local (苏E), some from other provinces, a tenth new-energy.
pub fn random_plate(rng: &mut Rng) -> String {
    let provinces: Vec<char> = PROVINCES.chars().collect();
    let mut text = String::new();
    if rng.chance(0.6) {
        text.push('苏');
        text.push(if rng.chance(0.7) { 'E' } else { 'A' });
    } else {
        text.push(*rng.pick(&provinces));
        text.push(char::from(*rng.pick(LETTERS)));
    }
    if rng.chance(0.1) {
        text.push(if rng.chance(0.5) { 'D' } else { 'F' });
        for _ in 0..5 {
            text.push(char::from(b'0' + rng.below(10) as u8));
        }
    } else {
        for _ in 0..5 {
            text.push(char::from(*rng.pick(ALNUM)));
        }
    }
    text
}

/// What a recogniser mistakes `c` for most often.
pub fn confusable(c: char, rng: &mut Rng) -> char {
    for (a, b) in PROVINCE_SWAPS {
        if c == *a {
            return *b;
        }
        if c == *b {
            return *a;
        }
    }
    match c {
        '0' => 'D',
        'D' => '0',
        '8' => 'B',
        'B' => '8',
        '5' => 'S',
        'S' => '5',
        '2' => 'Z',
        'Z' => '2',
        '1' => '7',
        '7' => '1',
        '6' => 'G',
        'G' => '6',
        'Q' => '0',
        'A' => '4',
        '4' => 'A',
        'E' => 'F',
        'F' => 'E',
        'H' => 'M',
        'M' => 'H',
        _ if PROVINCES.contains(c) => {
            let provinces: Vec<char> = PROVINCES.chars().collect();
            *rng.pick(&provinces)
        }
        _ => char::from(*rng.pick(ALNUM)),
    }
}

/// Characters of the plate alphabet (no I, no O) a recogniser mixes up with one another.
const CONFUSION_GROUPS: &[&str] = &[
    "0DQU", "8B", "3B", "5S", "2Z", "17T", "6G", "CG", "4A", "EF", "HMN", "UV", "KX", "PR", "9G",
];

/// A character a recogniser might read instead of `c`: a look-alike from the plate alphabet
/// (a neighbouring province for the first character), or any character when `c` has none.
pub(crate) fn confusable_character(c: char, rng: &mut Rng) -> char {
    if PROVINCES.contains(c) {
        return confusable(c, rng);
    }
    let partners: Vec<char> = CONFUSION_GROUPS
        .iter()
        .filter(|g| g.contains(c))
        .flat_map(|g| g.chars())
        .filter(|&p| p != c)
        .collect();
    if partners.is_empty() || rng.chance(0.1) {
        loop {
            let other = char::from(*rng.pick(ALNUM));
            if other != c {
                return other;
            }
        }
    }
    *rng.pick(&partners)
}

/// One car's way of being misread: a weak character (dirt, a bolt) read as another most often,
/// plus random slips.
#[derive(Debug, Clone)]
pub struct MisreadProfile {
    pub weak_position: usize,
    pub weak_as: char,
    /// Chance per read that the weak character is misread.
    pub weak_rate: f64,
    /// Chance per read of a random slip (one confusable character, a dropped one, a province).
    pub slip_rate: f64,
}

impl MisreadProfile {
    pub fn random(plate: &str, rng: &mut Rng) -> Self {
        let chars: Vec<char> = plate.chars().collect();
        let weak_position = rng.below(chars.len());
        MisreadProfile {
            weak_position,
            weak_as: confusable(chars[weak_position], rng),
            weak_rate: if rng.chance(0.5) {
                rng.range(0.0, 0.35)
            } else {
                0.0
            },
            slip_rate: rng.range(0.03, 0.15),
        }
    }

    /// One read of `plate`; `quality` above 1 makes slips likelier (steep angle, small plate).
    pub fn read(&self, plate: &str, quality: f64, rng: &mut Rng) -> String {
        let mut chars: Vec<char> = plate.chars().collect();
        // Capped so that the true character stays the most frequent reading: beyond that no
        // vote, human or machine, can know the plate.
        if rng.chance((self.weak_rate * quality).min(0.4)) {
            chars[self.weak_position] = self.weak_as;
        }
        if rng.chance((self.slip_rate * quality).min(0.6)) {
            let roll = rng.unit();
            if roll < 0.15 {
                chars.remove(1 + rng.below(chars.len() - 1)); // a dropped character: malformed
            } else if roll < 0.35 {
                chars[0] = confusable(chars[0], rng);
            } else {
                let i = 1 + rng.below(chars.len() - 1);
                chars[i] = confusable(chars[i], rng);
            }
        }
        chars.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_plates_are_valid_and_misreads_are_close() {
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            let plate = random_plate(&mut rng);
            assert!(is_valid_plate(&plate), "{plate}");
            let profile = MisreadProfile::random(&plate, &mut rng);
            let read = profile.read(&plate, 2.0, &mut rng);
            assert!(matcher::vote::text_distance(&plate, &read) <= 2);
        }
        assert!(!is_valid_plate("苏E05EV"));
        assert!(is_valid_plate("浙AD12345"));
    }
}
