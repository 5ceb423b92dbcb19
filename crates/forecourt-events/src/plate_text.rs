//! Plate text: the Chinese plate grammar and the distance between readings. Shared by the
//! reader, the matcher and the evaluations, none of which should need the others to build.
//!
//! The grammar: a province (or special) prefix, a letter, then 5 characters, or 6 for the
//! green new-energy plates. Used to reject non-plates and to prefer well-formed readings.

const PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";
const SUFFIXES: &str = "学警港澳挂领使";

fn is_plate_alnum(c: char) -> bool {
    // Plates never use I or O (confusable with 1 and 0).
    c.is_ascii_digit() || (c.is_ascii_uppercase() && c != 'I' && c != 'O')
}

/// True when `text` is a well-formed ordinary, new-energy or special Chinese plate.
pub fn is_valid_plate(text: &str) -> bool {
    // Every read goes through here: the characters on the stack, no allocation.
    let Some((chars, len)) = short_chars(text) else {
        return false;
    };
    let chars = &chars[..len];
    if chars.len() < 7 || chars.len() > 8 {
        return false;
    }
    if chars[0] == '使' {
        // Embassy plates: 使 + 6 digits.
        return chars.len() == 7 && chars[1..].iter().all(char::is_ascii_digit);
    }
    if !PROVINCES.contains(chars[0]) || !chars[1].is_ascii_uppercase() {
        return false;
    }
    let tail = &chars[2..];
    let (last, body) = tail.split_last().expect("len >= 5");
    if chars.len() == 8 {
        // New energy: 6 characters, the first or last of which is a letter in practice (D/F etc.).
        return tail.iter().all(|&c| is_plate_alnum(c));
    }
    body.iter().all(|&c| is_plate_alnum(c)) && (is_plate_alnum(*last) || SUFFIXES.contains(*last))
}

/// Levenshtein distance in characters, not bytes (plates start with a Chinese character).
pub fn text_distance(a: &str, b: &str) -> usize {
    text_distance_at_most(a, b, usize::MAX).expect("every distance is at most usize::MAX")
}

/// [`text_distance`] when it is at most `max`, else `None`; much cheaper than the full distance
/// for two different plates (it stops as soon as `max` is exceeded).
pub fn text_distance_at_most(a: &str, b: &str, max: usize) -> Option<usize> {
    if a == b {
        return Some(0);
    }
    // Plates are short: the matcher calls this for every read it tracks, so no allocation.
    match (short_chars(a), short_chars(b)) {
        (Some((ca, la)), Some((cb, lb))) => {
            let (a, b) = without_common_ends(&ca[..la], &cb[..lb]);
            edit_distance(a, b, max)
        }
        _ => edit_distance(
            &a.chars().collect::<Vec<_>>(),
            &b.chars().collect::<Vec<_>>(),
            max,
        ),
    }
}

/// Texts up to this many characters are compared on the stack.
const SHORT: usize = 16;

/// The characters of a plate-sized text, on the stack; `None` for a longer text.
fn short_chars(text: &str) -> Option<([char; SHORT], usize)> {
    let mut chars = ['\0'; SHORT];
    let mut n = 0;
    for c in text.chars() {
        *chars.get_mut(n)? = c;
        n += 1;
    }
    Some((chars, n))
}

/// `a` and `b` less what they start and end with alike: the edit distance of what is left is
/// theirs (an optimal alignment matches common ends), and two readings of one plate differ in a
/// character or two, so what is left is short.
fn without_common_ends<'t>(a: &'t [char], b: &'t [char]) -> (&'t [char], &'t [char]) {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (&a[..a.len() - suffix], &b[..b.len() - suffix])
}

/// Levenshtein distance, row by row; `None` as soon as every cell of a row exceeds `max` (the
/// result then would too).
fn edit_distance(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    // Per column, the previous and the current row (by parity).
    let mut stack = [[0usize; 2]; SHORT + 1];
    let mut heap = Vec::new();
    let rows: &mut [[usize; 2]] = if b.len() <= SHORT {
        &mut stack[..=b.len()]
    } else {
        heap.resize(b.len() + 1, [0; 2]);
        &mut heap
    };
    for (j, column) in rows.iter_mut().enumerate() {
        column[0] = j;
    }
    for (i, x) in a.iter().enumerate() {
        let (p, c) = (i % 2, (i + 1) % 2);
        rows[0][c] = i + 1;
        let mut row_min = i + 1;
        for (j, y) in b.iter().enumerate() {
            let substitution = rows[j][p] + usize::from(x != y);
            let value = substitution.min(rows[j + 1][p] + 1).min(rows[j][c] + 1);
            rows[j + 1][c] = value;
            row_min = row_min.min(value);
        }
        if row_min > max {
            return None;
        }
    }
    Some(rows[b.len()][a.len() % 2]).filter(|d| *d <= max)
}

#[cfg(test)]
mod tests {
    use super::{is_valid_plate, text_distance, text_distance_at_most};

    #[test]
    fn distance_counts_characters() {
        assert_eq!(text_distance("苏E05EV8", "苏E05EV8"), 0);
        assert_eq!(text_distance("苏E05EV8", "赣E05EV8"), 1);
        assert_eq!(text_distance("苏E05EV8", "苏E05EV"), 1);
        assert_eq!(text_distance("", "京A"), 2);
        assert_eq!(text_distance("京A", ""), 2);
        assert_eq!(text_distance("kitten", "sitting"), 3);
        let long = "京A".repeat(12);
        assert_eq!(text_distance(&long, &format!("{long}B")), 1);
        assert_eq!(text_distance(&format!("{long}B"), "京A"), 23);
    }

    #[test]
    fn bounded_distance_agrees_with_the_full_one() {
        let texts = [
            "苏E05EV8",
            "赣E05EV8",
            "苏E05EV",
            "",
            "京A",
            "苏ED5EVB",
            "京A12345",
            "E05EV8苏",
        ];
        for a in texts {
            for b in texts {
                for max in 0..4 {
                    let full = text_distance(a, b);
                    assert_eq!(
                        text_distance_at_most(a, b, max),
                        (full <= max).then_some(full),
                        "{a} {b} {max}"
                    );
                }
            }
        }
    }

    /// Plain Levenshtein over the whole strings: what the trimmed, bounded one must agree with.
    fn reference_distance(a: &str, b: &str) -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut previous: Vec<usize> = (0..=b.len()).collect();
        for (i, x) in a.iter().enumerate() {
            let mut current = vec![i + 1];
            for (j, y) in b.iter().enumerate() {
                let value = (previous[j] + usize::from(x != y))
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1);
                current.push(value);
            }
            previous = current;
        }
        previous[b.len()]
    }

    #[test]
    fn bounded_distance_agrees_with_plain_levenshtein_on_every_short_text() {
        // Every text of up to five characters over a two-letter alphabet with a wide character.
        let mut texts = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = texts
                .iter()
                .filter(|t| t.chars().count() == texts.last().map_or(0, |l| l.chars().count()))
                .flat_map(|t| ['A', '京'].map(|c| format!("{t}{c}")))
                .collect();
            texts.extend(longer);
        }
        assert_eq!(texts.len(), 63);
        for a in &texts {
            for b in &texts {
                let full = reference_distance(a, b);
                for max in 0..4 {
                    assert_eq!(
                        text_distance_at_most(a, b, max),
                        (full <= max).then_some(full),
                        "{a} {b} {max}"
                    );
                }
            }
        }
    }

    #[test]
    fn accepts_real_shapes() {
        for p in [
            "苏E05EV8",
            "京A12345",
            "浙AD12345",
            "粤B1234学",
            "沪A1234警",
            "使123456",
            "粤Z1234港",
        ] {
            assert!(is_valid_plate(p), "{p}");
        }
    }

    #[test]
    fn rejects_non_plates() {
        for p in [
            "",
            "A12345",
            "苏E05EV",
            "苏e05EV8",
            "苏EO5EV8",
            "苏E05EV8X9",
            "X京12345",
            "京A1234学5",
        ] {
            assert!(!is_valid_plate(p), "{p}");
        }
    }
}
