//! Kernel functions k(x, y) and their parameters, as scikit-learn's `pairwise_kernels` defines
//! them.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A kernel function. `gamma: None` means scikit-learn's default `1 / d` (d = number of
/// features), resolved when the data is seen.
///
/// | kernel | k(x, y) | defaults |
/// |---|---|---|
/// | `Linear` | <x, y> | |
/// | `Polynomial` | (gamma <x, y> + coef0)^degree | gamma 1/d, degree 3, coef0 1 |
/// | `Rbf` | exp(-gamma \|\|x - y\|\|^2) | gamma 1/d |
/// | `Laplacian` | exp(-gamma \|\|x - y\|\|_1) | gamma 1/d |
/// | `Sigmoid` | tanh(gamma <x, y> + coef0) | gamma 1/d, coef0 1 |
/// | `Cosine` | <x, y> / (\|\|x\|\| \|\|y\|\|), 0 where a norm is 0 | |
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    /// Inner product.
    Linear,
    /// Polynomial kernel.
    Polynomial {
        /// Scale of the inner product (> 0).
        gamma: Option<f64>,
        /// Power (>= 1).
        degree: u32,
        /// Offset (finite).
        coef0: f64,
    },
    /// Gaussian (radial basis function) kernel.
    Rbf {
        /// Inverse squared width (> 0).
        gamma: Option<f64>,
    },
    /// Laplacian kernel (L1 distance).
    Laplacian {
        /// Inverse width (> 0).
        gamma: Option<f64>,
    },
    /// Sigmoid (hyperbolic tangent) kernel; not PSD in general.
    Sigmoid {
        /// Scale of the inner product (> 0).
        gamma: Option<f64>,
        /// Offset (finite).
        coef0: f64,
    },
    /// Cosine similarity.
    Cosine,
}

/// Default polynomial degree (scikit-learn's).
pub const DEFAULT_DEGREE: u32 = 3;
/// Default `coef0` of the polynomial and sigmoid kernels (scikit-learn's).
pub const DEFAULT_COEF0: f64 = 1.0;

impl Kernel {
    /// RBF kernel with the given gamma.
    pub fn rbf(gamma: f64) -> Self {
        Kernel::Rbf { gamma: Some(gamma) }
    }

    /// Laplacian kernel with the given gamma.
    pub fn laplacian(gamma: f64) -> Self {
        Kernel::Laplacian { gamma: Some(gamma) }
    }

    /// Polynomial kernel.
    pub fn polynomial(gamma: f64, degree: u32, coef0: f64) -> Self {
        Kernel::Polynomial {
            gamma: Some(gamma),
            degree,
            coef0,
        }
    }

    /// Sigmoid kernel.
    pub fn sigmoid(gamma: f64, coef0: f64) -> Self {
        Kernel::Sigmoid {
            gamma: Some(gamma),
            coef0,
        }
    }

    /// The kernel's name as the CLI spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Linear => "linear",
            Kernel::Polynomial { .. } => "poly",
            Kernel::Rbf { .. } => "rbf",
            Kernel::Laplacian { .. } => "laplacian",
            Kernel::Sigmoid { .. } => "sigmoid",
            Kernel::Cosine => "cosine",
        }
    }

    /// The kernel's gamma, if it has one (`None` inside means "1/d").
    pub fn gamma(&self) -> Option<Option<f64>> {
        match *self {
            Kernel::Polynomial { gamma, .. }
            | Kernel::Rbf { gamma }
            | Kernel::Laplacian { gamma }
            | Kernel::Sigmoid { gamma, .. } => Some(gamma),
            Kernel::Linear | Kernel::Cosine => None,
        }
    }

    /// Fills in defaults for `d` features and checks every parameter: gamma > 0 and finite,
    /// degree >= 1, coef0 finite.
    pub fn resolve(&self, d: usize) -> Result<Kernel> {
        let resolve_gamma = |g: Option<f64>| -> Result<Option<f64>> {
            let g = match g {
                Some(g) => g,
                None if d == 0 => {
                    return Err(Error::param(
                        "gamma",
                        "the default 1/d needs at least one feature",
                    ))
                }
                None => 1.0 / d as f64,
            };
            if !(g.is_finite() && g > 0.0) {
                return Err(Error::param(
                    "gamma",
                    format!("must be finite and > 0, got {g}"),
                ));
            }
            Ok(Some(g))
        };
        let check_coef0 = |c: f64| -> Result<f64> {
            if c.is_finite() {
                Ok(c)
            } else {
                Err(Error::param("coef0", format!("must be finite, got {c}")))
            }
        };
        Ok(match *self {
            Kernel::Linear => Kernel::Linear,
            Kernel::Cosine => Kernel::Cosine,
            Kernel::Rbf { gamma } => Kernel::Rbf {
                gamma: resolve_gamma(gamma)?,
            },
            Kernel::Laplacian { gamma } => Kernel::Laplacian {
                gamma: resolve_gamma(gamma)?,
            },
            Kernel::Sigmoid { gamma, coef0 } => Kernel::Sigmoid {
                gamma: resolve_gamma(gamma)?,
                coef0: check_coef0(coef0)?,
            },
            Kernel::Polynomial {
                gamma,
                degree,
                coef0,
            } => {
                if degree == 0 {
                    return Err(Error::param("degree", "must be >= 1, got 0"));
                }
                Kernel::Polynomial {
                    gamma: resolve_gamma(gamma)?,
                    degree,
                    coef0: check_coef0(coef0)?,
                }
            }
        })
    }

    /// Whether k(x, x) = 1 for every x (rbf, laplacian), so the diagonal of K(X, X) is set to
    /// exactly 1.
    pub fn unit_self_similarity(&self) -> bool {
        matches!(self, Kernel::Rbf { .. } | Kernel::Laplacian { .. })
    }

    /// k(x, x) from the squared norm `sq = <x, x>` (every kernel here is a function of it on the
    /// diagonal). Used to normalise cross kernels without computing K(X_test, X_test).
    pub fn self_similarity(&self, sq: f64) -> f64 {
        match *self {
            Kernel::Linear => sq,
            Kernel::Polynomial {
                gamma,
                degree,
                coef0,
            } => (gamma.unwrap_or(1.0) * sq + coef0).powi(degree as i32),
            Kernel::Rbf { .. } | Kernel::Laplacian { .. } => 1.0,
            Kernel::Sigmoid { gamma, coef0 } => (gamma.unwrap_or(1.0) * sq + coef0).tanh(),
            Kernel::Cosine => {
                if sq > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

impl fmt::Display for Kernel {
    /// The spec syntax of [`Kernel::from_str`]: `rbf:gamma=0.5`, `poly:degree=2,coef0=0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        let mut parts = Vec::new();
        if let Some(Some(g)) = self.gamma() {
            parts.push(format!("gamma={g}"));
        }
        match *self {
            Kernel::Polynomial { degree, coef0, .. } => {
                parts.push(format!("degree={degree}"));
                parts.push(format!("coef0={coef0}"));
            }
            Kernel::Sigmoid { coef0, .. } => parts.push(format!("coef0={coef0}")),
            _ => {}
        }
        if !parts.is_empty() {
            write!(f, ":{}", parts.join(","))?;
        }
        Ok(())
    }
}

impl FromStr for Kernel {
    type Err = Error;

    /// Parses `NAME[:key=value[,key=value...]]`, e.g. `rbf`, `rbf:gamma=0.1`,
    /// `poly:gamma=0.5,degree=2,coef0=0`, `laplacian:gamma=1e-2`. Names: linear, poly
    /// (polynomial), rbf (gaussian), laplacian, sigmoid, cosine. Unknown keys, keys that the
    /// kernel does not take and malformed numbers are errors. Values are checked by
    /// [`Kernel::resolve`].
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let (name, params) = match s.split_once(':') {
            Some((n, p)) => (n.trim(), p.trim()),
            None => (s, ""),
        };
        let mut gamma = None;
        let mut degree = None;
        let mut coef0 = None;
        for kv in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Error::param("kernel", format!("expected key=value, got `{kv}`")))?;
            let (k, v) = (k.trim(), v.trim());
            let num = |what: &str| -> Result<f64> {
                v.parse::<f64>()
                    .map_err(|_| Error::param(what, format!("not a number: `{v}`")))
            };
            match k {
                "gamma" => gamma = Some(num("gamma")?),
                "coef0" => coef0 = Some(num("coef0")?),
                "degree" => {
                    degree = Some(v.parse::<u32>().map_err(|_| {
                        Error::param("degree", format!("not a non-negative integer: `{v}`"))
                    })?)
                }
                other => {
                    return Err(Error::param(
                        "kernel",
                        format!("unknown parameter `{other}` (gamma, degree, coef0)"),
                    ))
                }
            }
        }
        let takes = |gamma_ok: bool, degree_ok: bool, coef0_ok: bool| -> Result<()> {
            for (given, ok, key) in [
                (gamma.is_some(), gamma_ok, "gamma"),
                (degree.is_some(), degree_ok, "degree"),
                (coef0.is_some(), coef0_ok, "coef0"),
            ] {
                if given && !ok {
                    return Err(Error::param(
                        "kernel",
                        format!("the {name} kernel takes no `{key}`"),
                    ));
                }
            }
            Ok(())
        };
        let kernel = match name.to_ascii_lowercase().as_str() {
            "linear" => {
                takes(false, false, false)?;
                Kernel::Linear
            }
            "poly" | "polynomial" => {
                takes(true, true, true)?;
                Kernel::Polynomial {
                    gamma,
                    degree: degree.unwrap_or(DEFAULT_DEGREE),
                    coef0: coef0.unwrap_or(DEFAULT_COEF0),
                }
            }
            "rbf" | "gaussian" => {
                takes(true, false, false)?;
                Kernel::Rbf { gamma }
            }
            "laplacian" => {
                takes(true, false, false)?;
                Kernel::Laplacian { gamma }
            }
            "sigmoid" => {
                takes(true, false, true)?;
                Kernel::Sigmoid {
                    gamma,
                    coef0: coef0.unwrap_or(DEFAULT_COEF0),
                }
            }
            "cosine" => {
                takes(false, false, false)?;
                Kernel::Cosine
            }
            other => {
                return Err(Error::param(
                    "kernel",
                    format!(
                        "unknown kernel `{other}` (linear, poly, rbf, laplacian, sigmoid, cosine)"
                    ),
                ))
            }
        };
        // Check what can be checked without d (everything but a missing gamma).
        kernel.resolve(1)?;
        Ok(kernel)
    }
}
