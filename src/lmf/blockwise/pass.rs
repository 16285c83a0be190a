//! The forward and backward passes over a batch: chunks of `CHUNK_ROWS` rows in parallel;
//! per chunk and modality one GEMM gives the projections of every block containing the
//! modality (`X_m V_m`, see `layout.rs`), the SIMD block passes of `mmfuse-kernels`
//! (`cp_block_forward` / `cp_block_backward`) combine them while they are in cache, and one
//! more GEMM per modality gives the chunk's weight gradients (`X_m^T dP_m`). Chunk results are
//! summed in chunk order, so results are bitwise the same for any number of threads.

use super::layout::Layout;
use super::stats::ModalityStats;
use crate::lmf::block::{ensure_bufs, Cached};
use crate::lmf::loss::{softmax_row_loss, Loss};
use crate::scalar::Real;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use mmfuse_kernels::{self as kernels, Arch, CpPart, CpPartMut};
use rayon::prelude::*;

/// Rows per chunk: fixed (never derived from the thread count, so results do not depend on
/// it). 256 rows keep a chunk's inputs and projections in L2 (256 x 492 f32 inputs: 500 KB)
/// and make each GEMM large enough that faer's packing and call overhead stay small.
pub(crate) fn chunk_rows(_n: usize) -> usize {
    CHUNK_ROWS
}

const CHUNK_ROWS: usize = 256;

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

impl<T> crate::lmf::block::Bytes for Scratch<T> {
    fn bytes(&self) -> usize {
        let vecs = |v: &Vec<Vec<T>>| v.iter().map(|b| b.capacity()).sum::<usize>();
        (vecs(&self.x)
            + vecs(&self.proj)
            + vecs(&self.dproj)
            + self.out.capacity()
            + self.g.capacity()
            + self.k.capacity())
            * std::mem::size_of::<T>()
    }
}

fn ensure<T: Real>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::ZERO);
    }
}

/// The chunk's inputs (normalised into the scratch when the model has statistics) and
/// projections.
fn project<T: Real>(
    arch: Arch,
    pm: &PassModel<'_, T>,
    xs: &[&[T]],
    rows: std::ops::Range<usize>,
    s: &mut Scratch<T>,
) {
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
    for m in 0..nm {
        let (d, c) = (l.dims[m], l.cols[m]);
        if c == 0 {
            continue;
        }
        ensure(&mut s.proj[m], nr * c);
        let x = chunk_input(pm, xs, &s.x, m, &rows);
        let v = &pm.params[l.v_range(m)];
        if use_skinny(c) {
            kernels::skinny_matmul_on(arch, x, d, v, c, &mut s.proj[m][..nr * c]);
        } else {
            matmul(
                MatMut::from_row_major_slice_mut(&mut s.proj[m][..nr * c], nr, c),
                Accum::Replace,
                MatRef::from_row_major_slice(x, nr, d),
                MatRef::from_row_major_slice(v, d, c),
                T::ONE,
                Par::Seq,
            );
        }
    }
}

/// The rows `rows` of modality `m` as the GEMMs read them: normalised in `x` (models with
/// statistics) or the inputs themselves.
fn chunk_input<'a, T: Real>(
    pm: &PassModel<'_, T>,
    xs: &'a [&'a [T]],
    x: &'a [Vec<T>],
    m: usize,
    rows: &std::ops::Range<usize>,
) -> &'a [T] {
    let d = pm.layout.dims[m];
    match pm.stats {
        Some(_) => &x[m][..rows.len() * d],
        None => &xs[m][rows.start * d..rows.end * d],
    }
}

/// Outputs of the chunk into `out` (`rows x h`): bias, then the unimodal blocks (row dot
/// products with `W_m^T`), then the interaction blocks from their projections, in block order.
fn combine<T: Real>(
    arch: Arch,
    pm: &PassModel<'_, T>,
    xs: &[&[T]],
    rows: &std::ops::Range<usize>,
    s: &mut Scratch<T>,
) {
    let l = pm.layout;
    let h = l.h;
    let nr = rows.len();
    ensure(&mut s.out, nr * h);
    // cp_block_forward's scratch: 2 r h values.
    ensure(&mut s.k, 2 * l.rank * h);
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
            let x = chunk_input(pm, xs, &s.x, m, rows);
            let wt = &pm.params[l.u_range(m)];
            kernels::rows_dot_on(arch, x, l.dims[m], wt, h, out, true);
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
    let chunk = chunk_rows(n);
    let task = |(c, o): (usize, &mut [T]), s: &mut Scratch<T>| {
        let rows = c * chunk..c * chunk + o.len() / h;
        let nr = rows.len();
        project(arch, pm, xs, rows.clone(), s);
        combine(arch, pm, xs, &rows, s);
        o.copy_from_slice(&s.out[..nr * h]);
    };
    let out = &mut out[..n * h];
    if n <= chunk {
        task((0, out), &mut Cached::<Scratch<T>>::take());
    } else {
        out.par_chunks_mut(chunk * h)
            .enumerate()
            .for_each_init(Cached::<Scratch<T>>::take, |s, item| task(item, s));
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

/// Partial gradient vectors a batch's chunks accumulate into: chunk `c` of `chunks` goes to
/// lane `c * LANES / chunks` (consecutive chunks share a lane), each lane adds its chunks in
/// order, and the lanes are summed in order. A fixed number, so that the summation order (and
/// the result) never depends on the number of threads; 8 lanes keep 2 to 8 threads busy.
const LANES: usize = 8;

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
    let chunk = chunk_rows(n);
    let chunks = n.div_ceil(chunk);
    let lanes = chunks.clamp(1, LANES);
    // Lane `k` runs chunks first(k)..first(k + 1).
    let first = |k: usize| (k * chunks).div_ceil(lanes);
    let lane = |k: usize, s: &mut Scratch<T>, part: &mut [T]| -> f64 {
        let mut value = 0.0;
        for c in first(k)..first(k + 1) {
            let rows = c * chunk..((c + 1) * chunk).min(n);
            project(arch, pm, xs, rows.clone(), s);
            combine(arch, pm, xs, &rows, s);
            value += loss_chunk(loss, targets, rows.clone(), l.h, n, s);
            backward_chunk(arch, pm, xs, rows, s, part, c > first(k));
        }
        value
    };
    if lanes == 1 {
        return lane(0, &mut Cached::<Scratch<T>>::take(), grads);
    }
    // Lane buffers come from the thread's cache (a training run makes one call per batch).
    let mut parts = Cached::<Vec<Vec<T>>>::take();
    ensure_bufs(&mut parts, lanes, l.len);
    let values: Vec<f64> = parts[..lanes]
        .par_iter_mut()
        .enumerate()
        .map_init(Cached::<Scratch<T>>::take, |s, (k, part)| {
            lane(k, s, &mut part[..l.len])
        })
        .collect();
    grads.copy_from_slice(&parts[0][..l.len]);
    for part in &parts[1..lanes] {
        for (g, &p) in grads.iter_mut().zip(part) {
            *g += p;
        }
    }
    values.iter().sum()
}

/// The chunk's parameter gradients from `s.g` into `part`: overwritten, or added to it when
/// `accumulate`.
fn backward_chunk<T: Real>(
    arch: Arch,
    pm: &PassModel<'_, T>,
    xs: &[&[T]],
    rows: std::ops::Range<usize>,
    s: &mut Scratch<T>,
    part: &mut [T],
    accumulate: bool,
) {
    let l = pm.layout;
    let (nr, h, nm) = (rows.len(), l.h, l.dims.len());
    s.dproj.resize_with(nm, Vec::new);
    for m in 0..nm {
        ensure(&mut s.dproj[m], nr * l.cols[m]);
    }
    // cp_block_backward's scratch: 3 r h values.
    ensure(&mut s.k, 3 * l.rank * h);
    let g = &s.g[..nr * h];
    if !accumulate {
        for w in l.w_start.iter().flatten() {
            part[*w..*w + l.rank].iter_mut().for_each(|v| *v = T::ZERO);
        }
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
            // dW_m^T (h x d) (+)= g^T X_m: a skinny product with the roles of its operands
            // swapped (g is nr x h, X_m is nr x d).
            let m = block.members[0];
            let x = chunk_input(pm, xs, &s.x, m, &rows);
            let d = l.dims[m];
            kernels::skinny_matmul_tn_on(arch, g, h, x, d, &mut part[l.u_range(m)], accumulate);
        }
    }
    // Bias: the column sums of g.
    let bias = &mut part[l.bias_start..l.bias_start + h];
    if !accumulate {
        bias.iter_mut().for_each(|v| *v = T::ZERO);
    }
    for gr in g.chunks_exact(h) {
        for (b, &v) in bias.iter_mut().zip(gr) {
            *b += v;
        }
    }
    // dV_m = X_m^T dP_m.
    for m in 0..nm {
        let (d, c) = (l.dims[m], l.cols[m]);
        if c == 0 {
            continue;
        }
        let x = chunk_input(pm, xs, &s.x, m, &rows);
        if use_skinny(c) {
            kernels::skinny_matmul_tn_on(
                arch,
                x,
                d,
                &s.dproj[m][..nr * c],
                c,
                &mut part[l.v_range(m)],
                accumulate,
            );
            continue;
        }
        matmul(
            MatMut::from_row_major_slice_mut(&mut part[l.v_range(m)], d, c),
            if accumulate {
                Accum::Add
            } else {
                Accum::Replace
            },
            MatRef::from_row_major_slice(x, nr, d).transpose(),
            MatRef::from_row_major_slice(&s.dproj[m][..nr * c], nr, c),
            T::ONE,
            Par::Seq,
        );
    }
}

/// Whether the interaction projections of a modality with `c` columns use the skinny product
/// kernels (sums in registers, no packing) rather than faer's GEMM: up to 64 columns (4
/// AVX-512 registers of f32). Measured at the benchmark shape (c = 16, 2 threads, AVX-512):
/// batch 256 step 0.275 ms against 0.30 ms with faer, batch 4096 equal within noise.
fn use_skinny(c: usize) -> bool {
    c <= 64
}
