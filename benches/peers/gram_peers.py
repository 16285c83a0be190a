#!/usr/bin/env python3
"""Gram-matrix assembly: mmfuse against scikit-learn and PyTorch, same data, same dtype, same run.

For each case the script writes X (uniform in [-1, 1), seeded) to an .npy file, then times
  - scikit-learn's `rbf_kernel` / `linear_kernel` / `laplacian_kernels` (numpy + OpenBLAS),
  - PyTorch's hand-written exp(-gamma * clamp(|x|^2 + |y|^2 - 2 X X^T, 0)) (rbf), X X^T (linear),
    both allocating and in place into a preallocated output (the faster of the two is reported),
  - mmfuse (`mmfuse bench gram --input X.npy --json`, which also times faer's plain GEMM),
each as the median of several runs after a warm-up, with 2 threads everywhere, and prints a
table with the ratios peer_time / mmfuse_time (> 1: mmfuse is faster). `--json` prints one JSON
object per case instead.

Set-up (once; nothing is committed):
    python3 -m venv target/peers-venv
    target/peers-venv/bin/pip install numpy scikit-learn threadpoolctl torch
    cargo build --release
Run:
    target/peers-venv/bin/python benches/peers/gram_peers.py
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

THREADS = int(os.environ.get("PEER_THREADS", "2"))
# Thread counts must be fixed before numpy / torch load their BLAS.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(THREADS)
# Older OpenBLAS builds are pinned to a generic core type on some machines here; that slows a
# current numpy, so the benchmark process drops the pin (this script only, never tests or CI).
os.environ.pop("OPENBLAS_CORETYPE", None)
os.environ.pop("OPENBLAS_L2_SIZE", None)

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_BIN = os.path.join(ROOT, "target", "release", "mmfuse")

CASES = [
    # (kernel, dtype, n, d)
    ("rbf", "f32", 4096, 300),
    ("rbf", "f64", 4096, 300),
    ("linear", "f32", 4096, 300),
    ("laplacian", "f32", 4096, 300),
    ("rbf", "f32", 8192, 64),
]


def median_time(fn, runs):
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def sklearn_fn(kernel, x, gamma):
    from sklearn.metrics.pairwise import laplacian_kernel, linear_kernel, rbf_kernel

    if kernel == "rbf":
        return lambda: rbf_kernel(x, gamma=gamma)
    if kernel == "linear":
        return lambda: linear_kernel(x)
    if kernel == "laplacian":
        return lambda: laplacian_kernel(x, gamma=gamma)
    raise ValueError(kernel)


def torch_fn(kernel, x, gamma):
    import torch

    torch.set_num_threads(THREADS)
    xt = torch.from_numpy(x)

    def rbf():
        with torch.no_grad():
            sq = (xt * xt).sum(1)
            d2 = sq[:, None] + sq[None, :] - 2.0 * (xt @ xt.T)
            return torch.exp(-gamma * torch.clamp(d2, min=0.0))

    def linear():
        with torch.no_grad():
            return xt @ xt.T

    def laplacian():
        with torch.no_grad():
            return torch.exp(-gamma * torch.cdist(xt, xt, p=1))

    return {"rbf": rbf, "linear": linear, "laplacian": laplacian}[kernel]


def torch_inplace_fn(kernel, x, gamma):
    """PyTorch's strongest variant: every step in place into an output allocated (and touched)
    once, before timing, as faer's baseline is; None where there is no such variant."""
    import torch

    torch.set_num_threads(THREADS)
    xt = torch.from_numpy(x)
    n = xt.shape[0]
    out = torch.zeros((n, n), dtype=xt.dtype)
    sq = torch.empty(n, dtype=xt.dtype)

    def rbf():
        with torch.no_grad():
            torch.sum(xt * xt, 1, out=sq)
            torch.mm(xt, xt.T, out=out)
            out.mul_(-2.0).add_(sq[:, None]).add_(sq[None, :]).clamp_(min=0.0)
            out.mul_(-gamma).exp_()
            return out

    def linear():
        with torch.no_grad():
            return torch.mm(xt, xt.T, out=out)

    return {"rbf": rbf, "linear": linear}.get(kernel)


def mmfuse_time(binary, path, kernel, dtype, runs):
    out = subprocess.run(
        [binary, "bench", "gram", "--input", path, "--kernel", kernel, "--dtype", dtype,
         "--threads", str(THREADS), "--runs", str(runs), "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def blas_info():
    try:
        from threadpoolctl import threadpool_info

        return "; ".join(
            f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} threads={i.get('num_threads')}"
            for i in threadpool_info()
        )
    except Exception as e:  # pragma: no cover - informational only
        return f"unknown ({e})"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=DEFAULT_BIN, help="mmfuse binary (cargo build --release)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
    args = p.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} not found: run `cargo build --release` first")
    cases = [(k, t, 512, 32) for (k, t, _, _) in CASES[:3]] if args.quick else CASES

    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"# threads={THREADS}; BLAS: {blas_info()}; torch: {'yes' if have_torch else 'no'}", file=sys.stderr)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kernel, dtype, n, d in cases:
            rng = np.random.default_rng(42)
            x = rng.uniform(-1.0, 1.0, size=(n, d)).astype(np.float32 if dtype == "f32" else np.float64)
            path = os.path.join(tmp, f"x_{n}_{d}_{dtype}.npy")
            np.save(path, x)
            gamma = 1.0 / d
            ours = mmfuse_time(args.bin, path, kernel, dtype, args.runs)
            sk = median_time(sklearn_fn(kernel, x, gamma), args.runs)
            th = median_time(torch_fn(kernel, x, gamma), args.runs) if have_torch else None
            # The strongest PyTorch variant counts: the in-place one where there is one.
            inplace = torch_inplace_fn(kernel, x, gamma) if have_torch else None
            if inplace is not None:
                th = min(th, median_time(inplace, args.runs))
            row = {
                "kernel": kernel, "dtype": dtype, "n": n, "d": d, "threads": THREADS,
                "mmfuse_seconds": ours["seconds"], "mmfuse_gflops": ours["gflops"],
                "faer_gemm_seconds": ours["gemm_seconds"], "ratio_vs_gemm": ours["ratio_vs_gemm"],
                "faer_half_gemm_seconds": ours.get("half_gemm_seconds"),
                "fraction_of_limit": ours.get("fraction_of_limit"), "isa": ours.get("isa"),
                "sklearn_seconds": sk, "speedup_vs_sklearn": sk / ours["seconds"],
                "torch_seconds": th, "speedup_vs_torch": (th / ours["seconds"]) if th else None,
            }
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if not args.json:
        print("| kernel | dtype | n | d | isa | mmfuse s | faer GEMM s | ratio_vs_gemm | faer half GEMM s | fraction_of_limit | sklearn s | x sklearn | torch s | x torch |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            ts = f"{r['torch_seconds']:.4f}" if r["torch_seconds"] else "-"
            tx = f"{r['speedup_vs_torch']:.2f}" if r["speedup_vs_torch"] else "-"
            half = r["faer_half_gemm_seconds"]
            print(f"| {r['kernel']} | {r['dtype']} | {r['n']} | {r['d']} | {r['isa']} | {r['mmfuse_seconds']:.4f} | "
                  f"{r['faer_gemm_seconds']:.4f} | {r['ratio_vs_gemm']:.2f} | "
                  f"{half:.4f} | {r['fraction_of_limit']:.2f} | {r['sklearn_seconds']:.4f} | "
                  f"{r['speedup_vs_sklearn']:.2f} | {ts} | {tx} |")


if __name__ == "__main__":
    main()
