//! The kernels MKL weighs, computed from the data tile by tile (docs/design.md section 10):
//! per modality the prepared training data and how its raw kernel is normalised, and per block
//! which modalities it multiplies and by what it is scaled.
//!
//! Entry (i, j) of block b is `scale_b prod_{m in b} t_m(K_m(i, j))`, where t_m is the
//! modality's normalisation applied with training statistics:
//! - none: `v`; trace: `v / (tr K_m / n)`;
//! - unit diagonal: `v / sqrt(k(x_i, x_i) k(x_j, x_j))` (0 where a self-similarity is 0);
//! - centring: `v - mu_i - mu_j + g` with mu the column means of K_m and g their mean.
//!
//! Without interaction blocks every block is one modality with its normalisation and scale 1;
//! with them every modality is centred and every block is divided by the mean of its diagonal
//! (trace normalisation), as the dense path's `BlockKernels` does.

use crate::blocks::Block;
use crate::gram::PreparedData;
use crate::scalar::Real;

/// How a modality's raw kernel entries are normalised (with training statistics).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Transform {
    /// As computed.
    None,
    /// Multiplied by a constant (1 / mean of the diagonal).
    Scale(f64),
    /// Divided by sqrt(k(x_i, x_i) k(x_j, x_j)).
    UnitDiag,
    /// Centred in feature space: `v - mu_i - mu_j + g`.
    Center {
        /// Column (= row) means of the raw training kernel.
        col_means: Vec<f64>,
        /// Mean of all its entries.
        grand: f64,
    },
}

/// One modality: prepared training data, self-similarities, normalisation.
pub(crate) struct ModalitySource<T: Real> {
    pub name: String,
    pub prep: PreparedData<T>,
    /// k(x_i, x_i) of the training points (f64).
    pub self_sim: Vec<f64>,
    /// 1 / sqrt(self_sim), 0 where self_sim <= 0 (unit diagonal).
    pub inv_sqrt: Vec<f64>,
    pub transform: Transform,
}

/// One block: the modalities it multiplies (indices into the modalities) and its scale.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BlockSource {
    pub name: String,
    pub members: Vec<usize>,
    pub scale: f64,
}

/// All modalities and blocks of a fit from data.
pub(crate) struct DataSource<T: Real> {
    pub modalities: Vec<ModalitySource<T>>,
    pub blocks: Vec<BlockSource>,
    pub n: usize,
}

/// The per-point statistics of one side of a tile (training points: gathered by index).
pub(crate) struct SideStats<'a> {
    pub ids: &'a [usize],
}

impl<T: Real> ModalitySource<T> {
    /// A modality over prepared training data with transform `transform`.
    pub fn new(name: &str, prep: PreparedData<T>, transform: Transform) -> Self {
        let self_sim = prep.self_similarities();
        let inv_sqrt = self_sim
            .iter()
            .map(|&d| if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 })
            .collect();
        ModalitySource {
            name: name.to_string(),
            prep,
            self_sim,
            inv_sqrt,
            transform,
        }
    }

    /// The normalised diagonal entry of training point i.
    pub fn diag(&self, i: usize) -> f64 {
        let v = self.self_sim[i];
        match &self.transform {
            Transform::None => v,
            Transform::Scale(s) => v * s,
            Transform::UnitDiag => {
                if v > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Transform::Center { col_means, grand } => v - 2.0 * col_means[i] + grand,
        }
    }

    /// Normalises a raw tile in place: rows `rows.ids`, columns `cols.ids` (training points),
    /// row-major with `cols.ids.len()` columns; the values are computed in f64 and rounded
    /// once to T.
    pub fn transform_tile(&self, tile: &mut [T], rows: &SideStats<'_>, cols: &SideStats<'_>) {
        let w = cols.ids.len();
        match &self.transform {
            Transform::None => {}
            Transform::Scale(s) => {
                for v in tile.iter_mut() {
                    *v = T::from_f64(v.to_f64() * s);
                }
            }
            Transform::UnitDiag => {
                for (row, &i) in tile.chunks_exact_mut(w).zip(rows.ids) {
                    let ri = self.inv_sqrt[i];
                    for (v, &j) in row.iter_mut().zip(cols.ids) {
                        *v = T::from_f64(v.to_f64() * ri * self.inv_sqrt[j]);
                    }
                }
            }
            Transform::Center { col_means, grand } => {
                for (row, &i) in tile.chunks_exact_mut(w).zip(rows.ids) {
                    let ri = col_means[i] - grand;
                    for (v, &j) in row.iter_mut().zip(cols.ids) {
                        *v = T::from_f64(v.to_f64() - ri - col_means[j]);
                    }
                }
            }
        }
    }
}

impl<T: Real> DataSource<T> {
    /// Blocks from resolved [`Block`]s: scale 1 for a one-modality block without interactions.
    pub fn block_sources(blocks: &[Block], scales: &[f64]) -> Vec<BlockSource> {
        blocks
            .iter()
            .zip(scales)
            .map(|(b, &s)| BlockSource {
                name: b.name.clone(),
                members: b.members.clone(),
                scale: s,
            })
            .collect()
    }

    /// The diagonal of block b at training point i.
    pub fn block_diag(&self, b: usize, i: usize) -> f64 {
        let blk = &self.blocks[b];
        blk.scale
            * blk
                .members
                .iter()
                .map(|&m| self.modalities[m].diag(i))
                .product::<f64>()
    }

    /// Diagonal of K_beta = sum_b beta_b K_b over all training points.
    pub fn combined_diag(&self, beta: &[f64]) -> Vec<f64> {
        (0..self.n)
            .map(|i| {
                beta.iter()
                    .enumerate()
                    .filter(|(_, &bb)| bb != 0.0)
                    .map(|(b, &bb)| bb * self.block_diag(b, i))
                    .sum()
            })
            .collect()
    }

    /// Which modalities blocks of non-zero weight need.
    pub fn needed_modalities(&self, beta: &[f64]) -> Vec<bool> {
        let mut need = vec![false; self.modalities.len()];
        for (blk, &b) in self.blocks.iter().zip(beta) {
            if b != 0.0 {
                for &m in &blk.members {
                    need[m] = true;
                }
            }
        }
        need
    }
}

/// Scratch of one tile computation: a raw tile per modality and one block tile.
pub(crate) struct TileScratch<T> {
    pub modality: Vec<Vec<T>>,
    pub block: Vec<T>,
}

impl<T: Real> TileScratch<T> {
    pub fn new(modalities: usize) -> Self {
        TileScratch {
            modality: vec![Vec::new(); modalities],
            block: Vec::new(),
        }
    }
}

impl<T: Real> DataSource<T> {
    /// Computes the normalised tiles of the modalities in `need` for rows `rows` against
    /// columns `cols` (training point ids), from the gathered prepared rows `row_prep[m]` and
    /// columns `col_prep[m]` (present for the modalities in `need`), into `scratch.modality[m]`;
    /// column blocks of `col_tile` are spread over the current rayon pool (one block: on the
    /// calling thread).
    pub fn modality_tiles(
        &self,
        need: &[bool],
        (rows, row_prep): (&[usize], &[Option<PreparedData<T>>]),
        (cols, col_prep): (&[usize], &[Option<PreparedData<T>>]),
        col_tile: usize,
        scratch: &mut TileScratch<T>,
    ) {
        let len = rows.len() * cols.len();
        for (m, src) in self.modalities.iter().enumerate() {
            let (Some(rp), Some(cp)) = (&row_prep[m], &col_prep[m]) else {
                continue;
            };
            if !need[m] {
                continue;
            }
            let buf = &mut scratch.modality[m];
            buf.resize(len, T::ZERO);
            rp.block_into(cp, (rows.len(), col_tile), buf);
            fix_self_similarity(src, rows, cols, buf);
            src.transform_tile(buf, &SideStats { ids: rows }, &SideStats { ids: cols });
        }
    }

    /// The tile of block b from the modality tiles (scratch.modality), into scratch.block.
    pub fn block_tile(&self, b: usize, scratch: &mut TileScratch<T>) {
        let blk = &self.blocks[b];
        let first = &scratch.modality[blk.members[0]];
        let out = &mut scratch.block;
        out.clear();
        if blk.members.len() == 1 && blk.scale == 1.0 {
            out.extend_from_slice(first);
            return;
        }
        let s = blk.scale;
        out.extend(first.iter().map(|v| T::from_f64(v.to_f64() * s)));
        for &m in &blk.members[1..] {
            for (o, v) in out.iter_mut().zip(&scratch.modality[m]) {
                *o = T::from_f64(o.to_f64() * v.to_f64());
            }
        }
    }
}

/// Where a row point meets itself among the columns, the exact self-similarity the dense
/// assembly sets (1 for rbf and laplacian, 1 for cosine with a non-zero norm).
fn fix_self_similarity<T: Real>(
    src: &ModalitySource<T>,
    rows: &[usize],
    cols: &[usize],
    tile: &mut [T],
) {
    let kernel = src.prep.kernel();
    let cosine = matches!(kernel, crate::gram::Kernel::Cosine);
    if !(kernel.unit_self_similarity() || cosine) {
        return;
    }
    let w = cols.len();
    for (r, &i) in rows.iter().enumerate() {
        if cosine && src.self_sim[i] <= 0.0 {
            continue;
        }
        // Columns are sorted ascending in every caller (active sets and support vectors keep
        // the training order), so a binary search finds the point.
        if let Ok(c) = cols.binary_search(&i) {
            tile[r * w + c] = T::ONE;
        }
    }
}
