//! `mmfuse gram`.

use clap::{Args, ValueEnum};
use mmfuse::error::{Error, Result};
use mmfuse::gram::{
    cross_gram, gram, gram_into_streaming, self_similarities, GramOptions, Kernel, Normalization,
    TrainStats,
};
use mmfuse::io::{read_matrix_dyn, write_matrix_npy, write_matrix_npy_rows, DynMatrix};
use mmfuse::matrix::Matrix;
use mmfuse::scalar::Real;
use std::path::PathBuf;

/// Element type of the computation and of the output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Dtype {
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    F64,
}

/// `mmfuse gram`: compute K(X, X), or K(X, Y) with `--against`, and write it as .npy.
#[derive(Debug, Args)]
#[command(
    after_help = "Kernels (scikit-learn's pairwise_kernels definitions and defaults):
  linear     <x, y>
  poly       (gamma <x, y> + coef0)^degree      gamma = 1/d, degree = 3, coef0 = 1
  rbf        exp(-gamma ||x - y||^2)             gamma = 1/d
  laplacian  exp(-gamma ||x - y||_1)             gamma = 1/d
  sigmoid    tanh(gamma <x, y> + coef0)          gamma = 1/d, coef0 = 1
  cosine     <x, y> / (||x|| ||y||)  (0 where a norm is 0)
d is the number of features (columns of X).

With --against Y (the training points), the output is K(X, Y) (rows: X) and --normalize uses
the statistics of K(Y, Y), as a test kernel must be normalised."
)]
pub struct GramArgs {
    /// Data X (n x d): .npy (f32/f64/int, C or Fortran order), .npz with one array, or .csv.
    #[arg(long)]
    pub input: PathBuf,
    /// Second data set Y (m x d): compute the cross kernel K(X, Y) instead of K(X, X).
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// Kernel name (linear, poly, rbf, laplacian, sigmoid, cosine) or a full spec such as
    /// `rbf:gamma=0.1`.
    #[arg(long, default_value = "rbf")]
    pub kernel: String,
    /// Kernel width / scale (> 0). Default: 1 / d.
    #[arg(long)]
    pub gamma: Option<f64>,
    /// Polynomial degree (>= 1). Default: 3.
    #[arg(long)]
    pub degree: Option<u32>,
    /// Offset of poly and sigmoid. Default: 1.
    #[arg(long, allow_hyphen_values = true)]
    pub coef0: Option<f64>,
    /// Element type of the computation and the output. Default: the input's (integers: f64).
    #[arg(long, value_enum)]
    pub dtype: Option<Dtype>,
    /// Normalisation: none, trace, unit-diag, center.
    #[arg(long, default_value = "none")]
    pub normalize: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Tile size of the blocked assembly.
    #[arg(long, default_value_t = 256)]
    pub tile: usize,
    /// Output .npy file (written atomically: temporary file, then rename).
    #[arg(long)]
    pub out: PathBuf,
}

impl GramArgs {
    /// The kernel from `--kernel` and the parameter flags (a flag the kernel does not take is an
    /// error).
    pub fn kernel_spec(&self) -> Result<Kernel> {
        let base: Kernel = self.kernel.parse()?;
        apply_overrides(base, self.gamma, self.degree, self.coef0)
    }
}

/// Applies `--gamma/--degree/--coef0` to a parsed kernel.
pub(crate) fn apply_overrides(
    base: Kernel,
    gamma: Option<f64>,
    degree: Option<u32>,
    coef0: Option<f64>,
) -> Result<Kernel> {
    let refuse = |flag: &str| {
        Err(Error::param(
            flag,
            format!("the {} kernel takes no {flag}", base.name()),
        ))
    };
    let mut k = base;
    if let Some(g) = gamma {
        k = match k {
            Kernel::Polynomial { degree, coef0, .. } => Kernel::Polynomial {
                gamma: Some(g),
                degree,
                coef0,
            },
            Kernel::Rbf { .. } => Kernel::Rbf { gamma: Some(g) },
            Kernel::Laplacian { .. } => Kernel::Laplacian { gamma: Some(g) },
            Kernel::Sigmoid { coef0, .. } => Kernel::Sigmoid {
                gamma: Some(g),
                coef0,
            },
            Kernel::Linear | Kernel::Cosine => return refuse("--gamma"),
        };
    }
    if let Some(dg) = degree {
        match &mut k {
            Kernel::Polynomial { degree, .. } => *degree = dg,
            _ => return refuse("--degree"),
        }
    }
    if let Some(c) = coef0 {
        match &mut k {
            Kernel::Polynomial { coef0, .. } | Kernel::Sigmoid { coef0, .. } => *coef0 = c,
            _ => return refuse("--coef0"),
        }
    }
    k.resolve(1)?; // parameter checks that do not need d
    Ok(k)
}

pub(crate) fn run(a: GramArgs) -> Result<()> {
    let kernel = a.kernel_spec()?;
    let how: Normalization = a.normalize.parse()?;
    let opts = GramOptions {
        tile: a.tile,
        threads: a.threads,
    };
    opts.validate()?;
    let x = read_matrix_dyn(&a.input)?;
    let y = a.against.as_ref().map(read_matrix_dyn).transpose()?;
    let dtype = a.dtype.unwrap_or(match x {
        DynMatrix::F32(_) => Dtype::F32,
        DynMatrix::F64(_) => Dtype::F64,
    });
    match dtype {
        Dtype::F32 => compute::<f32>(
            x.into_real(),
            y.map(DynMatrix::into_real),
            &kernel,
            how,
            &opts,
            &a,
        ),
        Dtype::F64 => compute::<f64>(
            x.into_real(),
            y.map(DynMatrix::into_real),
            &kernel,
            how,
            &opts,
            &a,
        ),
    }
}

fn compute<T: Real>(
    x: Matrix<T>,
    y: Option<Matrix<T>>,
    kernel: &Kernel,
    how: Normalization,
    opts: &GramOptions,
    a: &GramArgs,
) -> Result<()> {
    if y.is_none() && how == Normalization::None {
        // Rows go to the file as they complete, overlapping the writing (and the disk's
        // fsync) with the rest of the assembly.
        let n = x.nrows();
        let mut k = Matrix::<T>::try_zeros(n, n, "the Gram matrix K(X, X)")?;
        return write_matrix_npy_rows::<T>(&a.out, n, n, |sink| {
            gram_into_streaming(x.as_mat_ref(), kernel, opts, k.as_mut_slice(), |_, rows| {
                sink(rows)
            })
        });
    }
    let k = match &y {
        None => {
            let mut k = gram(x.as_mat_ref(), kernel, opts)?;
            TrainStats::from_gram(&k, how)?.apply_train(&mut k)?;
            k
        }
        Some(y) => {
            let mut k = cross_gram(x.as_mat_ref(), y.as_mat_ref(), kernel, opts)?;
            if how != Normalization::None {
                let stats = TrainStats::from_data(y.as_mat_ref(), kernel, how, opts)?;
                let test_self = self_similarities(x.as_mat_ref(), kernel)?;
                stats.apply_cross(&mut k, Some(&test_self))?;
            }
            k
        }
    };
    write_matrix_npy(&a.out, &k)
}
