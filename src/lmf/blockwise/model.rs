//! The block model's parameters ([`BlockLmf`]): construction, the tensors by name, block norms
//! and relevance.

use super::layout::Layout;
use super::penalty::block_norms_sq;
use super::stats::ModalityStats;
use crate::blocks::{Block, BlockSpec};
use crate::error::{Error, Result};
use crate::lmf::init::Normal;
use crate::lmf::model::check_modalities;
use crate::lmf::relevance::relevance_from_norms;
use crate::scalar::Real;

/// A block low-rank fusion model (docs/design.md section 9): one unimodal block per modality
/// and the interaction blocks of a [`BlockSpec`], each a rank-r CP tensor without a constant
/// slot, summed with a bias:
///
/// ```text
/// y = b + sum_m x~_m W_m + sum_I sum_i w_{I,i} prod_{m in I} (x~_m U_{I,m}[i])
/// ```
///
/// where `x~_m = (x_m - mean_m) / scale_m` with training statistics ([`ModalityStats`]). The
/// blocks' Frobenius norms give their lp relevance ([`BlockLmf::relevance`]).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockLmf<T: Real> {
    pub(crate) names: Vec<String>,
    pub(crate) layout: Layout,
    pub(crate) p: f64,
    pub(crate) params: Vec<T>,
    pub(crate) stats: Vec<ModalityStats<T>>,
    pub(crate) stats_fitted: bool,
}

/// The relevance of a model's blocks ([`BlockLmf::relevance`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Relevance {
    /// Block names, in block order.
    pub blocks: Vec<String>,
    /// Frobenius norms `||W_I||_F`.
    pub norms: Vec<f64>,
    /// lp-MKL weights `beta_I` (`||beta||_p = 1`).
    pub beta: Vec<f64>,
    /// `beta_I / sum_J beta_J`: the shares reported as relevance.
    pub shares: Vec<f64>,
}

/// Standard deviations of the initial parameters: unimodal weights, interaction factors, and
/// `1 / sqrt(r)` for fusion weights. Inputs are normalised to a mean squared norm of 1, so a
/// projection `x~ u` has about the factor's standard deviation: interaction blocks start at
/// about `0.25` per output, unimodal ones at `0.1`.
const UNIMODAL_STD: f64 = 0.1;
const FACTOR_STD: f64 = 0.5;

/// Checks a p (>= 1 or inf).
pub(crate) fn check_p(p: f64) -> Result<()> {
    if p.is_nan() || p < 1.0 {
        return Err(Error::param(
            "relevance_p",
            format!("must be >= 1 (or inf), got {p}"),
        ));
    }
    Ok(())
}

impl<T: Real> BlockLmf<T> {
    /// A model over `modalities` (`(name, d_m)` in input order) with the blocks of `spec`,
    /// rank `rank` (interaction blocks), `out_dim` outputs and relevance exponent `p` (>= 1,
    /// or infinity), initialised from `seed`: entries normal with standard deviation 0.1
    /// (unimodal weights), 0.5 (interaction factors) and `1/sqrt(r)` (fusion weights), drawn
    /// block by block in the files' tensor order; bias 0. Normalisation statistics start as the
    /// identity and are fitted by the first [`BlockLmf::train`].
    ///
    /// ```
    /// use mmfuse::blocks::BlockSpec;
    /// use mmfuse::lmf::blockwise::BlockLmf;
    /// let model = BlockLmf::<f32>::new(&[("v", 4), ("a", 3), ("t", 2)], &BlockSpec::Pairs, 8, 1, 1.0, 7)?;
    /// assert_eq!(model.block_names(), ["v", "a", "t", "v*a", "v*t", "a*t"]);
    /// # Ok::<(), mmfuse::Error>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidParameter` for no modalities, a bad name (empty, with a comma, twice), a
    /// feature size of 0, rank 0, out_dim 0, p < 1, or a spec naming unknown modalities.
    pub fn new(
        modalities: &[(&str, usize)],
        spec: &BlockSpec,
        rank: usize,
        out_dim: usize,
        p: f64,
        seed: u64,
    ) -> Result<Self> {
        let names: Vec<String> = modalities.iter().map(|(n, _)| n.to_string()).collect();
        let dims: Vec<usize> = modalities.iter().map(|&(_, d)| d).collect();
        check_modalities(&names, &dims)?;
        if let Some(bad) = names.iter().find(|n| n.contains('*') || n.contains('.')) {
            return Err(Error::param(
                "modalities",
                format!(
                    "modality name `{bad}` contains `*` or `.` (block and tensor names use them)"
                ),
            ));
        }
        if rank == 0 {
            return Err(Error::param("rank", "must be >= 1"));
        }
        if out_dim == 0 {
            return Err(Error::param("out_dim", "must be >= 1"));
        }
        check_p(p)?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let blocks = spec.resolve(&refs)?;
        let layout = Layout::new(&dims, rank, out_dim, blocks)?;
        let mut model = BlockLmf {
            names,
            stats: dims.iter().map(|&d| ModalityStats::identity(d)).collect(),
            params: vec![T::ZERO; layout.len],
            layout,
            p,
            stats_fitted: false,
        };
        let mut normal = Normal::new(seed);
        for b in 0..model.layout.blocks.len() {
            let interaction = model.layout.blocks[b].is_interaction();
            let std = if interaction {
                FACTOR_STD
            } else {
                UNIMODAL_STD
            };
            for j in 0..model.layout.blocks[b].members.len() {
                for idx in model.factor_indices(b, j) {
                    model.params[idx] = T::from_f64(std * normal.sample());
                }
            }
            if let Some(wr) = model.layout.w_range(b) {
                let std = 1.0 / (rank as f64).sqrt();
                for v in &mut model.params[wr] {
                    *v = T::from_f64(std * normal.sample());
                }
            }
        }
        Ok(model)
    }

    /// Flat indices of block `b`'s factor for its `j`-th member, in the file's tensor order:
    /// `(d_m, h)` for a unimodal block, `(r, d_m, h)` for an interaction factor, C order.
    pub(crate) fn factor_indices(&self, b: usize, j: usize) -> Vec<usize> {
        let l = &self.layout;
        let m = l.blocks[b].members[j];
        let (d, h) = (l.dims[m], l.h);
        if !l.blocks[b].is_interaction() {
            // W_m^T is stored: element (a, k) of the (d, h) tensor is at k d + a.
            let start = l.u_start[m];
            return (0..d)
                .flat_map(|a| (0..h).map(move |k| start + k * d + a))
                .collect();
        }
        let (c, off) = (l.cols[m], l.col_offset[b][j]);
        let start = l.v_start[m];
        let mut out = Vec::with_capacity(l.rank * d * h);
        for i in 0..l.rank {
            for a in 0..d {
                for k in 0..h {
                    out.push(start + a * c + off + i * h + k);
                }
            }
        }
        out
    }

    /// Modality names, in input order.
    pub fn modalities(&self) -> &[String] {
        &self.names
    }

    /// Feature sizes, in input order.
    pub fn dims(&self) -> &[usize] {
        &self.layout.dims
    }

    /// Rank of the interaction blocks.
    pub fn rank(&self) -> usize {
        self.layout.rank
    }

    /// Output size h.
    pub fn out_dim(&self) -> usize {
        self.layout.h
    }

    /// The relevance exponent p (>= 1; infinity allowed).
    pub fn p(&self) -> f64 {
        self.p
    }

    /// The blocks (unimodal first, then interactions; see [`BlockSpec::resolve`]).
    pub fn blocks(&self) -> &[Block] {
        &self.layout.blocks
    }

    /// Block names, in block order.
    pub fn block_names(&self) -> Vec<&str> {
        self.layout.blocks.iter().map(|b| b.name.as_str()).collect()
    }

    /// Number of parameters (factors, fusion weights, bias; not the statistics).
    pub fn num_params(&self) -> usize {
        self.layout.len
    }

    /// All parameters in their flat layout (see the module docs).
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// All parameters, mutable, in their flat layout (e.g. to read a gradient vector from
    /// [`BlockLmf::loss_and_gradients`] tensor by tensor through a copy of the model).
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// The normalisation statistics, one per modality.
    pub fn stats(&self) -> &[ModalityStats<T>] {
        &self.stats
    }

    /// Whether the statistics were fitted (by training or loaded from a file) rather than the
    /// identity of a new model.
    pub fn stats_fitted(&self) -> bool {
        self.stats_fitted
    }

    /// Replaces the statistics (e.g. to continue training on other data with the first data's
    /// normalisation).
    ///
    /// # Errors
    /// `Shape` when a mean's length differs from its modality's size; `InvalidParameter` for a
    /// scale that is not positive and finite or a non-finite mean.
    pub fn set_stats(&mut self, stats: Vec<ModalityStats<T>>) -> Result<()> {
        if stats.len() != self.names.len()
            || stats
                .iter()
                .zip(self.dims())
                .any(|(s, &d)| s.mean.len() != d)
        {
            return Err(Error::Shape(
                "one statistics entry per modality, each mean of the modality's size".into(),
            ));
        }
        for (s, name) in stats.iter().zip(&self.names) {
            let scale = s.scale.to_f64();
            if !(scale.is_finite() && scale > 0.0) || s.mean.iter().any(|v| !v.to_f64().is_finite())
            {
                return Err(Error::param(
                    "stats",
                    format!("modality `{name}`: the scale must be positive and finite and the mean finite"),
                ));
            }
        }
        self.stats = stats;
        self.stats_fitted = true;
        Ok(())
    }

    /// The factor of block `block` for modality `modality`, in the file layout: `(d_m, h)` for a
    /// unimodal block, `(r, d_m, h)` (C order) for an interaction factor.
    ///
    /// # Errors
    /// `InvalidParameter` when the block or the modality (in that block) does not exist.
    pub fn factor(&self, block: &str, modality: &str) -> Result<Vec<T>> {
        let (b, j) = self.find_factor(block, modality)?;
        Ok(self
            .factor_indices(b, j)
            .into_iter()
            .map(|i| self.params[i])
            .collect())
    }

    /// Sets a factor from values in the layout of [`BlockLmf::factor`].
    ///
    /// # Errors
    /// As [`BlockLmf::factor`], and `Shape` when `values` has the wrong length.
    pub fn set_factor(&mut self, block: &str, modality: &str, values: &[T]) -> Result<()> {
        let (b, j) = self.find_factor(block, modality)?;
        let idx = self.factor_indices(b, j);
        if idx.len() != values.len() {
            return Err(Error::Shape(format!(
                "factor {block}.{modality} has {} values, got {}",
                idx.len(),
                values.len()
            )));
        }
        for (i, &v) in idx.into_iter().zip(values) {
            self.params[i] = v;
        }
        Ok(())
    }

    /// An interaction block's fusion weights (`r`); `None` for a unimodal or unknown block.
    pub fn fusion_weights(&self, block: &str) -> Option<&[T]> {
        let b = self.block_index(block)?;
        self.layout.w_range(b).map(|r| &self.params[r])
    }

    /// Mutable fusion weights of an interaction block.
    pub fn fusion_weights_mut(&mut self, block: &str) -> Option<&mut [T]> {
        let b = self.block_index(block)?;
        self.layout.w_range(b).map(move |r| &mut self.params[r])
    }

    /// The bias (`h`).
    pub fn bias(&self) -> &[T] {
        &self.params[self.layout.bias_start..]
    }

    /// Mutable bias.
    pub fn bias_mut(&mut self) -> &mut [T] {
        let s = self.layout.bias_start;
        &mut self.params[s..]
    }

    pub(crate) fn block_index(&self, block: &str) -> Option<usize> {
        self.layout.blocks.iter().position(|b| b.name == block)
    }

    fn find_factor(&self, block: &str, modality: &str) -> Result<(usize, usize)> {
        let b = self.block_index(block).ok_or_else(|| {
            Error::param(
                "block",
                format!(
                    "no block `{block}` (blocks: {})",
                    self.block_names().join(", ")
                ),
            )
        })?;
        let j = self.layout.blocks[b]
            .members
            .iter()
            .position(|&m| self.names[m] == modality)
            .ok_or_else(|| {
                Error::param(
                    "modality",
                    format!("block `{block}` has no modality `{modality}`"),
                )
            })?;
        Ok((b, j))
    }

    /// Frobenius norms of the blocks' tensors, in block order, in closed form from the factors.
    pub fn block_norms(&self) -> Vec<f64> {
        block_norms_sq(&self.layout, &self.params)
            .into_iter()
            .map(|v| v.max(0.0).sqrt())
            .collect()
    }

    /// The lp relevance of the blocks: `beta_I = n_I^(2/(p+1)) / (sum_J n_J^(2p/(p+1)))^(1/p)`
    /// from the block norms `n_I`, and the shares `beta_I / sum beta`.
    ///
    /// # Errors
    /// `InvalidParameter` when a norm is not finite (a diverged model).
    pub fn relevance(&self) -> Result<Relevance> {
        let norms = self.block_norms();
        let (beta, shares) = relevance_from_norms(&norms, self.p)?;
        Ok(Relevance {
            blocks: self.block_names().iter().map(|s| s.to_string()).collect(),
            norms,
            beta,
            shares,
        })
    }
}
