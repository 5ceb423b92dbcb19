//! Config problems that point at the spot in the file: `file:line:column: message (hint: ...)`.
//! A field technician reads these on a station PC; they must say where and what to do.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::{DeArray, DeTable, DeValue};

/// One step of a path into the TOML document: a key or an array index.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

pub fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Where in the document; empty for the file as a whole.
    pub path: Vec<Seg>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(path: Vec<Seg>, message: impl Into<String>) -> Self {
        Problem {
            path,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Every problem found in one config file, each with its line and column.
#[derive(Debug)]
pub struct ConfigProblems {
    pub file: PathBuf,
    /// (line, column, problem), 1-based; (0, 0) when the spot is unknown.
    pub problems: Vec<(usize, usize, Problem)>,
}

impl ConfigProblems {
    pub fn new(file: &Path, text: &str, problems: Vec<Problem>) -> Self {
        let problems = problems
            .into_iter()
            .map(|p| {
                let (line, col) = position(text, &p.path);
                (line, col, p)
            })
            .collect();
        ConfigProblems {
            file: file.to_path_buf(),
            problems,
        }
    }

    /// A problem at a byte offset (a TOML syntax or type error).
    pub fn at_offset(file: &Path, text: &str, offset: Option<usize>, problem: Problem) -> Self {
        let (line, col) = offset.map(|o| line_col(text, o)).unwrap_or((0, 0));
        ConfigProblems {
            file: file.to_path_buf(),
            problems: vec![(line, col, problem)],
        }
    }
}

impl fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (line, col, p)) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write_located(f, &self.file, (*line, *col), p)?;
        }
        Ok(())
    }
}

/// One problem as `file:line:column: message (hint: ...)` (without the place when it is
/// unknown, line 0).
pub fn write_located(
    f: &mut fmt::Formatter<'_>,
    file: &Path,
    (line, col): (usize, usize),
    p: &Problem,
) -> fmt::Result {
    if line > 0 {
        write!(f, "{}:{line}:{col}: {}", file.display(), p.message)?;
    } else {
        write!(f, "{}: {}", file.display(), p.message)?;
    }
    if let Some(h) = &p.hint {
        write!(f, " (hint: {h})")?;
    }
    Ok(())
}

/// 1-based line and column of the value at `path` in `text`; (0, 0) when it is not there.
pub fn position(text: &str, path: &[Seg]) -> (usize, usize) {
    locate(text, path)
        .map(|offset| line_col(text, offset))
        .unwrap_or((0, 0))
}

impl std::error::Error for ConfigProblems {}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// Byte offset of the value at `path`, or of the deepest part of the path that exists.
pub fn locate(text: &str, path: &[Seg]) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut best = None;
    let mut table: Option<&DeTable> = Some(doc.get_ref());
    let mut array: Option<&DeArray> = None;
    for seg in path {
        let value = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => match t.get(k.as_str()) {
                Some(value) => value,
                None => return best,
            },
            (Seg::Index(i), _, Some(a)) => match a.get(*i) {
                Some(value) => value,
                None => return best,
            },
            _ => return best,
        };
        best = Some(value.span().start);
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(a)),
            _ => (None, None),
        };
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "a = 1\n[[cam]]\nname = \"x\"\n[[cam]]\nname = \"y\"\nfps = 0\n";

    fn at(path: &[Seg]) -> Option<(usize, usize)> {
        locate(DOC, path).map(|o| line_col(DOC, o))
    }

    #[test]
    fn locates_nested_values() {
        assert_eq!(at(&[key("a")]), Some((1, 5)));
        assert_eq!(at(&[key("cam"), Seg::Index(1), key("fps")]), Some((6, 7)));
        assert_eq!(at(&[key("cam"), Seg::Index(0), key("name")]), Some((3, 8)));
    }

    #[test]
    fn a_missing_key_points_at_what_exists() {
        let parent = at(&[key("cam"), Seg::Index(1)]);
        assert!(parent.is_some());
        assert_eq!(at(&[key("cam"), Seg::Index(1), key("nope")]), parent);
        assert_eq!(at(&[key("zzz")]), None);
    }

    #[test]
    fn line_col_counts_characters() {
        let text = "京 = 1\nx = 2";
        assert_eq!(line_col(text, text.find('x').unwrap()), (2, 1));
        assert_eq!(line_col(text, text.find('=').unwrap()), (1, 3));
    }
}
