//! SMO on the combined kernel K_beta = sum_b beta_b K_b with rows computed from the data on
//! demand, an LRU row cache and libsvm's shrinking (docs/design.md section 10).
//!
//! Within one fixed-beta solve the solver only needs rows of K_beta: each row is computed once
//! per cache residency as one small GEMM per modality over the active set, normalised and
//! combined, and stored in the cache (f32 by default). It keeps F = K_beta a on the active set
//! exactly; variables that libsvm's rule says will stay at a bound are first frozen (never
//! selected, still updated) and, once enough are frozen, dropped from the active set (their F
//! goes stale, the cached rows are cut to the new active set). Before stopping, and once when
//! the violation first falls below 10 tol (libsvm's unshrink), F of the dropped variables is
//! reconstructed exactly from the support vectors by a tiled kernel product, and the solve
//! goes on over all variables if they violate the tolerance.

use super::cache::{CacheStats, RowCache};
use super::pass::block_products;
use super::source::{DataSource, TileScratch};
use crate::error::{Error, Result};
use crate::gram::PreparedData;
use crate::mkl::smo::{set_penalties, two_variable_step, SmoRun};
use crate::scalar::Real;
use mmfuse_kernels::{smo_axpy2_on, smo_second_choice_on, smo_violators_on};
use std::sync::atomic::{AtomicBool, Ordering};

/// Counters of one or more solves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SolverStats {
    /// The row cache's counters.
    pub cache: CacheStats,
    /// Times the active set was cut.
    pub shrinks: u64,
    /// Times F of dropped variables was reconstructed.
    pub reconstructions: u64,
    /// The smallest active set seen.
    pub min_active: usize,
}

/// The active set with its compacted per-variable arrays.
struct Active<T: Real> {
    ids: Vec<usize>,
    y: Vec<f64>,
    f: Vec<f64>,
    alpha: Vec<f64>,
    diag: Vec<f64>,
    up: Vec<f64>,
    low: Vec<f64>,
    frozen: Vec<bool>,
    n_frozen: usize,
    /// Prepared active rows of each needed modality (the columns of every cached row).
    cols: Vec<Option<PreparedData<T>>>,
}

/// The fixed-beta solve's inputs that do not change within it.
pub(crate) struct FixedBeta<'a, T: Real> {
    pub src: &'a DataSource<T>,
    pub y: &'a [f64],
    pub beta: &'a [f64],
    pub c: f64,
    pub tol: f64,
    pub max_iter: usize,
    pub cache_bytes: usize,
    pub shrinking: bool,
    pub cancel: &'a AtomicBool,
}

impl<T: Real> FixedBeta<'_, T> {
    fn need(&self) -> Vec<bool> {
        self.src.needed_modalities(self.beta)
    }

    fn active(&self, ids: Vec<usize>, full: (&[f64], &[f64]), diag: &[f64]) -> Active<T> {
        let (f_full, alpha_full) = full;
        let y: Vec<f64> = ids.iter().map(|&t| self.y[t]).collect();
        let alpha: Vec<f64> = ids.iter().map(|&t| alpha_full[t]).collect();
        let na = ids.len();
        let (mut up, mut low) = (vec![0.0; na], vec![0.0; na]);
        for t in 0..na {
            set_penalties(t, &alpha, &y, self.c, &mut up, &mut low);
        }
        let need = self.need();
        Active {
            f: ids.iter().map(|&t| f_full[t]).collect(),
            diag: ids.iter().map(|&t| diag[t]).collect(),
            cols: self
                .src
                .modalities
                .iter()
                .zip(&need)
                .map(|(m, &n)| n.then(|| m.prep.gather(&ids)))
                .collect(),
            frozen: vec![false; na],
            n_frozen: 0,
            ids,
            y,
            alpha,
            up,
            low,
        }
    }

    /// The row of K_beta at training point `key` over the active set, into `out`.
    fn combined_row(
        &self,
        key: usize,
        act: &Active<T>,
        need: &[bool],
        scratch: &mut TileScratch<T>,
        out: &mut [T],
    ) {
        let row_prep: Vec<Option<PreparedData<T>>> = self
            .src
            .modalities
            .iter()
            .zip(need)
            .map(|(m, &n)| n.then(|| m.prep.gather(&[key])))
            .collect();
        let threads = rayon::current_num_threads().max(1);
        let col_tile = act.ids.len().div_ceil(threads).max(4096);
        self.src.modality_tiles(
            need,
            (&[key], &row_prep),
            (&act.ids, &act.cols),
            col_tile,
            scratch,
        );
        out.fill(T::ZERO);
        for (b, &bb) in self.beta.iter().enumerate() {
            if bb == 0.0 {
                continue;
            }
            self.src.block_tile(b, scratch);
            for (o, v) in out.iter_mut().zip(&scratch.block) {
                *o = T::from_f64(o.to_f64() + bb * v.to_f64());
            }
        }
    }

    /// F of the variables outside the active set, exactly, from the support vectors (all
    /// variables with alpha > 0): F_t = sum_b beta_b K_b[t, SV] a_SV.
    fn reconstruct(&self, inactive: &[usize], alpha: &[f64], f: &mut [f64]) -> Result<()> {
        if inactive.is_empty() {
            return Ok(());
        }
        let sv: Vec<usize> = (0..alpha.len()).filter(|&t| alpha[t] > 0.0).collect();
        let coef: Vec<f64> = sv.iter().map(|&t| alpha[t] * self.y[t]).collect();
        let want: Vec<bool> = self.beta.iter().map(|&b| b != 0.0).collect();
        let u = block_products(self.src, inactive, &sv, &coef, &want, self.cancel)?;
        for (r, &t) in inactive.iter().enumerate() {
            f[t] = self
                .beta
                .iter()
                .zip(&u)
                .filter(|(&b, _)| b != 0.0)
                .map(|(&b, ub)| b * ub[r])
                .sum();
        }
        Ok(())
    }

    /// Runs SMO from `alpha` with `f` = K_beta (y alpha) exact on entry; on return both are
    /// exact for every variable.
    pub fn solve(
        &self,
        alpha: &mut [f64],
        f: &mut [f64],
        stats: &mut SolverStats,
    ) -> Result<SmoRun> {
        let n = self.y.len();
        let arch = mmfuse_kernels::arch();
        let need = self.need();
        let diag = self.src.combined_diag(self.beta);
        let row_bytes = n * std::mem::size_of::<T>();
        if self.cache_bytes < 2 * row_bytes {
            return Err(Error::param(
                "cache",
                format!(
                    "a row cache of {} bytes holds less than two kernel rows of {n} points \
                     ({row_bytes} bytes each, {} in all); SMO needs two rows per step",
                    self.cache_bytes,
                    2 * row_bytes
                ),
            ));
        }
        let mut cache = RowCache::<T>::new(n, self.cache_bytes);
        let mut scratch = TileScratch::new(self.src.modalities.len());
        let mut act = self.active((0..n).collect(), (f, alpha), &diag);
        let mut is_active = vec![true; n];
        let (mut row_i, mut row_j) = (Vec::<f64>::new(), Vec::<f64>::new());
        let shrink_every = n.clamp(1, 1000);
        let mut counter = shrink_every;
        let mut unshrunk = false;
        let mut iterations = 0usize;
        stats.min_active = if stats.min_active == 0 {
            n
        } else {
            stats.min_active.min(n)
        };
        let violators = |a: &Active<T>| smo_violators_on(arch, &a.f, &a.y, 1.0, &a.up, &a.low);
        let mut viol = violators(&act);
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled("the fit was stopped".into()));
            }
            if self.shrinking {
                counter -= 1;
                if counter == 0 {
                    counter = shrink_every;
                    let (gmax1, gmax2) = (viol.up_max, -viol.low_min);
                    if !unshrunk && gmax1 + gmax2 <= 10.0 * self.tol {
                        unshrunk = true;
                        if act.ids.len() < n || act.n_frozen > 0 {
                            self.grow_to_all(&mut act, &mut is_active, alpha, f, &diag)?;
                            cache.clear();
                            stats.reconstructions += 1;
                            viol = violators(&act);
                        }
                    }
                    let (gmax1, gmax2) = (viol.up_max, -viol.low_min);
                    self.freeze(&mut act, gmax1, gmax2);
                    if act.n_frozen >= (act.ids.len() / 8).max(64) {
                        self.compact(&mut act, &mut is_active, (alpha, f), &diag, &mut cache);
                        stats.shrinks += 1;
                        stats.min_active = stats.min_active.min(act.ids.len());
                    }
                    viol = violators(&act);
                }
            }
            if viol.up_arg == usize::MAX || viol.up_max - viol.low_min <= self.tol {
                if act.ids.len() < n || act.n_frozen > 0 {
                    self.grow_to_all(&mut act, &mut is_active, alpha, f, &diag)?;
                    cache.clear();
                    stats.reconstructions += 1;
                    viol = violators(&act);
                    counter = 1;
                    if viol.up_arg == usize::MAX || viol.up_max - viol.low_min <= self.tol {
                        break;
                    }
                    continue;
                }
                break;
            }
            if iterations >= self.max_iter {
                break;
            }
            let na = act.ids.len();
            let i = viol.up_arg;
            fetch_row(self, &mut cache, &act, i, &need, &mut scratch, &mut row_i);
            let choice = smo_second_choice_on(
                arch,
                &row_i,
                1.0,
                act.diag[i],
                &act.diag,
                &act.f,
                &act.y,
                1.0,
                &act.low,
                viol.up_max,
            );
            if choice.arg == usize::MAX {
                break;
            }
            let j = choice.arg;
            let k_ij = row_i[j];
            let (gi, gj) = (act.y[i] * act.f[i] - 1.0, act.y[j] * act.f[j] - 1.0);
            iterations += 1;
            let (old_ai, old_aj) = (act.alpha[i], act.alpha[j]);
            two_variable_step(
                &mut act.alpha,
                &act.y,
                &act.diag,
                k_ij,
                (gi, gj),
                self.c,
                i,
                j,
            );
            let (dai, daj) = (
                (act.alpha[i] - old_ai) * act.y[i],
                (act.alpha[j] - old_aj) * act.y[j],
            );
            set_penalties(i, &act.alpha, &act.y, self.c, &mut act.up, &mut act.low);
            set_penalties(j, &act.alpha, &act.y, self.c, &mut act.up, &mut act.low);
            fetch_row(self, &mut cache, &act, j, &need, &mut scratch, &mut row_j);
            debug_assert_eq!(row_j.len(), na);
            smo_axpy2_on(arch, &mut act.f, &row_i, dai, &row_j, daj);
            viol = violators(&act);
        }
        self.write_back(&act, alpha, f);
        // Anything still outside the active set (a stop at max_iter): make F exact.
        let inactive: Vec<usize> = (0..n).filter(|&t| !is_active[t]).collect();
        self.reconstruct(&inactive, alpha, f)?;
        stats.cache.add(&cache.stats);
        let violation = viol.up_max - viol.low_min;
        Ok(SmoRun {
            iterations,
            violation,
            converged: violation <= self.tol,
        })
    }

    fn write_back(&self, act: &Active<T>, alpha: &mut [f64], f: &mut [f64]) {
        for (p, &t) in act.ids.iter().enumerate() {
            alpha[t] = act.alpha[p];
            f[t] = act.f[p];
        }
    }

    /// libsvm's `be_shrunk`: freezes the variables at a bound whose gradient says they stay
    /// there (with gmax1 = max over I_up of -y G, gmax2 = max over I_low of y G).
    fn freeze(&self, act: &mut Active<T>, gmax1: f64, gmax2: f64) {
        for t in 0..act.ids.len() {
            if act.frozen[t] {
                continue;
            }
            let (a, y) = (act.alpha[t], act.y[t]);
            let g = y * act.f[t] - 1.0;
            let shrink = if a >= self.c {
                if y > 0.0 {
                    -g > gmax1
                } else {
                    -g > gmax2
                }
            } else if a <= 0.0 {
                if y > 0.0 {
                    g > gmax2
                } else {
                    g > gmax1
                }
            } else {
                false
            };
            if shrink {
                act.frozen[t] = true;
                act.n_frozen += 1;
                act.up[t] = f64::NEG_INFINITY;
                act.low[t] = f64::INFINITY;
            }
        }
    }

    /// Drops the frozen variables from the active set and cuts the cached rows to it.
    fn compact(
        &self,
        act: &mut Active<T>,
        is_active: &mut [bool],
        (alpha, f): (&mut [f64], &mut [f64]),
        diag: &[f64],
        cache: &mut RowCache<T>,
    ) {
        self.write_back(act, alpha, f);
        let keep: Vec<usize> = (0..act.ids.len()).filter(|&p| !act.frozen[p]).collect();
        for (p, &t) in act.ids.iter().enumerate() {
            if act.frozen[p] {
                is_active[t] = false;
            }
        }
        let ids: Vec<usize> = keep.iter().map(|&p| act.ids[p]).collect();
        *act = self.active(ids, (f, alpha), diag);
        cache.retain_columns(&keep, |t| is_active[t]);
    }

    /// Reconstructs F of every variable outside the active set and makes all active again.
    fn grow_to_all(
        &self,
        act: &mut Active<T>,
        is_active: &mut [bool],
        alpha: &mut [f64],
        f: &mut [f64],
        diag: &[f64],
    ) -> Result<()> {
        self.write_back(act, alpha, f);
        let inactive: Vec<usize> = (0..is_active.len()).filter(|&t| !is_active[t]).collect();
        self.reconstruct(&inactive, alpha, f)?;
        is_active.fill(true);
        *act = self.active((0..self.y.len()).collect(), (f, alpha), diag);
        Ok(())
    }
}

/// Row `pos` of the active set from the cache (computed on a miss), as f64 in `out`.
fn fetch_row<T: Real>(
    fb: &FixedBeta<'_, T>,
    cache: &mut RowCache<T>,
    act: &Active<T>,
    pos: usize,
    need: &[bool],
    scratch: &mut TileScratch<T>,
    out: &mut Vec<f64>,
) {
    let na = act.ids.len();
    let key = act.ids[pos];
    let (row, _) = cache
        .get_or_fill(key, na, |buf| -> std::result::Result<(), ()> {
            fb.combined_row(key, act, need, scratch, buf);
            Ok(())
        })
        .unwrap_or((&[], false));
    out.clear();
    out.extend(row.iter().map(|v| v.to_f64()));
}
