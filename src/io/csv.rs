//! Numeric CSV (and whitespace-separated text) input, for convenience.
//!
//! One row per line, the same number of fields on every row. Blank lines and comment lines
//! (starting with `#`, as `np.savetxt` writes its header) are skipped, a UTF-8 byte-order mark is
//! ignored, fields are trimmed and may be wrapped in double quotes. Empty fields are errors (no
//! silent NaN). `nan`, `inf` and `-inf` are accepted; deciding whether they are allowed is left to
//! the computation. There is no quoting of delimiters: this is for numbers.

use std::path::Path;

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::scalar::Real;

/// How fields are separated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delimiter {
    /// A single character, such as `,`, `;` or `\t`.
    Char(char),
    /// Any run of spaces and tabs (what `np.savetxt` writes by default).
    Whitespace,
}

/// Whether the first row is a header of column names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMode {
    /// A header if some field of the first row is text, neither a number nor empty (the
    /// default). A header made only of numbers is taken for data: use [`HeaderMode::Present`].
    Auto,
    /// The first row is a header and is skipped.
    Present,
    /// Every row is data.
    Absent,
}

/// Options of [`read_csv`]; the default is comma-separated, header auto-detected, `#` comments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// Field separator.
    pub delimiter: Delimiter,
    /// Header handling.
    pub header: HeaderMode,
    /// Lines starting with this character (after leading spaces) are skipped.
    pub comment: Option<char>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: Delimiter::Char(','),
            header: HeaderMode::Auto,
            comment: Some('#'),
        }
    }
}

impl CsvOptions {
    /// The defaults with another delimiter.
    pub fn with_delimiter(delimiter: Delimiter) -> Self {
        CsvOptions {
            delimiter,
            ..CsvOptions::default()
        }
    }
}

/// Reads a numeric CSV file into an n x d matrix (rows are samples).
///
/// Errors name the line (1-based) and, for a bad number, the column (1-based); a file without
/// data rows is [`Error::Empty`].
pub fn read_csv<T: Real>(path: impl AsRef<Path>, opts: &CsvOptions) -> Result<Matrix<T>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        reason: format!("not UTF-8 text ({e})"),
    })?;
    parse_csv(text, opts, path)
}

/// Parses CSV text (see [`read_csv`]); `origin` names the source in error messages.
pub fn parse_csv<T: Real>(text: &str, opts: &CsvOptions, origin: &Path) -> Result<Matrix<T>> {
    let err = |reason: String| Error::Format {
        path: origin.to_path_buf(),
        reason,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut data: Vec<T> = Vec::new();
    let mut ncols: Option<(usize, usize)> = None; // (columns, line that set it)
    let mut nrows = 0usize;
    let mut first = true;
    let mut fields: Vec<&str> = Vec::new();
    for (lineno, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        let trimmed = line.trim();
        if trimmed.is_empty() || opts.comment.is_some_and(|c| trimmed.starts_with(c)) {
            continue;
        }
        fields.clear();
        match opts.delimiter {
            Delimiter::Char(c) => fields.extend(line.split(c)),
            Delimiter::Whitespace => fields.extend(line.split_whitespace()),
        }
        if std::mem::take(&mut first) {
            let is_header = match opts.header {
                HeaderMode::Present => true,
                HeaderMode::Absent => false,
                HeaderMode::Auto => fields.iter().any(|f| is_text(f)),
            };
            if is_header {
                continue;
            }
        }
        match ncols {
            None => ncols = Some((fields.len(), lineno)),
            Some((n, at)) if n != fields.len() => {
                return Err(err(format!(
                    "line {lineno} has {} fields, expected {n} (as on line {at})",
                    fields.len()
                )));
            }
            Some(_) => {}
        }
        for (col, f) in fields.iter().enumerate() {
            let v = parse_field::<T>(f)
                .map_err(|why| err(format!("line {lineno}, column {}: {why}", col + 1)))?;
            data.push(v);
        }
        nrows += 1;
    }
    let Some((ncols, _)) = ncols else {
        return Err(Error::Empty(format!("{}: no data rows", origin.display())));
    };
    Matrix::from_vec(nrows, ncols, data)
}

/// A non-empty field that is not a number: the mark of a header row.
fn is_text(field: &str) -> bool {
    !unquote(field).is_empty() && parse_field::<f64>(field).is_err()
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    if f.len() >= 2 && f.starts_with('"') && f.ends_with('"') {
        f[1..f.len() - 1].trim()
    } else {
        f
    }
}

/// Parses one field as `T` (directly in `T`'s precision, so f32 values round once).
fn parse_field<T: Real>(field: &str) -> std::result::Result<T, String> {
    let f = unquote(field);
    if f.is_empty() {
        return Err("empty field".into());
    }
    let bad = || format!("cannot parse '{}' as a number", f.escape_default());
    if T::DTYPE == "float32" {
        f.parse::<f32>()
            .map(|x| T::from_f64(f64::from(x)))
            .map_err(|_| bad())
    } else {
        f.parse::<f64>().map(T::from_f64).map_err(|_| bad())
    }
}
