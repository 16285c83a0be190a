//! Kernel-vector products from the data, never storing a kernel: u_b = K_b[R, S] c for every
//! block b, tile by tile (compute the modality tiles with the Gram tile code, normalise,
//! multiply into block tiles, multiply by c, discard). This is what the solver uses for the
//! per-block outputs g_b = K_b a over the support vectors, for gradient reconstruction after
//! shrinking, and for the centring statistics (K 1 / n).
//!
//! Rows are split into fixed tiles spread over rayon tasks; each task owns its rows' sums and
//! runs over the column tiles in order, so the result is bitwise the same for any number of
//! threads.

use super::source::{DataSource, TileScratch};
use crate::error::{Error, Result};
use crate::gram::PreparedData;
use crate::scalar::Real;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// Rows per task.
const ROW_TILE: usize = 128;
/// Columns per tile.
const COL_TILE: usize = 512;

/// Prepared columns, split into tiles once per pass: `tiles[t][m]` for modality m.
pub(crate) struct ColumnTiles<T: Real> {
    ids: Vec<Vec<usize>>,
    tiles: Vec<Vec<Option<PreparedData<T>>>>,
}

impl<T: Real> ColumnTiles<T> {
    /// The columns `cols` (training ids, ascending) of the modalities in `need`.
    pub fn new(src: &DataSource<T>, cols: &[usize], need: &[bool]) -> Result<Self> {
        let bytes: usize = src
            .modalities
            .iter()
            .zip(need)
            .filter(|(_, &n)| n)
            .map(|(m, _)| m.prep.d())
            .sum::<usize>()
            .saturating_mul(cols.len());
        crate::limits::check_alloc::<T>(bytes, 1, "the support vectors' rows for a kernel pass")?;
        let ids: Vec<Vec<usize>> = cols.chunks(COL_TILE).map(|c| c.to_vec()).collect();
        let tiles = ids
            .iter()
            .map(|c| {
                src.modalities
                    .iter()
                    .zip(need)
                    .map(|(m, &n)| n.then(|| m.prep.gather(c)))
                    .collect()
            })
            .collect();
        Ok(ColumnTiles { ids, tiles })
    }
}

/// For every block b with `want[b]`: `out[b][r] = sum_s K_b(rows[r], cols[s]) coef[s]`
/// (empty vectors for the others). `cols` ascending; `coef` of the same length. Stops with
/// `Cancelled` when `cancel` is set.
pub(crate) fn block_products<T: Real>(
    src: &DataSource<T>,
    rows: &[usize],
    cols: &[usize],
    coef: &[f64],
    want: &[bool],
    cancel: &AtomicBool,
) -> Result<Vec<Vec<f64>>> {
    debug_assert_eq!(cols.len(), coef.len());
    let nb = src.blocks.len();
    let mut need = vec![false; src.modalities.len()];
    for (blk, &w) in src.blocks.iter().zip(want) {
        if w {
            for &m in &blk.members {
                need[m] = true;
            }
        }
    }
    let mut out: Vec<Vec<f64>> = want
        .iter()
        .map(|&w| if w { vec![0.0; rows.len()] } else { Vec::new() })
        .collect();
    if rows.is_empty() || cols.is_empty() || !want.iter().any(|&w| w) {
        return Ok(out);
    }
    let col_tiles = ColumnTiles::new(src, cols, &need)?;
    let parts: Vec<Result<Vec<Vec<f64>>>> = rows
        .par_chunks(ROW_TILE)
        .map(|row_ids| {
            let row_prep: Vec<Option<PreparedData<T>>> = src
                .modalities
                .iter()
                .zip(&need)
                .map(|(m, &n)| n.then(|| m.prep.gather(row_ids)))
                .collect();
            let mut scratch = TileScratch::new(src.modalities.len());
            let mut acc = vec![vec![0.0f64; row_ids.len()]; nb];
            let mut c0 = 0;
            for (ids, tile) in col_tiles.ids.iter().zip(&col_tiles.tiles) {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled("the fit was stopped".into()));
                }
                src.modality_tiles(
                    &need,
                    (row_ids, &row_prep),
                    (ids, tile),
                    ids.len(),
                    &mut scratch,
                );
                let w = ids.len();
                let c = &coef[c0..c0 + w];
                for b in 0..nb {
                    if !want[b] {
                        continue;
                    }
                    src.block_tile(b, &mut scratch);
                    for (a, row) in acc[b].iter_mut().zip(scratch.block.chunks_exact(w)) {
                        *a += dot(row, c);
                    }
                }
                c0 += w;
            }
            Ok(acc)
        })
        .collect();
    let mut r0 = 0;
    for part in parts {
        let part = part?;
        let len = part.first().map_or(0, Vec::len);
        for (o, p) in out.iter_mut().zip(&part) {
            if !o.is_empty() {
                o[r0..r0 + len].copy_from_slice(p);
            }
        }
        r0 += len;
    }
    Ok(out)
}

/// `sum_s row[s] c[s]` in f64 over four interleaved accumulators.
fn dot<T: Real>(row: &[T], c: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (rc, cc) = (row.chunks_exact(4), c.chunks_exact(4));
    let (rr, cr) = (rc.remainder(), cc.remainder());
    for (a, b) in rc.zip(cc) {
        for q in 0..4 {
            acc[q] += a[q].to_f64() * b[q];
        }
    }
    for (q, (a, b)) in rr.iter().zip(cr).enumerate() {
        acc[q] += a.to_f64() * b;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gram::{gram, GramOptions, Kernel};
    use crate::matrix::Matrix;
    use crate::mkl::scale::source::{BlockSource, ModalitySource, Transform};

    /// Deterministic values in [-1, 1).
    fn data(n: usize, d: usize, seed: u64) -> Matrix<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v = (0..n * d)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .collect();
        Matrix::from_vec(n, d, v).unwrap()
    }

    /// The plain reference: dense raw kernels, the transforms and block products written out
    /// entry by entry, then the product with the coefficients, all in f64.
    fn reference(
        raw: &[Matrix<f64>],
        transforms: &[Transform],
        blocks: &[BlockSource],
        rows: &[usize],
        cols: &[usize],
        coef: &[f64],
    ) -> Vec<Vec<f64>> {
        let t = |m: usize, i: usize, j: usize| {
            let k = &raw[m];
            let v = k.get(i, j);
            match &transforms[m] {
                Transform::None => v,
                Transform::Scale(s) => v * s,
                Transform::UnitDiag => v / (k.get(i, i) * k.get(j, j)).sqrt(),
                Transform::Center { col_means, grand } => v - col_means[i] - col_means[j] + grand,
            }
        };
        blocks
            .iter()
            .map(|b| {
                rows.iter()
                    .map(|&i| {
                        cols.iter()
                            .zip(coef)
                            .map(|(&j, c)| {
                                b.scale * b.members.iter().map(|&m| t(m, i, j)).product::<f64>() * c
                            })
                            .sum()
                    })
                    .collect()
            })
            .collect()
    }

    /// Sizes off the row tile (128) and column tile (512), rows in any order, every
    /// transform, a product block. Error bound: each tiled kernel entry differs from the dense
    /// one by at most a few d u |k| (the same Gram tile formulas, d <= 7 terms, then at most
    /// four f64 or T roundings in the transform and product), so an output differs by at most
    /// c_T * sum_s |coef_s| * max|K_b| with c_f64 = 1e-12 and c_f32 = 1e-5 (about 50 u each,
    /// generous against the ~20 u the count gives).
    fn check<T: Real>(bound: f64) {
        let n = 700;
        let xs = [data(n, 7, 1), data(n, 3, 2), data(n, 5, 3)];
        let kernels = [
            Kernel::rbf(0.4),
            Kernel::Linear,
            Kernel::polynomial(0.5, 2, 1.0),
        ];
        let go = GramOptions::default();
        let raw: Vec<Matrix<f64>> = xs
            .iter()
            .zip(&kernels)
            .map(|(x, k)| gram(x.as_mat_ref(), k, &go).unwrap())
            .collect();
        let means: Vec<f64> = (0..n)
            .map(|j| (0..n).map(|i| raw[0].get(i, j)).sum::<f64>() / n as f64)
            .collect();
        let grand = means.iter().sum::<f64>() / n as f64;
        let transforms = vec![
            Transform::Center {
                col_means: means,
                grand,
            },
            Transform::UnitDiag,
            Transform::Scale(0.37),
        ];
        let modalities = xs
            .iter()
            .zip(&kernels)
            .zip(&transforms)
            .enumerate()
            .map(|(m, ((x, k), t))| {
                let xt = x.map(T::from_f64);
                let prep = PreparedData::new(xt.as_mat_ref(), k).unwrap();
                ModalitySource::new(&format!("m{m}"), prep, t.clone())
            })
            .collect();
        let blocks = vec![
            BlockSource {
                name: "m0".into(),
                members: vec![0],
                scale: 1.0,
            },
            BlockSource {
                name: "m2".into(),
                members: vec![2],
                scale: 1.0,
            },
            BlockSource {
                name: "m0*m1".into(),
                members: vec![0, 1],
                scale: 1.7,
            },
            BlockSource {
                name: "m0*m1*m2".into(),
                members: vec![0, 1, 2],
                scale: 0.6,
            },
        ];
        let src = DataSource {
            modalities,
            blocks: blocks.clone(),
            n,
        };
        let rows: Vec<usize> = (0..300).map(|k| (k * 389 + 11) % n).collect();
        let cols: Vec<usize> = (0..n).filter(|j| j % 3 != 1).collect();
        let coef: Vec<f64> = cols
            .iter()
            .map(|&j| ((j * 7919) % 13) as f64 / 6.5 - 1.0)
            .collect();
        let want = [true, false, true, true];
        let got =
            block_products(&src, &rows, &cols, &coef, &want, &AtomicBool::new(false)).unwrap();
        let want_ref = reference(&raw, &transforms, &blocks, &rows, &cols, &coef);
        let l1: f64 = coef.iter().map(|c| c.abs()).sum();
        assert!(got[1].is_empty());
        for b in [0, 2, 3] {
            let kmax = want_ref[b]
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()))
                .max(1.0);
            for (r, (g, w)) in got[b].iter().zip(&want_ref[b]).enumerate() {
                assert!(
                    (g - w).abs() <= bound * l1 * kmax,
                    "block {b} row {r}: {g} vs {w}"
                );
            }
        }
        // One thread or two: bitwise the same (fixed tiles, sums in order).
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let again = one
            .install(|| block_products(&src, &rows, &cols, &coef, &want, &AtomicBool::new(false)))
            .unwrap();
        assert_eq!(again, got);
        // A set flag stops it.
        assert!(matches!(
            block_products(&src, &rows, &cols, &coef, &want, &AtomicBool::new(true)),
            Err(Error::Cancelled(_))
        ));
    }

    #[test]
    fn tiled_products_match_the_plain_reference_f64() {
        check::<f64>(1e-12);
    }

    #[test]
    fn tiled_products_match_the_plain_reference_f32() {
        check::<f32>(1e-5);
    }
}
