//! The forward and backward passes over a batch: chunks of [`CHUNK_ROWS`] rows in parallel;
//! per chunk and modality one GEMM gives the projections of every block containing the
//! modality (`X_m V_m`, see `layout.rs`), the SIMD block passes of `mmfuse-kernels`
//! (`cp_block_forward` / `cp_block_backward`) combine them while they are in cache, and one
//! more GEMM per modality gives the chunk's weight gradients (`X_m^T dP_m`). Chunk results are
//! summed in chunk order, so results are bitwise the same for any number of threads.

use super::layout::Layout;
use super::stats::ModalityStats;
use crate::lmf::loss::{softmax_row_loss, Loss};
use crate::scalar::Real;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use mmfuse_kernels::{self as kernels, Arch, CpPart, CpPartMut};
use rayon::prelude::*;

/// Rows per chunk: fixed (never derived from the thread count) so that results do not depend
/// on it; 128 rows keep a chunk's projections (128 x sum C_m values) in L2 and give a batch of
/// 256 two tasks.
pub(crate) const CHUNK_ROWS: usize = 128;

/// What a pass reads: the layout, the parameters and, for raw inputs, the statistics to
/// normalise them with (None: the inputs are normalised already).
pub(crate) struct PassModel<'a, T> {
    pub layout: &'a Layout,
    pub params: &'a [T],
    pub stats: Option<&'a [ModalityStats<T>]>,
}

/// Targets of a loss: `N x h` values (MSE, L1) or `N` class labels (cross-entropy).
#[derive(Clone, Copy)]
pub(crate) enum Targets<'a, T> {
    Values(&'a [T]),
    Labels(&'a [usize]),
}

/// Per-chunk buffers.
#[derive(Default)]
struct Scratch<T> {
    /// Normalised inputs (raw inputs only), per modality.
    x: Vec<Vec<T>>,
    /// Projections `X_m V_m`, per modality (`rows x C_m`).
    proj: Vec<Vec<T>>,
    /// Their gradients.
    dproj: Vec<Vec<T>>,
    /// Outputs and output gradients (`rows x h`).
    out: Vec<T>,
    g: Vec<T>,
    /// Kernel scratch.
    k: Vec<T>,
}

fn ensure<T: Real>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::ZERO);
    }
}

/// The chunk's inputs (normalised when the model has statistics) and projections; returns the
/// inputs the GEMMs read.
fn project<'s, T: Real>(
    pm: &PassModel<'_, T>,
    xs: &'s [&[T]],
    rows: std::ops::Range<usize>,
    s: &'s mut Scratch<T>,
) -> Vec<&'s [T]> {
    let l = pm.layout;
    let nr = rows.len();
    let nm = l.dims.len();
    s.proj.resize_with(nm, Vec::new);
    if let Some(stats) = pm.stats {
        s.x.resize_with(nm, Vec::new);
        for m in 0..nm {
            let d = l.dims[m];
            ensure(&mut s.x[m], nr * d);
            stats[m].apply(&xs[m][rows.start * d..rows.end * d], &mut s.x[m][..nr * d]);
        }
    }
    let inputs: Vec<&[T]> = (0..nm)
        .map(|m| {
            let d = l.dims[m];
            match pm.stats {
                Some(_) => &s.x[m][..nr * d],
                None => &xs[m][rows.start * d..rows.end * d],
            }
        })
        .collect();
    for m in 0..nm {
        let (d, c) = (l.dims[m], l.cols[m]);
        ensure(&mut s.proj[m], nr * c);
        matmul(
            MatMut::from_row_major_slice_mut(&mut s.proj[m][..nr * c], nr, c),
            Accum::Replace,
            MatRef::from_row_major_slice(inputs[m], nr, d),
            MatRef::from_row_major_slice(&pm.params[l.v_range(m)], d, c),
            T::ONE,
            Par::Seq,
        );
    }
    inputs
}

/// Outputs of the chunk from its projections into `out` (`rows x h`): bias, then the
/// unimodal blocks, then the interaction blocks, in block order.
fn combine<T: Real>(arch: Arch, pm: &PassModel<'_, T>, nr: usize, s: &mut Scratch<T>) {
    let l = pm.layout;
    let h = l.h;
    ensure(&mut s.out, nr * h);
    ensure(&mut s.k, l.rank * h);
    let bias = &pm.params[l.bias_start..l.bias_start + h];
    let out = &mut s.out[..nr * h];
    for row in out.chunks_exact_mut(h) {
        row.copy_from_slice(bias);
    }
    for (b, block) in l.blocks.iter().enumerate() {
        if block.is_interaction() {
            let parts: Vec<CpPart<'_, T>> = block
                .members
                .iter()
                .zip(&l.col_offset[b])
                .map(|(&m, &off)| CpPart {
                    proj: &s.proj[m][..nr * l.cols[m]],
                    stride: l.cols[m],
                    offset: off,
                })
                .collect();
            let w = &pm.params[l.w_range(b).expect("interaction block")];
            kernels::cp_block_forward_on(arch, &parts, nr, l.rank, h, w, out, &mut s.k);
        } else {
            let m = block.members[0];
            let (c, off) = (l.cols[m], l.col_offset[b][0]);
            for (o, p) in out.chunks_exact_mut(h).zip(s.proj[m].chunks_exact(c)) {
                for (ov, &pv) in o.iter_mut().zip(&p[off..off + h]) {
                    *ov += pv;
                }
            }
        }
    }
}

/// Outputs of `n` rows into `out` (`n x h`).
pub(crate) fn forward<T: Real>(
    arch: Arch,
    pm: &PassModel<'_, T>,
    xs: &[&[T]],
    n: usize,
    out: &mut [T],
) {
    let h = pm.layout.h;
    let task = |(c, o): (usize, &mut [T]), s: &mut Scratch<T>| {
        let rows = c * CHUNK_ROWS..c * CHUNK_ROWS + o.len() / h;
        let nr = rows.len();
        project(pm, xs, rows, s);
        combine(arch, pm, nr, s);
        o.copy_from_slice(&s.out[..nr * h]);
    };
    let out = &mut out[..n * h];
    if n <= CHUNK_ROWS {
        task((0, out), &mut Scratch::default());
    } else {
        out.par_chunks_mut(CHUNK_ROWS * h)
            .enumerate()
            .for_each_init(Scratch::default, |s, item| task(item, s));
    }
}

/// The loss terms of a chunk's outputs (summed in f64) and their gradients into `s.g`.
fn loss_chunk<T: Real>(
    loss: Loss,
    targets: Targets<'_, T>,
    rows: std::ops::Range<usize>,
    h: usize,
    n_total: usize,
    s: &mut Scratch<T>,
) -> f64 {
    let nr = rows.len();
    ensure(&mut s.g, nr * h);
    let (out, g) = (&s.out[..nr * h], &mut s.g[..nr * h]);
    match (loss, targets) {
        (Loss::CrossEntropy, Targets::Labels(labels)) => {
            let scale = 1.0 / n_total as f64;
            let mut sum = 0.0;
            for ((y, gr), &c) in out
                .chunks_exact(h)
                .zip(g.chunks_exact_mut(h))
                .zip(&labels[rows])
            {
                sum += softmax_row_loss(y, c, Some((gr, scale)));
            }
            sum
        }
        (_, Targets::Values(t)) => {
            let scale = loss.grad_scale::<T>(n_total * h);
            loss.block(out, &t[rows.start * h..rows.end * h], scale, g)
        }
        // The front end pairs losses and targets; a mismatch yields no gradient.
        _ => f64::NAN,
    }
}

/// The summed loss terms over `n` rows and the gradients of the mean loss into `grads` (flat
/// layout, overwritten).
pub(crate) fn loss_and_gradients<T: Real>(
    arch: Arch,
    pm: &PassModel<'_, T>,
    xs: &[&[T]],
    n: usize,
    loss: Loss,
    targets: Targets<'_, T>,
    grads: &mut [T],
) -> f64 {
    let l = pm.layout;
    let chunks = n.div_ceil(CHUNK_ROWS);
    let task = |c: usize, s: &mut Scratch<T>, part: &mut [T]| -> f64 {
        let rows = c * CHUNK_ROWS..((c + 1) * CHUNK_ROWS).min(n);
        let nr = rows.len();
        let inputs = project(pm, xs, rows.clone(), s);
        // `inputs` borrows the scratch's normalised copies; keep them aside while the rest of
        // the scratch is used.
        let inputs: Vec<Vec<T>> = if pm.stats.is_some() {
            inputs.iter().map(|x| x.to_vec()).collect()
        } else {
            Vec::new()
        };
        combine(arch, pm, nr, s);
        let value = loss_chunk(loss, targets, rows.clone(), l.h, n, s);
        backward_chunk(arch, pm, xs, &inputs, rows, s, part);
        value
    };
    if chunks <= 1 {
        let mut s = Scratch::default();
        return task(0, &mut s, grads);
    }
    let parts: Vec<(f64, Vec<T>)> = (0..chunks)
        .into_par_iter()
        .map_init(Scratch::default, |s, c| {
            let mut part = vec![T::ZERO; l.len];
            let v = task(c, s, &mut part);
            (v, part)
        })
        .collect();
    let mut total = 0.0;
    grads.iter_mut().for_each(|g| *g = T::ZERO);
    for (v, part) in &parts {
        total += v;
        for (g, &p) in grads.iter_mut().zip(part) {
            *g += p;
        }
    }
    total
}

/// The chunk's parameter gradients into `part` (overwritten) from `s.g`.
fn backward_chunk<T: Real>(
    arch: Arch,
    pm: &PassModel<'_, T>,
    xs: &[&[T]],
    normalised: &[Vec<T>],
    rows: std::ops::Range<usize>,
    s: &mut Scratch<T>,
    part: &mut [T],
) {
    let l = pm.layout;
    let (nr, h, nm) = (rows.len(), l.h, l.dims.len());
    s.dproj.resize_with(nm, Vec::new);
    for m in 0..nm {
        ensure(&mut s.dproj[m], nr * l.cols[m]);
    }
    ensure(&mut s.k, (nm + 1) * l.rank * h);
    let g = &s.g[..nr * h];
    for w in l.w_start.iter().flatten() {
        part[*w..*w + l.rank].iter_mut().for_each(|v| *v = T::ZERO);
    }
    for (b, block) in l.blocks.iter().enumerate() {
        if block.is_interaction() {
            let parts: Vec<CpPart<'_, T>> = block
                .members
                .iter()
                .zip(&l.col_offset[b])
                .map(|(&m, &off)| CpPart {
                    proj: &s.proj[m][..nr * l.cols[m]],
                    stride: l.cols[m],
                    offset: off,
                })
                .collect();
            // Members are distinct modalities: take their gradient buffers apart.
            let mut taken: Vec<(usize, Vec<T>)> = block
                .members
                .iter()
                .map(|&m| (m, std::mem::take(&mut s.dproj[m])))
                .collect();
            {
                let mut grads: Vec<CpPartMut<'_, T>> = taken
                    .iter_mut()
                    .zip(&l.col_offset[b])
                    .map(|((m, buf), &off)| CpPartMut {
                        grad: &mut buf[..nr * l.cols[*m]],
                        stride: l.cols[*m],
                        offset: off,
                    })
                    .collect();
                let wr = l.w_range(b).expect("interaction block");
                let w = &pm.params[wr.clone()];
                kernels::cp_block_backward_on(
                    arch,
                    &parts,
                    &mut grads,
                    nr,
                    l.rank,
                    h,
                    w,
                    g,
                    &mut part[wr],
                    &mut s.k,
                );
            }
            for (m, buf) in taken {
                s.dproj[m] = buf;
            }
        } else {
            let m = block.members[0];
            let (c, off) = (l.cols[m], l.col_offset[b][0]);
            for (d, gr) in s.dproj[m]
                .chunks_exact_mut(c)
                .zip(g.chunks_exact(h))
                .take(nr)
            {
                d[off..off + h].copy_from_slice(gr);
            }
        }
    }
    // Bias: the column sums of g.
    let bias = &mut part[l.bias_start..l.bias_start + h];
    bias.iter_mut().for_each(|v| *v = T::ZERO);
    for gr in g.chunks_exact(h) {
        for (b, &v) in bias.iter_mut().zip(gr) {
            *b += v;
        }
    }
    // dV_m = X_m^T dP_m.
    for m in 0..nm {
        let (d, c) = (l.dims[m], l.cols[m]);
        let x = if normalised.is_empty() {
            &xs[m][rows.start * d..rows.end * d]
        } else {
            &normalised[m][..nr * d]
        };
        matmul(
            MatMut::from_row_major_slice_mut(&mut part[l.v_range(m)], d, c),
            Accum::Replace,
            MatRef::from_row_major_slice(x, nr, d).transpose(),
            MatRef::from_row_major_slice(&s.dproj[m][..nr * c], nr, c),
            T::ONE,
            Par::Seq,
        );
    }
}
