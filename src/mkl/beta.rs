//! The closed-form beta step of lp-norm MKL and the norms it needs.

/// `||v||_p` for p in [1, inf] (`p = f64::INFINITY` is the max norm). Entries must be >= 0.
pub(crate) fn pnorm(v: &[f64], p: f64) -> f64 {
    if p.is_infinite() {
        v.iter().fold(0.0f64, |m, &x| m.max(x))
    } else if p == 1.0 {
        v.iter().sum()
    } else {
        // Scale by the maximum so that x^p neither overflows nor underflows.
        let mx = v.iter().fold(0.0f64, |m, &x| m.max(x));
        if mx == 0.0 {
            return 0.0;
        }
        mx * v
            .iter()
            .map(|&x| (x / mx).powf(p))
            .sum::<f64>()
            .powf(1.0 / p)
    }
}

/// The dual exponent p* = p / (p - 1) (inf for p = 1, 1 for p = inf).
pub(crate) fn dual_exponent(p: f64) -> f64 {
    if p == 1.0 {
        f64::INFINITY
    } else if p.is_infinite() {
        1.0
    } else {
        p / (p - 1.0)
    }
}

/// One closed-form update (stationarity of the Lagrangian of ||beta||_p <= 1) from
/// c_m = beta_m^2 s_m = ||w_m||^2:
///
/// ```text
/// beta_m = c_m^(1/(p+1)) / (sum_k c_k^(p/(p+1)))^(1/p)
/// ```
///
/// which has ||beta||_p = 1 exactly (up to rounding). For p = inf every beta_m is 1. If every
/// c_m is 0 (a = 0: no support vectors), beta is left unchanged.
pub(crate) fn closed_form_update(beta: &[f64], s: &[f64], p: f64) -> Vec<f64> {
    if p.is_infinite() {
        return vec![1.0; beta.len()];
    }
    let c: Vec<f64> = beta
        .iter()
        .zip(s)
        .map(|(&b, &sm)| (b * b * sm.max(0.0)).max(0.0))
        .collect();
    let cmax = c.iter().fold(0.0f64, |m, &x| m.max(x));
    if cmax <= 0.0 || !cmax.is_finite() {
        return beta.to_vec();
    }
    // Work with c / cmax: the formula is invariant to a common scale of c up to the final
    // normalisation, which we redo explicitly.
    let w: Vec<f64> = c
        .iter()
        .map(|&x| (x / cmax).powf(1.0 / (p + 1.0)))
        .collect();
    let norm = pnorm(&w, p);
    w.iter().map(|&x| x / norm).collect()
}
