//! The header of a `.npy` file: a Python dict literal such as
//! `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`, parsed without trusting it
//! (nesting depth bounded, every error a message, never a panic) into the dtype, the order and
//! the shape. The literal grammar is the part of Python's that `np.save` and older writers
//! produce: dicts, tuples, lists, quoted strings with backslash escapes, integers (with
//! Python 2's `L` suffix), `True`, `False` and `None`. Unknown keys are ignored; which dtypes
//! are supported is [`super::npy`]'s business (`parse_descr`).

use crate::io::npy::{parse_descr, Kind};

/// Nesting depth limit of the header literal (a defence against `((((...))))` inputs).
const MAX_DEPTH: usize = 16;

/// A Python literal, as far as `.npy` headers need.
#[derive(Debug)]
enum Lit {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Lit>),
    List(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

struct LitParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl LitParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        match self.peek() {
            Some(x) if x == c => {
                self.pos += 1;
                Ok(())
            }
            Some(x) => Err(format!(
                "expected '{}' at offset {}, found '{}'",
                char::from(c),
                self.pos,
                char::from(x)
            )),
            None => Err(format!(
                "expected '{}', found the end of the header",
                char::from(c)
            )),
        }
    }

    fn value(&mut self, depth: usize) -> std::result::Result<Lit, String> {
        if depth > MAX_DEPTH {
            return Err("header nests too deeply".into());
        }
        match self.peek() {
            None => Err("unexpected end of the header".into()),
            Some(b'{') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        return Ok(Lit::Dict(items));
                    }
                    let k = self.value(depth + 1)?;
                    self.expect(b':')?;
                    let v = self.value(depth + 1)?;
                    items.push((k, v));
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {}
                        _ => return Err("expected ',' or '}' in the header dict".into()),
                    }
                }
            }
            Some(open @ (b'(' | b'[')) => {
                self.pos += 1;
                let close = if open == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        return Ok(if open == b'(' {
                            Lit::Tuple(items)
                        } else {
                            Lit::List(items)
                        });
                    }
                    items.push(self.value(depth + 1)?);
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(c) if c == close => {}
                        _ => {
                            return Err(format!(
                                "expected ',' or '{}' in the header",
                                char::from(close)
                            ))
                        }
                    }
                }
            }
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    match self.s.get(self.pos) {
                        None => return Err("unterminated string in the header".into()),
                        Some(&b'\\') => {
                            let Some(&e) = self.s.get(self.pos + 1) else {
                                return Err("unterminated string in the header".into());
                            };
                            out.push(e);
                            self.pos += 2;
                        }
                        Some(&c) if c == q => {
                            self.pos += 1;
                            break;
                        }
                        Some(&c) => {
                            out.push(c);
                            self.pos += 1;
                        }
                    }
                }
                Ok(Lit::Str(String::from_utf8_lossy(&out).into_owned()))
            }
            Some(c) if c.is_ascii_digit() || c == b'-' || c == b'+' => {
                let start = self.pos;
                self.pos += 1;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                // Python 2 wrote long integers with an `L` suffix.
                if matches!(self.s.get(self.pos), Some(b'L' | b'l')) {
                    self.pos += 1;
                }
                text.parse::<i128>()
                    .map(Lit::Int)
                    .map_err(|_| format!("bad integer '{text}' in the header"))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self.pos < self.s.len()
                    && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'_')
                {
                    self.pos += 1;
                }
                match &self.s[start..self.pos] {
                    b"True" => Ok(Lit::Bool(true)),
                    b"False" => Ok(Lit::Bool(false)),
                    b"None" => Ok(Lit::None),
                    w => Err(format!(
                        "unexpected '{}' in the header",
                        String::from_utf8_lossy(w)
                    )),
                }
            }
            Some(c) => Err(format!(
                "unexpected character '{}' at offset {} of the header",
                char::from(c).escape_default(),
                self.pos
            )),
        }
    }
}

/// Parses the header text into (dtype, fortran_order, shape).
pub(super) fn parse_header_dict(
    text: &str,
) -> std::result::Result<(Kind, bool, Vec<usize>), String> {
    let mut p = LitParser {
        s: text.as_bytes(),
        pos: 0,
    };
    let lit = p.value(0).map_err(|e| format!("malformed header: {e}"))?;
    if let Some(c) = p.peek() {
        return Err(format!(
            "malformed header: unexpected '{}' after the dict",
            char::from(c).escape_default()
        ));
    }
    let Lit::Dict(items) = lit else {
        return Err("malformed header: not a dict".into());
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in items {
        match k {
            Lit::Str(k) if k == "descr" => descr = Some(v),
            Lit::Str(k) if k == "fortran_order" => fortran = Some(v),
            Lit::Str(k) if k == "shape" => shape = Some(v),
            // Unknown keys are ignored.
            _ => {}
        }
    }
    let missing = |k: &str| format!("malformed header: no '{k}' key");
    let kind = match descr.ok_or_else(|| missing("descr"))? {
        Lit::Str(d) => parse_descr(&d)?,
        Lit::List(_) => {
            return Err("structured dtypes (record arrays) are not supported".into());
        }
        other => return Err(format!("malformed header: 'descr' is {}", lit_kind(&other))),
    };
    let fortran = match fortran.ok_or_else(|| missing("fortran_order"))? {
        Lit::Bool(b) => b,
        Lit::Int(i @ (0 | 1)) => i == 1,
        other => {
            return Err(format!(
                "malformed header: 'fortran_order' is {}, expected True or False",
                lit_kind(&other)
            ))
        }
    };
    let dims = match shape.ok_or_else(|| missing("shape"))? {
        Lit::Tuple(d) | Lit::List(d) => d,
        Lit::Int(i) => vec![Lit::Int(i)],
        other => {
            return Err(format!(
                "malformed header: 'shape' is {}, expected a tuple",
                lit_kind(&other)
            ))
        }
    };
    let mut shape = Vec::with_capacity(dims.len());
    for d in dims {
        match d {
            Lit::Int(i) if i < 0 => return Err(format!("negative dimension {i} in the shape")),
            Lit::Int(i) => shape.push(
                usize::try_from(i)
                    .map_err(|_| format!("shape overflow: dimension {i} is too large"))?,
            ),
            other => {
                return Err(format!(
                    "malformed header: shape entry is {}, expected an integer",
                    lit_kind(&other)
                ))
            }
        }
    }
    Ok((kind, fortran, shape))
}

fn lit_kind(l: &Lit) -> &'static str {
    match l {
        Lit::Str(_) => "a string",
        Lit::Int(_) => "an integer",
        Lit::Bool(_) => "a boolean",
        Lit::None => "None",
        Lit::Tuple(_) => "a tuple",
        Lit::List(_) => "a list",
        Lit::Dict(_) => "a dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_headers() {
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }          \n";
        assert_eq!(parse_header_dict(h).unwrap(), (Kind::F8, false, vec![3, 4]));
        // Python 2's long integers, a 1-tuple, a list shape, keys in any order, unknown keys.
        let h = "{\"shape\": (5L,), 'extra': [None, {'a': 1}], 'fortran_order': True, \
                 'descr': '|u1'}";
        assert_eq!(parse_header_dict(h).unwrap(), (Kind::U1, true, vec![5]));
        let h = "{'descr': '<i4', 'fortran_order': 0, 'shape': []}";
        assert_eq!(parse_header_dict(h).unwrap(), (Kind::I4, false, vec![]));
        let h = "{'descr': 'b\\1', 'fortran_order': 0, 'shape': 7}";
        assert_eq!(parse_header_dict(h).unwrap(), (Kind::B1, false, vec![7]));
    }

    #[test]
    fn malformed_headers() {
        let err = |h: &str| parse_header_dict(h).unwrap_err();
        assert!(err("").contains("unexpected end"));
        assert!(err("('descr', '<f8')").contains("not a dict"));
        assert!(err("{'descr': '<f8', 'shape': ()}").contains("no 'fortran_order' key"));
        assert!(
            err("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}")
                .contains("negative dimension -1")
        );
        assert!(err("{'descr': '<f8', 'fortran_order': 2, 'shape': ()}")
            .contains("'fortran_order' is an integer"));
        assert!(
            err("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': ()}")
                .contains("structured dtypes")
        );
        assert!(
            err("{'descr': '<f8', 'fortran_order': False, 'shape': ()} x")
                .contains("after the dict")
        );
        assert!(err("{'descr': '<f8").contains("unterminated string"));
        assert!(err("{'descr': nan}").contains("unexpected 'nan'"));
        let deep = format!("{}{}", "(".repeat(40), ")".repeat(40));
        assert!(err(&deep).contains("nests too deeply"));
    }
}
