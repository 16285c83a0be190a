//! Where every parameter of a block model lives in its one flat vector.
//!
//! Per modality `m`, the weights of every block that contains it form one `d_m x C_m` row-major
//! matrix `V_m` (so that a modality's projections for all its blocks are one GEMM, and their
//! gradients another): the unimodal block's `h` columns first, then for each interaction block
//! containing `m`, in block order, its `r h` columns (column `i h + k` is rank `i`, output `k`;
//! the block's factor `U_{I,m}[i][a][k]` is `V_m[a][off + i h + k]`). After the matrices come
//! each interaction block's fusion weights (`r`), in block order, then the bias (`h`).

use crate::blocks::Block;
use crate::error::{Error, Result};

/// The layout of a block model's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub dims: Vec<usize>,
    pub rank: usize,
    pub h: usize,
    pub blocks: Vec<Block>,
    /// Columns `C_m` of each modality's matrix.
    pub cols: Vec<usize>,
    /// Start of `V_m` in the flat vector.
    pub v_start: Vec<usize>,
    /// Per block, per member (in `members` order): the block's first column in that member's
    /// matrix (0 for a unimodal block).
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
            let width = if b.is_interaction() {
                rank.checked_mul(h).ok_or_else(too_many)?
            } else {
                h
            };
            let mut offs = Vec::with_capacity(b.members.len());
            for &mm in &b.members {
                offs.push(cols[mm]);
                cols[mm] = cols[mm].checked_add(width).ok_or_else(too_many)?;
            }
            col_offset.push(offs);
        }
        let mut v_start = Vec::with_capacity(m);
        let mut len = 0usize;
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
            v_start,
            col_offset,
            w_start,
            bias_start,
            len,
        })
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
