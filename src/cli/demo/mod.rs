//! `mmfuse demo`: the end-to-end study on simulated multimodal data, as one command.
//!
//! 1. Simulate three modalities (visual 128, audio 64, text 300 features) with a binary label
//!    and a regression target whose signal is spread unevenly and non-linearly across them.
//! 2. One rbf kernel per modality, p-norm MKL for each p, and each modality alone.
//! 3. Kernel PCA of every kernel and of the MKL-combined one, with scatter plots and scores.
//! 4. Interactions: a second simulation with planted structure (a main effect, an
//!    interaction-only pair, a noise modality); MKL over unimodal and pair blocks for p in
//!    {1, 4/3, 2}, relevance per block next to the truth.
//! 5. Real data: the Multiple Features digits (six views), an SVM per view, the average kernel,
//!    MKL without and with pair interactions, relevance per view.
//! 6. LMF regression (Adam, MSE), loss curves; block LMF (unimodal and pair blocks, p = 1) on
//!    the same split, its validation loss against plain LMF's and the mean predictor's, and its
//!    relevance per block beside the kernel side's (MKL over centred linear kernels and their
//!    products, on the same data and blocks).
//! 7. Throughput measured on the spot.
//! 8. `report.md`, the SVG figures and `results.json` in the output folder.

mod report;
mod simulate;
mod study_block;
mod study_interactions;
mod study_kpca;
mod study_lmf;
mod study_mfeat;
mod study_mkl;

use super::bench::{bench_gram, BenchGramArgs};
use super::gram::Dtype;
use super::progress::bar;
use clap::Args;
use mmfuse::error::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// `mmfuse demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output folder (report.md, the SVG figures, results.json); created if missing.
    #[arg(long, default_value = "mmfuse-demo")]
    pub out: PathBuf,
    /// Number of simulated samples (70% train, 30% held out).
    #[arg(long, default_value_t = 600)]
    pub n: usize,
    /// Seed of the simulation, the split and the LMF initialisation and shuffles.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Values of p for MKL, comma-separated (numbers >= 1, fractions such as 4/3, or inf).
    #[arg(long, default_value = "1,4/3,2,inf")]
    pub p: String,
    /// LMF rank.
    #[arg(long, default_value_t = 4)]
    pub rank: usize,
    /// LMF training epochs.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// LMF mini-batch size.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// LMF Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Skip the real-data study (Multiple Features), e.g. for a quick run.
    #[arg(long)]
    pub no_real_data: bool,
    /// No progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

pub(crate) fn run(a: DemoArgs) -> Result<()> {
    if a.n < 20 {
        return Err(Error::param("n", format!("must be >= 20, got {}", a.n)));
    }
    let ps = mmfuse::mkl::parse_p_list(&a.p)?;
    if a.rank == 0 {
        return Err(Error::param("rank", "must be >= 1"));
    }
    if a.epochs == 0 {
        return Err(Error::param("epochs", "must be >= 1"));
    }
    let t0 = Instant::now();
    let study = simulate::simulate(a.n, a.seed);

    let pb = bar(
        a.quiet,
        study.modalities.len() + ps.len(),
        "multiple kernels",
    );
    let mkl = study_mkl::run(&study, &ps, &mut |msg| {
        pb.set_message(msg.to_string());
        pb.inc(1);
    })?;
    pb.finish();

    let (kpca_label, kpca_beta) = {
        let chosen = mkl
            .per_p
            .iter()
            .find(|r| r.p == 2.0)
            .unwrap_or(&mkl.per_p[0]);
        (
            format!("MKL p={}", mmfuse::mkl::p_label(chosen.p)),
            chosen.beta.clone(),
        )
    };
    let pb = bar(a.quiet, 1, "kernel PCA");
    let kpca = study_kpca::run(&mkl, &kpca_beta, &kpca_label)?;
    pb.inc(1);
    pb.finish();

    let pb = bar(a.quiet, 1, "interactions");
    let interactions = study_interactions::run(a.n, a.seed, &[1.0, 4.0 / 3.0, 2.0])?;
    pb.inc(1);
    pb.finish();

    let mfeat = if a.no_real_data {
        None
    } else {
        let pb = bar(a.quiet, 1 + 6 + 1 + 6, "Multiple Features");
        let s = study_mfeat::run(&[1.0, 4.0 / 3.0, 2.0], &mut |msg| {
            pb.set_message(msg.to_string());
            pb.inc(1);
        })?;
        pb.finish();
        Some(s)
    };

    let pb = bar(a.quiet, a.epochs, "LMF training");
    let lmf = study_lmf::run(
        &study,
        &study_lmf::LmfSettings {
            rank: a.rank,
            epochs: a.epochs,
            batch: a.batch,
            lr: a.lr,
            seed: a.seed,
        },
        &mut |r| {
            pb.set_message(format!(
                "train {:.4} val {:.4}",
                r.train_loss,
                r.val_loss.unwrap_or(f64::NAN)
            ));
            pb.inc(1);
        },
    )?;
    pb.finish();

    let pb = bar(
        a.quiet,
        study_block::epochs_for(study.train.len()),
        "block LMF",
    );
    let block = study_block::run(&study, a.rank, a.seed, &mut |r| {
        pb.set_message(format!(
            "train {:.4} val {:.4}",
            r.train_loss,
            r.val_loss.unwrap_or(f64::NAN)
        ));
        pb.inc(1);
    })?;
    pb.finish();

    let pb = bar(a.quiet, 2, "throughput");
    let gram_bench = bench_gram(&BenchGramArgs {
        input: None,
        n: 2048,
        d: 300,
        m: None,
        kernel: "rbf".into(),
        dtype: Dtype::F32,
        threads: None,
        tile: 256,
        runs: 3,
        seed: a.seed,
        json: false,
    })?;
    pb.inc(1);
    let lmf_batch = 8192;
    let lmf_samples_per_second = study_lmf::forward_throughput(&lmf.model, lmf_batch, a.seed)?;
    pb.inc(1);
    pb.finish();

    let outcome = report::Outcome {
        args: &a,
        study: &study,
        mkl: &mkl,
        kpca: &kpca,
        interactions: &interactions,
        mfeat: mfeat.as_ref(),
        lmf: &lmf,
        block: &block,
        gram_bench: &gram_bench,
        lmf_batch,
        lmf_samples_per_second,
        seconds_total: t0.elapsed().as_secs_f64(),
    };
    report::write(&outcome)?;
    print!("{}", report::summary(&outcome));
    Ok(())
}
