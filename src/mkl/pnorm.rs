//! The one parser for the norm parameter p, shared by every front end (library, CLI, demo).

use crate::error::{Error, Result};

/// Parses p for p-norm MKL: a number, a fraction `a/b` (such as `4/3`), or `inf` / `infinity`
/// (any case), surrounded by optional whitespace. The value must be >= 1 (p = inf allowed).
///
/// ```
/// use mmfuse::mkl::parse_p;
/// assert_eq!(parse_p("2")?, 2.0);
/// assert_eq!(parse_p(" 4/3 ")?, 4.0 / 3.0);
/// assert_eq!(parse_p("inf")?, f64::INFINITY);
/// assert!(parse_p("0.5").is_err() && parse_p("1/0/2").is_err() && parse_p("x").is_err());
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn parse_p(s: &str) -> Result<f64> {
    let t = s.trim().to_ascii_lowercase();
    let number = |part: &str| -> Result<f64> {
        part.trim().parse::<f64>().map_err(|_| {
            Error::param(
                "p",
                format!("not a number: `{s}` (a number >= 1, a fraction such as 4/3, or inf)"),
            )
        })
    };
    let p = if t == "inf" || t == "infinity" {
        f64::INFINITY
    } else {
        match t.split_once('/') {
            Some((a, b)) => number(a)? / number(b)?,
            None => number(&t)?,
        }
    };
    if p.is_nan() || p < 1.0 {
        return Err(Error::param(
            "p",
            format!("must be >= 1 (or inf), got `{s}`"),
        ));
    }
    Ok(p)
}

/// Parses a comma-separated list of p values, each as [`parse_p`].
pub fn parse_p_list(s: &str) -> Result<Vec<f64>> {
    s.split(',').map(parse_p).collect()
}

/// How p is written back: `inf`, `4/3` for 4/3, else the shortest decimal that round-trips.
pub fn p_label(p: f64) -> String {
    if p.is_infinite() {
        "inf".into()
    } else if p == 4.0 / 3.0 {
        "4/3".into()
    } else {
        format!("{p}")
    }
}
