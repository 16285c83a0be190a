//! Where every parameter of a block model lives in its one flat vector.
//!
//! First the unimodal blocks' weights, transposed: `W_m^T` (`h x d_m`, row-major), so that a
//! unimodal output is a dot product of contiguous rows. Then, per modality `m`, the factors of
//! every interaction block that contains it form one `d_m x C_m` row-major matrix `V_m` (so that
//! a modality's projections for all its interaction blocks are one product, and their
//! gradients another): for each such block, in block order, its `r h` columns (column `i h + k`
//! is rank `i`, output `k`; the block's factor `U_{I,m}[i][a][k]` is `V_m[a][off + i h + k]`).
//! With `h = 1` and `r = 8`, `C_m` is 8 per block: whole registers, which is why the unimodal
//! weights (h columns) are kept apart. After the matrices come each interaction block's fusion
//! weights (`r`), in block order, then the bias (`h`).

use crate::blocks::Block;
use crate::error::{Error, Result};

/// The layout of a block model's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub dims: Vec<usize>,
    pub rank: usize,
    pub h: usize,
    pub blocks: Vec<Block>,
    /// Columns `C_m` of each modality's interaction matrix (0 when no interaction block
    /// contains the modality).
    pub cols: Vec<usize>,
    /// Start of `W_m^T` (`h x d_m`) in the flat vector.
    pub u_start: Vec<usize>,
    /// Start of `V_m` in the flat vector.
    pub v_start: Vec<usize>,
    /// Per block, per member (in `members` order): the block's first column in that member's
    /// interaction matrix (0, unused, for a unimodal block).
    pub col_offset: Vec<Vec<usize>>,
    /// Per block: the start of its fusion weights (interaction blocks only).
    pub w_start: Vec<Option<usize>>,
    /// Start of the bias.
    pub bias_start: usize,
    /// Number of parameters.
    pub len: usize,
}

impl Layout {
    pub(crate) fn new(dims: &[usize], rank: usize, h: usize, blocks: Vec<Block>) -> Result<Self> {
        let m = dims.len();
        let mut cols = vec![0usize; m];
        let mut col_offset = Vec::with_capacity(blocks.len());
        for b in &blocks {
            if !b.is_interaction() {
                col_offset.push(vec![0]);
                continue;
            }
            let width = rank.checked_mul(h).ok_or_else(too_many)?;
            let mut offs = Vec::with_capacity(b.members.len());
            for &mm in &b.members {
                offs.push(cols[mm]);
                cols[mm] = cols[mm].checked_add(width).ok_or_else(too_many)?;
            }
            col_offset.push(offs);
        }
        let mut u_start = Vec::with_capacity(m);
        let mut len = 0usize;
        for &d in dims {
            u_start.push(len);
            len = d
                .checked_mul(h)
                .and_then(|x| len.checked_add(x))
                .ok_or_else(too_many)?;
        }
        let mut v_start = Vec::with_capacity(m);
        for (&d, &c) in dims.iter().zip(&cols) {
            v_start.push(len);
            len = d
                .checked_mul(c)
                .and_then(|x| len.checked_add(x))
                .ok_or_else(too_many)?;
        }
        let mut w_start = Vec::with_capacity(blocks.len());
        for b in &blocks {
            if b.is_interaction() {
                w_start.push(Some(len));
                len = len.checked_add(rank).ok_or_else(too_many)?;
            } else {
                w_start.push(None);
            }
        }
        let bias_start = len;
        len = len.checked_add(h).ok_or_else(too_many)?;
        if len.checked_mul(std::mem::size_of::<f64>() * 4).is_none() {
            return Err(too_many());
        }
        Ok(Layout {
            dims: dims.to_vec(),
            rank,
            h,
            blocks,
            cols,
            u_start,
            v_start,
            col_offset,
            w_start,
            bias_start,
            len,
        })
    }

    /// The range of `W_m^T` (`h x d_m`) in the flat vector.
    pub(crate) fn u_range(&self, m: usize) -> std::ops::Range<usize> {
        self.u_start[m]..self.u_start[m] + self.h * self.dims[m]
    }

    /// The range of `V_m` in the flat vector.
    pub(crate) fn v_range(&self, m: usize) -> std::ops::Range<usize> {
        self.v_start[m]..self.v_start[m] + self.dims[m] * self.cols[m]
    }

    /// The range of block `b`'s fusion weights (interaction blocks).
    pub(crate) fn w_range(&self, b: usize) -> Option<std::ops::Range<usize>> {
        self.w_start[b].map(|s| s..s + self.rank)
    }
}

fn too_many() -> Error {
    Error::param(
        "rank",
        "the model's parameter count overflows (rank, output size or feature counts too large)",
    )
}
