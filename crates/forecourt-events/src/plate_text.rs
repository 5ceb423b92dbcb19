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
    let chars: Vec<char> = text.chars().collect();
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
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::{is_valid_plate, text_distance};

    #[test]
    fn distance_counts_characters() {
        assert_eq!(text_distance("苏E05EV8", "苏E05EV8"), 0);
        assert_eq!(text_distance("苏E05EV8", "赣E05EV8"), 1);
        assert_eq!(text_distance("苏E05EV8", "苏E05EV"), 1);
        assert_eq!(text_distance("", "京A"), 2);
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
