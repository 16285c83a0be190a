//! Step 6 of the demo: `report.md` (tables and the figures embedded by relative path), the
//! SVG figures, `results.json` with every number, and the summary printed on stdout.

use super::simulate::Study;
use super::study_block::{self, BlockStudy};
use super::study_interactions::{InteractionStudy, MODALITIES, PLANTED};
use super::study_kpca::KpcaResult;
use super::study_lmf::LmfStudy;
use super::study_mfeat::{MfeatStudy, SPLIT_SEED};
use super::study_mkl::MklStudy;
use super::DemoArgs;
use crate::cli::bench::GramBenchResult;
use mmfuse::error::{Error, Result};
use mmfuse::io::write_atomic_bytes;
use mmfuse::mkl::p_label;
use serde_json::{json, Value};
use std::fmt::Write;

/// Everything the demo measured.
pub(crate) struct Outcome<'a> {
    pub args: &'a DemoArgs,
    pub study: &'a Study,
    pub mkl: &'a MklStudy,
    pub kpca: &'a [KpcaResult],
    pub interactions: &'a InteractionStudy,
    pub mfeat: Option<&'a MfeatStudy>,
    pub lmf: &'a LmfStudy,
    pub block: &'a BlockStudy,
    pub gram_bench: &'a GramBenchResult,
    pub lmf_batch: usize,
    pub lmf_samples_per_second: f64,
    pub seconds_total: f64,
}

/// The figure file of a kernel PCA plot.
fn kpca_file(k: &KpcaResult, index: usize) -> String {
    if index < 3 {
        format!("kpca_{}.svg", k.name)
    } else {
        "kpca_combined.svg".into()
    }
}

/// Whether the noise modality (the last) has a weight no larger than every other, for each
/// finite p (p = inf gives every kernel weight 1 by definition).
fn noise_lowest(o: &Outcome) -> Vec<(f64, bool)> {
    o.mkl
        .per_p
        .iter()
        .filter(|r| r.p.is_finite())
        .map(|r| {
            let last = r.beta.len() - 1;
            (r.p, r.beta[..last].iter().all(|&b| r.beta[last] <= b))
        })
        .collect()
}

/// Plain LMF's validation MSE after the last epoch.
fn plain_final(o: &Outcome) -> f64 {
    o.lmf.val_loss.last().copied().unwrap_or(f64::NAN)
}

/// The share of `block` in block order, or NaN.
fn block_share(blocks: &[String], shares: &[f64], block: &str) -> f64 {
    blocks
        .iter()
        .position(|b| b == block)
        .map_or(f64::NAN, |i| shares[i])
}

/// The name of the largest share.
fn top_block<'a>(blocks: &'a [String], shares: &[f64]) -> &'a str {
    blocks
        .iter()
        .zip(shares)
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or("", |(b, _)| b.as_str())
}

/// The block LMF part of section 4: settings, the validation losses, the relevance table and
/// chart, and the interpretation.
fn block_markdown(md: &mut String, o: &Outcome) {
    let b = o.block;
    let n_train = o.study.train.len();
    let _ = writeln!(
        md,
        "\n### Block LMF: which blocks count, on the tensor side\n"
    );
    let _ = writeln!(
        md,
        "The block low-rank fusion model (`mmfuse::lmf::blockwise`) on the same split: one \
         linear block per modality and one rank-{} CP block per pair (no constant slot), on \
         modalities centred and scaled with the training statistics, penalty lambda \
         (sum_I ||W_I||_F^q)^(2/q) with p = {} (q = 1: a group lasso over blocks), lambda = \
         1 / (C n) = {:.3e} for C = {} and n = {n_train}; Adam (lr {}), MSE, batch {}, {} \
         epochs, {:.2} s. Its relevance is the closed-form lp weight of each block's Frobenius \
         norm, as a share.\n",
        b.rank,
        p_label(study_block::P),
        b.reg,
        study_block::C,
        study_block::LR,
        study_block::BATCH,
        b.epochs,
        b.seconds
    );
    let _ = writeln!(
        md,
        "The kernel side on the same data and blocks: MKL with the squared loss (C = {}, \
         p = {}) over the centred linear kernel of each modality and their pair products, \
         every block trace-normalised. Linear kernels give it the block model's function class \
         (linear per modality, bilinear per pair), and lambda = 1 / (C n) makes the two \
         objectives the same up to a constant factor (and up to the scale of the pair blocks: \
         MKL rescales each product, the block model each modality), so the two differ in the \
         block model's rank limit and in how they are solved (a certified convex solver, duality gap {:.1e}, in \
         {:.2} s, against mini-batch Adam on a non-convex factorisation).\n",
        study_block::C,
        p_label(study_block::P),
        b.mkl_gap,
        b.mkl_seconds
    );
    let _ = writeln!(md, "| model | validation MSE |\n|---|---|");
    let _ = writeln!(md, "| mean predictor | {:.4} |", o.lmf.baseline_mse);
    let _ = writeln!(
        md,
        "| plain LMF (rank {}, raw features) | {:.4} |",
        o.args.rank,
        plain_final(o)
    );
    let _ = writeln!(
        md,
        "| block LMF (rank {}, pairs, p = {}) | {:.4} |",
        b.rank,
        p_label(study_block::P),
        b.final_val()
    );
    let _ = writeln!(
        md,
        "| MKL, centred linear kernels with pairs (p = {}) | {:.4} |\n",
        p_label(study_block::P),
        b.mkl_val_mse
    );
    let mut head = String::from("| relevance |");
    let mut rule = String::from("|---|");
    for name in &b.blocks {
        let _ = write!(head, " {name} |");
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    for (label, v) in [
        ("kernel side (MKL)", &b.mkl_relevance),
        ("block LMF", &b.relevance),
    ] {
        let cells: Vec<String> = v.iter().map(|s| format!("{s:.3}")).collect();
        let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        md,
        "\nSpearman's rank correlation of the two rows: {:.3}; largest difference: {:.3}.\n",
        b.spearman, b.max_share_gap
    );
    let _ = writeln!(
        md,
        "![Relevance per block: kernel side and block LMF](lmf_relevance.svg)\n\n(PNG: \
         [lmf_relevance.png](lmf_relevance.png).)\n"
    );
    let _ = writeln!(md, "{}", interpretation(o));
}

/// The interpretation paragraph of the block LMF step, from the numbers of this run.
fn interpretation(o: &Outcome) -> String {
    let b = o.block;
    let mut s = String::from("**Interpretation.** ");
    let (tb, tk) = (
        top_block(&b.blocks, &b.relevance),
        top_block(&b.blocks, &b.mkl_relevance),
    );
    let sh = |v: &[f64], name: &str| block_share(&b.blocks, v, name);
    if tb == tk {
        let _ = write!(
            s,
            "The two sides agree on what counts most: both give the largest share to {tb} \
             ({:.0}% on the tensor side, {:.0}% on the kernel side). ",
            100.0 * sh(&b.relevance, tb),
            100.0 * sh(&b.mkl_relevance, tb)
        );
    } else {
        let _ = write!(
            s,
            "The two sides differ on the first block: {tb} for block LMF ({:.0}%), {tk} for \
             MKL ({:.0}%). ",
            100.0 * sh(&b.relevance, tb),
            100.0 * sh(&b.mkl_relevance, tk)
        );
    }
    let _ = write!(
        s,
        "No bar differs from its counterpart by more than {:.3} (the rank correlation, {:.2}, is \
         the noisier measure here: blocks at or near zero are exactly 0 in MKL's p = 1 solution \
         and a few thousandths under Adam, and their order is noise). ",
        b.max_share_gap, b.spearman
    );
    let text: f64 = b
        .blocks
        .iter()
        .zip(&b.relevance)
        .filter(|(n, _)| n.split('*').any(|m| m == "text"))
        .map(|(_, v)| v)
        .sum();
    let _ = write!(
        s,
        "The text blocks (text, visual*text, audio*text) get {:.1}% of block LMF's relevance in \
         total: {}. ",
        100.0 * text,
        if text <= 0.1 {
            "the p = 1 penalty all but switches the noise modality off"
        } else {
            "more than a noise modality should; the penalty has not switched it off"
        }
    );
    let (bv, pv, base) = (b.final_val(), plain_final(o), o.lmf.baseline_mse);
    let _ = write!(
        s,
        "Block LMF's validation MSE, {bv:.3}, is {} the mean predictor's ({base:.3}) and {} \
         plain LMF's ({pv:.3}), and {:.3} from the kernel side's ({:.3}), which solves the same \
         convex problem without the rank limit: normalised modalities and the block penalty are \
         what plain LMF on raw features lacks. ",
        if bv < base { "below" } else { "not below" },
        if bv < 0.5 * pv {
            "far below"
        } else if bv < pv {
            "below"
        } else {
            "not below"
        },
        (bv - b.mkl_val_mse).abs(),
        b.mkl_val_mse
    );
    let (va_b, va_k) = (
        sh(&b.relevance, "visual*audio"),
        sh(&b.mkl_relevance, "visual*audio"),
    );
    if va_b < 0.05 && va_k < 0.05 {
        let _ = write!(
            s,
            "Neither side credits the planted visual[8] x audio[8] term (visual*audio: {va_b:.3} \
             and {va_k:.3}). Relevance is a block norm, and after normalisation one product \
             feature carries 1/(128 x 64) of the visual*audio block's variance, so that term \
             alone needs a block norm near 0.4 sqrt(128 x 64) = 36, against about 4 for the \
             whole visual main effect; at p = 1, C = 1 and {} training rows the fit leaves it \
             out (part of what it carries follows the label, since the sign of visual[8] x \
             audio[8] is the label, and is within reach of the label shifts of visual and \
             audio).",
            o.study.train.len()
        );
    } else {
        let _ = write!(
            s,
            "The planted visual[8] x audio[8] term gets {va_b:.3} on the tensor side and \
             {va_k:.3} on the kernel side."
        );
    }
    s
}

/// The validation MSE of every model of the LMF data, for `results.json`.
fn validation_json(o: &Outcome) -> Value {
    json!({
        "mean_predictor": o.lmf.baseline_mse,
        "plain_lmf": plain_final(o),
        "block_lmf": o.block.final_val(),
        "kernel_side": o.block.mkl_val_mse,
    })
}

/// The block LMF step, for `results.json`.
fn block_json(o: &Outcome) -> Value {
    json!({
        "spec": "pairs", "p": study_block::P, "rank": o.block.rank,
        "reg": o.block.reg, "epochs": o.block.epochs,
        "batch": study_block::BATCH, "lr": study_block::LR, "optimizer": "adam",
        "blocks": o.block.blocks, "relevance": o.block.relevance, "norms": o.block.norms,
        "train_loss": o.block.train_loss, "val_loss": o.block.val_loss,
        "final_val_loss": o.block.final_val(), "seconds": o.block.seconds,
        "below_mean_predictor": o.block.final_val() < o.lmf.baseline_mse,
        "below_plain_lmf": o.block.final_val() < plain_final(o),
        "kernel_side": {
            "kernel": "linear", "centred": true, "loss": "squared",
            "c": study_block::C, "p": study_block::P,
            "relevance": o.block.mkl_relevance, "val_mse": o.block.mkl_val_mse,
            "gap": o.block.mkl_gap, "seconds": o.block.mkl_seconds,
        },
        "agreement": {
            "spearman": o.block.spearman, "max_share_gap": o.block.max_share_gap,
        },
        "figure": "lmf_relevance.svg", "figure_png": "lmf_relevance.png",
    })
}

fn results_json(o: &Outcome) -> Value {
    let names: Vec<&str> = o.mkl.modalities.iter().map(|m| m.name).collect();
    json!({
        "n": o.args.n, "seed": o.args.seed,
        "n_train": o.study.train.len(), "n_test": o.study.test.len(),
        "modalities": o.mkl.modalities.iter().map(|m| json!({
            "name": m.name, "role": m.role, "d": m.d, "gamma": m.gamma,
            "alignment": m.alignment, "accuracy_alone": m.accuracy_alone,
        })).collect::<Vec<_>>(),
        "mkl": o.mkl.per_p.iter().map(|r| json!({
            "p": if r.p.is_finite() { json!(r.p) } else { json!("inf") },
            "beta": r.beta, "beta_shares": r.shares, "modalities": names,
            "accuracy": r.accuracy, "gap": r.gap, "converged": r.converged,
            "iterations": r.iterations, "seconds": r.seconds,
        })).collect::<Vec<_>>(),
        "noise_modality_lowest_weight": noise_lowest(o).iter().all(|(_, ok)| *ok),
        "kpca": o.kpca.iter().enumerate().map(|(i, k)| json!({
            "kernel": k.name, "eigenvalues": k.eigenvalues, "fisher": k.fisher,
            "alignment": k.alignment, "figure": kpca_file(k, i),
        })).collect::<Vec<_>>(),
        "interactions": {
            "modalities": MODALITIES.iter().map(|(n, r)| json!({"name": n, "role": r})).collect::<Vec<_>>(),
            "planted": PLANTED, "blocks": o.interactions.blocks,
            "n_train": o.interactions.n_train, "n_test": o.interactions.n_test,
            "fits": o.interactions.fits.iter().map(|f| json!({
                "p": f.p, "relevance": f.relevance, "accuracy_with_pairs": f.accuracy,
                "accuracy_unimodal": f.accuracy_unimodal, "gap": f.gap, "seconds": f.seconds,
            })).collect::<Vec<_>>(),
            "figure": "interactions.svg", "figure_png": "interactions.png",
        },
        "mfeat": o.mfeat.map(|m| json!({
            "split_seed": SPLIT_SEED, "n_train": m.n_train, "n_test": m.n_test, "c": 10.0,
            "views": m.views.iter().map(|(n, d, acc, s)| json!({"name": n, "d": d, "accuracy": acc, "seconds": s})).collect::<Vec<_>>(),
            "average_kernel_accuracy": m.average_accuracy,
            "kernel_seconds": m.kernel_seconds,
            "mkl": m.fits.iter().map(|f| json!({
                "p": f.p, "interactions": f.interactions, "accuracy": f.accuracy,
                "relevance": f.relevance.iter().map(|(b, s)| json!({"block": b, "share": s})).collect::<Vec<_>>(),
                "seconds": f.seconds,
            })).collect::<Vec<_>>(),
            "figure": "mfeat_relevance.svg", "figure_png": "mfeat_relevance.png",
        })),
        "lmf": {
            "rank": o.args.rank, "epochs": o.args.epochs, "batch": o.args.batch, "lr": o.args.lr,
            "train_loss": o.lmf.train_loss, "val_loss": o.lmf.val_loss,
            "baseline_mse": o.lmf.baseline_mse, "seconds": o.lmf.seconds,
            "train_loss_decreased": o.lmf.train_loss.last() < o.lmf.train_loss.first(),
            "figure": "lmf_loss.svg",
            "validation_mse": validation_json(o),
            "block": block_json(o),
        },
        "throughput": {
            "gram": serde_json::from_str::<Value>(&o.gram_bench.to_json()).unwrap_or_default(),
            "lmf_forward": {
                "batch": o.lmf_batch, "rank": o.args.rank, "out_dim": 1,
                "dims": o.mkl.modalities.iter().map(|m| m.d).collect::<Vec<_>>(),
                "samples_per_second": o.lmf_samples_per_second,
            },
        },
        "seconds_total": o.seconds_total,
    })
}

fn markdown(o: &Outcome) -> String {
    let a = o.args;
    let mut md = String::new();
    let names: Vec<&str> = o.mkl.modalities.iter().map(|m| m.name).collect();
    let _ = writeln!(md, "# mmfuse demo report\n");
    let _ =
        writeln!(
        md,
        "{} simulated samples (seed {}), {} for training and {} held out. Three modalities with \
         the signal spread unevenly: visual strong, audio weak, text pure noise, and an \
         interaction (the sign of visual[8] x audio[8] is the label) visible only when visual \
         and audio are combined. Reproduce with `mmfuse demo --n {} --seed {} --p {} --rank {} \
         --epochs {}`.\n",
        a.n, a.seed, o.study.train.len(), o.study.test.len(), a.n, a.seed, a.p, a.rank, a.epochs
    );
    let _ = writeln!(md, "## 1. One kernel per modality\n");
    let _ = writeln!(md, "rbf kernels, gamma by the median heuristic on the training split, trace-normalised. Alignment is the kernel-target alignment on the training split; accuracy is that of an SVM (C = 1) on the modality alone, on the held-out split.\n");
    let _ = writeln!(md, "| modality | role | d | gamma | alignment | held-out accuracy alone |\n|---|---|---|---|---|---|");
    for m in &o.mkl.modalities {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.3e} | {:+.4} | {:.3} |",
            m.name, m.role, m.d, m.gamma, m.alignment, m.accuracy_alone
        );
    }
    let _ = writeln!(md, "\n## 2. p-norm multiple kernel learning\n");
    let _ = writeln!(md, "SVM (hinge loss, C = 1) with one weight per modality kernel under ||beta||_p <= 1, stopped at a relative duality gap of 1e-4. Shares are beta / sum(beta).\n");
    let mut head = String::from("| p |");
    let mut rule = String::from("|---|");
    for n in &names {
        let _ = write!(head, " beta {n} |");
        rule.push_str("---|");
    }
    for n in &names {
        let _ = write!(head, " share {n} |");
        rule.push_str("---|");
    }
    head.push_str(" held-out accuracy | gap | converged | outer iterations | seconds |");
    rule.push_str("---|---|---|---|---|");
    let _ = writeln!(md, "{head}\n{rule}");
    for r in &o.mkl.per_p {
        let mut row = format!("| {} |", p_label(r.p));
        for b in &r.beta {
            let _ = write!(row, " {b:.4} |");
        }
        for s in &r.shares {
            let _ = write!(row, " {s:.3} |");
        }
        let _ = write!(
            row,
            " {:.3} | {:.1e} | {} | {} | {:.3} |",
            r.accuracy, r.gap, r.converged, r.iterations, r.seconds
        );
        let _ = writeln!(md, "{row}");
    }
    let checks: Vec<String> = noise_lowest(o)
        .iter()
        .map(|(p, ok)| format!("p = {}: {}", p_label(*p), if *ok { "yes" } else { "NO" }))
        .collect();
    let _ = writeln!(
        md,
        "\nThe noise modality (text) gets the smallest weight: {}.\n",
        checks.join(", ")
    );
    let _ = writeln!(md, "## 3. Kernel PCA\n");
    let _ = writeln!(md, "Top two components of each centred training kernel (faer's self-adjoint eigendecomposition), coloured by class. Fisher's criterion is computed on the two components (larger: better separated); alignment is the kernel-target alignment.\n");
    let _ = writeln!(md, "| kernel | eigenvalue 1 | eigenvalue 2 | Fisher criterion | alignment |\n|---|---|---|---|---|");
    for k in o.kpca {
        let _ = writeln!(
            md,
            "| {} | {:.4} | {:.4} | {:.4} | {:+.4} |",
            k.name, k.eigenvalues[0], k.eigenvalues[1], k.fisher, k.alignment
        );
    }
    let _ = writeln!(md);
    for (i, k) in o.kpca.iter().enumerate() {
        let _ = writeln!(
            md,
            "![kernel PCA of the {} kernel]({})",
            k.name,
            kpca_file(k, i)
        );
    }
    let _ = writeln!(md, "\n## 4. Low-rank multimodal fusion\n");
    let _ = writeln!(
        md,
        "Regression of the target from all three modalities: rank {}, output 1, Adam (lr {}), MSE, batch {}, {} epochs, trained on the training split; validation on the held-out split. For scale: predicting the mean gives a validation MSE of {:.4}.\n",
        a.rank, a.lr, a.batch, a.epochs, o.lmf.baseline_mse
    );
    let final_val = o.lmf.val_loss.last().copied().unwrap_or(f64::NAN);
    if final_val > o.lmf.baseline_mse {
        let params: usize = o
            .mkl
            .modalities
            .iter()
            .map(|m| (m.d + 1) * a.rank)
            .sum::<usize>()
            + a.rank
            + 1;
        let _ = writeln!(
            md,
            "The training loss falls, but the final validation MSE ({final_val:.4}) is still above the mean predictor's: with {params} parameters, {} training samples and 300 pure-noise text features, LMF on raw features overfits here. The step shows that training works; it is not a claim that LMF beats the kernel methods on this data.\n",
            o.study.train.len()
        );
    }
    let _ = writeln!(md, "![LMF loss per epoch](lmf_loss.svg)\n");
    let _ = writeln!(md, "| epoch | train MSE | validation MSE |\n|---|---|---|");
    for (e, (t, v)) in o.lmf.train_loss.iter().zip(&o.lmf.val_loss).enumerate() {
        let _ = writeln!(md, "| {} | {t:.5} | {v:.5} |", e + 1);
    }
    block_markdown(&mut md, o);
    let it = o.interactions;
    let _ = writeln!(md, "\n## Which combinations of modalities matter\n");
    let _ = writeln!(
        md,
        "A second simulation ({} training and {} held-out samples, same seed) with planted \
         structure: four modalities of 6 standard normal features, the label \
         sign(visual[0] + 1.5 audio[0] x text[0]): visual has a main effect, audio and text \
         matter only together, noise not at all. One rbf kernel per modality (gamma = 1/6), each \
         centred with the training statistics; pair blocks are their elementwise products; every \
         block is trace-normalised; MKL (C = 1) weighs the blocks. Relevance is a block's share \
         of the weights; the planted blocks are {}.\n",
        it.n_train,
        it.n_test,
        PLANTED.join(" and ")
    );
    let mut head = String::from("| p |");
    let mut rule = String::from("|---|");
    for b in &it.blocks {
        let _ = write!(head, " {b} |");
        rule.push_str("---|");
    }
    let _ = writeln!(
        md,
        "{head} accuracy with pairs | accuracy unimodal only |\n{rule}---|---|"
    );
    for f in &it.fits {
        let mut row = format!("| {} |", p_label(f.p));
        for r in &f.relevance {
            let _ = write!(row, " {r:.3} |");
        }
        let _ = writeln!(md, "{row} {:.3} | {:.3} |", f.accuracy, f.accuracy_unimodal);
    }
    let _ = writeln!(
        md,
        "\n![Relevance per block](interactions.svg)\n\n(PNG: [interactions.png](interactions.png).)"
    );
    if let Some(m) = o.mfeat {
        let _ = writeln!(md, "\n## Real data: Multiple Features\n");
        let _ = writeln!(
            md,
            "The UCI Multiple Features digits shipped with mmfuse (`mmfuse::datasets::mfeat`): \
             2,000 samples, 10 classes, six views. Stratified 70/30 split (seed {SPLIT_SEED}: \
             {} training, {} held out), each view standardised with the training statistics, \
             rbf with gamma = 1/d, C = 10, one-vs-rest. MKL (relative gap 1e-3) weighs centred, \
             trace-normalised blocks; relevance is the mean weight share over the 10 classes. Kernels built in \
             {:.2} s.\n",
            m.n_train, m.n_test, m.kernel_seconds
        );
        let _ = writeln!(md, "| model | held-out accuracy | seconds |\n|---|---|---|");
        for (name, d, acc, s) in &m.views {
            let _ = writeln!(md, "| SVM on {name} ({d} features) | {acc:.3} | {s:.2} |");
        }
        let _ = writeln!(
            md,
            "| SVM on the average of the six kernels | {:.3} | |",
            m.average_accuracy
        );
        for f in &m.fits {
            let _ = writeln!(
                md,
                "| MKL p = {}{} | {:.3} | {:.2} |",
                p_label(f.p),
                if f.interactions {
                    ", with pair interactions"
                } else {
                    ""
                },
                f.accuracy,
                f.seconds
            );
        }
        let _ = writeln!(md, "\nRelevance per view (MKL without interactions):\n");
        let _ = writeln!(
            md,
            "| p | {} |\n|---|{}",
            m.views
                .iter()
                .map(|v| v.0.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(m.views.len())
        );
        for f in m.fits.iter().filter(|f| !f.interactions) {
            let cells: Vec<String> = f.relevance.iter().map(|(_, s)| format!("{s:.3}")).collect();
            let _ = writeln!(md, "| {} | {} |", p_label(f.p), cells.join(" | "));
        }
        for f in m.fits.iter().filter(|f| f.interactions) {
            let mut top: Vec<&(String, f64)> = f.relevance.iter().collect();
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            let list: Vec<String> = top
                .iter()
                .take(5)
                .map(|(b, s)| format!("{b} {s:.3}"))
                .collect();
            let _ = writeln!(
                md,
                "\nWith pair interactions, p = {}: the five most relevant blocks are {}.",
                p_label(f.p),
                list.join(", ")
            );
        }
        let _ = writeln!(
            md,
            "\n![Relevance per view](mfeat_relevance.svg)\n\n(PNG: [mfeat_relevance.png](mfeat_relevance.png).)"
        );
    }
    let g = o.gram_bench;
    let _ = writeln!(md, "\n## 5. Throughput on this machine\n");
    let _ = writeln!(
        md,
        "- Gram assembly, rbf f32, n = {}, d = {}, {} threads: {:.4} s, {:.1} GFLOP/s (n^2 d counted); faer's full GEMM X X^T {:.4} s; ratio_vs_gemm {:.2}.",
        g.n, g.d, g.threads, g.seconds, g.gflops, g.gemm_seconds, g.ratio_vs_gemm
    );
    let _ = writeln!(
        md,
        "- LMF forward (pre-scaled model, f32), batch {}, rank {}, dims {:?}: {:.0} samples/s.",
        o.lmf_batch,
        a.rank,
        o.mkl.modalities.iter().map(|m| m.d).collect::<Vec<_>>(),
        o.lmf_samples_per_second
    );
    let _ = writeln!(md, "\nTotal time: {:.1} s.", o.seconds_total);
    md
}

/// Writes the output folder: every file atomically (temporary file + rename).
pub(crate) fn write(o: &Outcome) -> Result<()> {
    let dir = &o.args.out;
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        path: dir.clone(),
        source: e,
    })?;
    for (i, k) in o.kpca.iter().enumerate() {
        write_atomic_bytes(dir.join(kpca_file(k, i)), k.svg.as_bytes())?;
    }
    write_atomic_bytes(dir.join("lmf_loss.svg"), o.lmf.svg.as_bytes())?;
    write_atomic_bytes(dir.join("lmf_relevance.svg"), o.block.svg.as_bytes())?;
    let png = crate::cli::png::svg_to_png(&o.block.svg, 2.0)?;
    write_atomic_bytes(dir.join("lmf_relevance.png"), &png)?;
    write_atomic_bytes(dir.join("interactions.svg"), o.interactions.svg.as_bytes())?;
    let png = crate::cli::png::svg_to_png(&o.interactions.svg, 2.0)?;
    write_atomic_bytes(dir.join("interactions.png"), &png)?;
    if let Some(m) = o.mfeat {
        write_atomic_bytes(dir.join("mfeat_relevance.svg"), m.svg.as_bytes())?;
        let png = crate::cli::png::svg_to_png(&m.svg, 2.0)?;
        write_atomic_bytes(dir.join("mfeat_relevance.png"), &png)?;
    }
    let results = serde_json::to_string_pretty(&results_json(o)).unwrap_or_default();
    write_atomic_bytes(dir.join("results.json"), results.as_bytes())?;
    write_atomic_bytes(dir.join("report.md"), markdown(o).as_bytes())
}

/// The concise summary for stdout.
pub(crate) fn summary(o: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mmfuse demo: {} samples ({} train / {} test), 3 modalities",
        o.args.n,
        o.study.train.len(),
        o.study.test.len()
    );
    for m in &o.mkl.modalities {
        let _ = writeln!(
            s,
            "  {:<6} ({}) alone: accuracy {:.3}",
            m.name, m.role, m.accuracy_alone
        );
    }
    for r in &o.mkl.per_p {
        let shares: Vec<String> = r.shares.iter().map(|v| format!("{v:.3}")).collect();
        let _ = writeln!(
            s,
            "  MKL p={:<4} shares [{}]  accuracy {:.3}",
            p_label(r.p),
            shares.join(", "),
            r.accuracy
        );
    }
    for f in &o.interactions.fits {
        let top = o
            .interactions
            .blocks
            .iter()
            .zip(&f.relevance)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(b, r)| format!("{b} ({r:.3})"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  interactions p={:<4} most relevant block {top}; accuracy {:.3} with pairs, {:.3} without",
            p_label(f.p),
            f.accuracy,
            f.accuracy_unimodal
        );
    }
    if let Some(m) = o.mfeat {
        let views: Vec<String> = m
            .views
            .iter()
            .map(|(n, _, a, _)| format!("{n} {a:.3}"))
            .collect();
        let _ = writeln!(
            s,
            "  Multiple Features: SVM per view {}; average kernel {:.3}",
            views.join(", "),
            m.average_accuracy
        );
        for f in &m.fits {
            let _ = writeln!(
                s,
                "  Multiple Features: MKL p={:<4}{} accuracy {:.3} ({:.1} s)",
                p_label(f.p),
                if f.interactions {
                    " + pairs"
                } else {
                    "        "
                },
                f.accuracy,
                f.seconds
            );
        }
    }
    for k in o.kpca {
        let _ = writeln!(
            s,
            "  kernel PCA {:<10} Fisher {:.3}  alignment {:+.3}",
            k.name, k.fisher, k.alignment
        );
    }
    let _ = writeln!(
        s,
        "  LMF rank {}: train MSE {:.4} -> {:.4}, validation {:.4} -> {:.4} (mean predictor {:.4})",
        o.args.rank,
        o.lmf.train_loss.first().copied().unwrap_or(f64::NAN),
        o.lmf.train_loss.last().copied().unwrap_or(f64::NAN),
        o.lmf.val_loss.first().copied().unwrap_or(f64::NAN),
        o.lmf.val_loss.last().copied().unwrap_or(f64::NAN),
        o.lmf.baseline_mse
    );
    let b = o.block;
    let rel = |v: &[f64]| -> String {
        b.blocks
            .iter()
            .zip(v)
            .map(|(n, r)| format!("{n} {r:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        s,
        "  block LMF rank {} (pairs, p = {}): validation MSE {:.4} (plain LMF {:.4}, mean predictor {:.4}, MKL linear {:.4})",
        b.rank,
        p_label(study_block::P),
        b.final_val(),
        plain_final(o),
        o.lmf.baseline_mse,
        b.mkl_val_mse
    );
    let _ = writeln!(s, "    relevance, block LMF: {}", rel(&b.relevance));
    let _ = writeln!(s, "    relevance, MKL:       {}", rel(&b.mkl_relevance));
    let _ = writeln!(
        s,
        "    agreement: Spearman {:.3}, largest difference {:.3}",
        b.spearman, b.max_share_gap
    );
    let _ = writeln!(
        s,
        "  throughput: Gram rbf f32 {:.1} GFLOP/s; LMF forward {:.0} samples/s",
        o.gram_bench.gflops, o.lmf_samples_per_second
    );
    let _ = writeln!(
        s,
        "  report: {}  ({:.1} s)",
        o.args.out.join("report.md").display(),
        o.seconds_total
    );
    s
}
