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
