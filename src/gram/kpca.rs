//! Kernel PCA (Schoelkopf, Smola & Mueller 1998) on a precomputed kernel: centre it in feature
//! space, take the leading eigenvectors of the centred matrix (faer's self-adjoint
//! eigendecomposition), and return the training points' coordinates on them.

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use faer::{Mat, Side};

/// The result of [`kernel_pca`].
#[derive(Clone, Debug, PartialEq)]
pub struct KernelPca {
    /// The leading eigenvalues of the centred kernel, largest first.
    pub eigenvalues: Vec<f64>,
    /// n x components: coordinates of the points on the principal axes, v_k sqrt(lambda_k)
    /// (0 where lambda_k <= 0). The sign of each axis is fixed so that its entry of largest
    /// magnitude is positive, which makes the result deterministic.
    pub projections: Matrix<f64>,
}

/// Kernel PCA of a square training kernel K (n x n, symmetric; only its lower triangle is
/// read): K_c = H K H with H = I - 11^T/n, then the `components` largest eigenpairs of K_c.
pub fn kernel_pca(k: &Matrix<f64>, components: usize) -> Result<KernelPca> {
    let (n, m) = k.shape();
    if n != m {
        return Err(Error::Shape(format!(
            "kernel PCA needs a square kernel, got {n} x {m}"
        )));
    }
    if n == 0 {
        return Err(Error::Empty("kernel PCA of an empty kernel".into()));
    }
    if components == 0 || components > n {
        return Err(Error::param(
            "components",
            format!("must be in 1..={n}, got {components}"),
        ));
    }
    super::check_finite_matrix(k, "kernel")?;
    // The centred copy and the eigenvectors: two more n x n matrices.
    crate::limits::check_alloc::<f64>(2 * n, n, "kernel PCA workspace")?;
    // Double centring from the row means (= column means for a symmetric K).
    let row_mean: Vec<f64> = (0..n)
        .map(|i| k.row(i).iter().sum::<f64>() / n as f64)
        .collect();
    let grand = row_mean.iter().sum::<f64>() / n as f64;
    let centred = Mat::<f64>::from_fn(n, n, |i, j| k.get(i, j) - row_mean[i] - row_mean[j] + grand);
    let evd = centred
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::NotConverged(format!("kernel PCA eigendecomposition: {e:?}")))?;
    let (u, s) = (evd.U(), evd.S().column_vector());
    let mut eigenvalues = Vec::with_capacity(components);
    let mut proj = vec![0.0; n * components];
    for c in 0..components {
        // faer sorts eigenvalues in increasing order.
        let col = n - 1 - c;
        let lambda = s[col];
        eigenvalues.push(lambda);
        let scale = lambda.max(0.0).sqrt();
        let v = u.col(col);
        let pivot = (0..n)
            .max_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()))
            .unwrap_or(0);
        let sign = if v[pivot] < 0.0 { -1.0 } else { 1.0 };
        for i in 0..n {
            proj[i * components + c] = sign * scale * v[i];
        }
    }
    Ok(KernelPca {
        eigenvalues,
        projections: Matrix::from_vec(n, components, proj)?,
    })
}

/// Fisher's criterion of two-class data in a few dimensions (rows of `x`, labels > 0 vs <= 0):
/// J = (mu_+ - mu_-)^T S_w^-1 (mu_+ - mu_-), S_w the pooled within-class covariance (with a
/// ridge of 1e-12 of its trace, so that a degenerate direction does not make it infinite).
/// Larger is better separated; 0 when the class means coincide.
pub fn fisher_criterion(x: &Matrix<f64>, labels: &[f64]) -> Result<f64> {
    let (n, d) = x.shape();
    if labels.len() != n {
        return Err(Error::Shape(format!(
            "{} labels for {n} rows",
            labels.len()
        )));
    }
    if d == 0 {
        return Err(Error::Empty("no columns".into()));
    }
    let mut mean = [vec![0.0; d], vec![0.0; d]];
    let mut count = [0usize; 2];
    for (i, &label) in labels.iter().enumerate() {
        let c = usize::from(label > 0.0);
        count[c] += 1;
        for (m, v) in mean[c].iter_mut().zip(x.row(i)) {
            *m += v;
        }
    }
    if count[0] == 0 || count[1] == 0 {
        return Err(Error::param(
            "labels",
            "Fisher's criterion needs both classes",
        ));
    }
    for c in 0..2 {
        for m in &mut mean[c] {
            *m /= count[c] as f64;
        }
    }
    let mut sw = Mat::<f64>::zeros(d, d);
    for (i, &label) in labels.iter().enumerate() {
        let c = usize::from(label > 0.0);
        let r: Vec<f64> = x.row(i).iter().zip(&mean[c]).map(|(v, m)| v - m).collect();
        for a in 0..d {
            for b in 0..d {
                sw[(a, b)] += r[a] * r[b] / n as f64;
            }
        }
    }
    let trace: f64 = (0..d).map(|a| sw[(a, a)]).sum();
    for a in 0..d {
        sw[(a, a)] += 1e-12 * trace.max(f64::MIN_POSITIVE);
    }
    let diff = Mat::<f64>::from_fn(d, 1, |a, _| mean[1][a] - mean[0][a]);
    use faer::linalg::solvers::Solve;
    let sol = sw.partial_piv_lu().solve(&diff);
    Ok((0..d).map(|a| diff[(a, 0)] * sol[(a, 0)]).sum())
}
