#!/usr/bin/env python3
"""Gram-matrix assembly: mmfuse against scikit-learn and PyTorch, same data, same dtype, same run.

For each case the script writes X (uniform in [-1, 1), seeded) to an .npy file, then times
  - scikit-learn's `rbf_kernel` / `linear_kernel` / `laplacian_kernels` (numpy + OpenBLAS),
  - PyTorch's hand-written exp(-gamma * clamp(|x|^2 + |y|^2 - 2 X X^T, 0)) (rbf), X X^T (linear),
    both allocating and in place into a preallocated output (the faster of the two is reported),
  - mmfuse (`mmfuse bench gram --input X.npy --json`, which also times faer's plain GEMM),
each as the median of several runs after a warm-up, with 2 threads everywhere, in rounds that
alternate the sides, and prints a table of medians over the rounds with their ranges and the
ratios peer_time / mmfuse_time (> 1: mmfuse is faster): scikit-learn against mmfuse's
allocating `gram`, PyTorch's faster variant against mmfuse into a reused output (`gram_into`,
as the in-place PyTorch variant reuses its output). Beside the PyTorch ratio, the one that a
Gram matrix exactly at the limit (faer's half GEMM into a reused output) would reach: a target
above it cannot be met by an assembly bounded by half a GEMM. Beside the half GEMM, the same
product into a fresh output (allocated and first touched inside the timer), and beside
fraction_of_limit that time over our allocating `gram` (both sides allocating; above 1, our
fresh K is written faster than faer's product alone into a fresh output). `--json` prints one
JSON object per case.

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
    ("rbf", "f64", 8192, 64),
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
    p.add_argument("--runs", type=int, default=5, help="timed runs per side per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds")
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
            sides = {"sklearn": sklearn_fn(kernel, x, gamma)}
            if have_torch:
                sides["torch"] = torch_fn(kernel, x, gamma)
                inplace = torch_inplace_fn(kernel, x, gamma)
                if inplace is not None:
                    sides["torch_inplace"] = inplace
            # Rounds alternate the sides (mmfuse first in even rounds, last in odd ones); each
            # round gives one median per side, and the table shows the median over the rounds
            # with their range.
            per = {k: [] for k in ["mmfuse", "mmfuse_into", "gemm", "half_gemm", "fresh_half_gemm", *sides]}
            isa = None
            for r in range(args.rounds):
                def ours():
                    o = mmfuse_time(args.bin, path, kernel, dtype, args.runs)
                    per["mmfuse"].append(o["seconds"])
                    per["mmfuse_into"].append(o.get("into_seconds") or o["seconds"])
                    per["gemm"].append(o["gemm_seconds"])
                    per["half_gemm"].append(o.get("half_gemm_seconds") or float("nan"))
                    per["fresh_half_gemm"].append(o.get("fresh_half_gemm_seconds") or float("nan"))
                    return o.get("isa")
                order = [None, *sides] if r % 2 == 0 else [*sides, None]
                for side in order:
                    if side is None:
                        isa = ours()
                    else:
                        per[side].append(median_time(sides[side], args.runs))
            med = {k: statistics.median(v) for k, v in per.items() if v}
            rng_ = {k: (min(v), max(v)) for k, v in per.items() if v}
            torch_best = min((med[k] for k in ("torch", "torch_inplace") if k in med), default=None)
            row = {
                "kernel": kernel, "dtype": dtype, "n": n, "d": d, "threads": THREADS, "isa": isa,
                "rounds": args.rounds, "runs_per_round": args.runs,
                "mmfuse_seconds": med["mmfuse"], "mmfuse_range": rng_["mmfuse"],
                "mmfuse_into_seconds": med["mmfuse_into"], "mmfuse_into_range": rng_["mmfuse_into"],
                "faer_gemm_seconds": med["gemm"], "faer_half_gemm_seconds": med["half_gemm"],
                "faer_fresh_half_gemm_seconds": med["fresh_half_gemm"],
                "fraction_of_limit": med["half_gemm"] / med["mmfuse_into"],
                "fraction_of_limit_allocating": med["fresh_half_gemm"] / med["mmfuse"],
                "sklearn_seconds": med["sklearn"], "sklearn_range": rng_["sklearn"],
                "speedup_vs_sklearn": med["sklearn"] / med["mmfuse"],
                "torch_seconds": med.get("torch"), "torch_range": rng_.get("torch"),
                "torch_inplace_seconds": med.get("torch_inplace"),
                "torch_inplace_range": rng_.get("torch_inplace"),
                # Strongest against strongest: PyTorch's faster variant against ours into a
                # reused output (the in-place PyTorch variant reuses its output too).
                "speedup_vs_torch": (torch_best / med["mmfuse_into"]) if torch_best else None,
                "torch_over_limit": (torch_best / med["half_gemm"]) if torch_best else None,
            }
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if not args.json:
        def ms(v, r):
            return f"{v * 1e3:.1f} ({r[0] * 1e3:.1f}-{r[1] * 1e3:.1f})" if v is not None else "-"
        print("| kernel | dtype | n | d | isa | mmfuse ms | into reused ms | faer half GEMM ms (fresh) | fraction_of_limit (allocating) | sklearn ms | x sklearn | torch ms | torch in place ms | x torch (at limit) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            tx = (f"{r['speedup_vs_torch']:.2f} ({r['torch_over_limit']:.2f})"
                  if r["speedup_vs_torch"] else "-")
            print(f"| {r['kernel']} | {r['dtype']} | {r['n']} | {r['d']} | {r['isa']} | "
                  f"{ms(r['mmfuse_seconds'], r['mmfuse_range'])} | "
                  f"{ms(r['mmfuse_into_seconds'], r['mmfuse_into_range'])} | "
                  f"{r['faer_half_gemm_seconds'] * 1e3:.1f} ({r['faer_fresh_half_gemm_seconds'] * 1e3:.1f}) | "
                  f"{r['fraction_of_limit']:.2f} ({r['fraction_of_limit_allocating']:.2f}) | "
                  f"{ms(r['sklearn_seconds'], r['sklearn_range'])} | "
                  f"{r['speedup_vs_sklearn']:.2f} | "
                  f"{ms(r['torch_seconds'], r['torch_range'])} | "
                  f"{ms(r['torch_inplace_seconds'], r['torch_inplace_range'])} | {tx} |")

if __name__ == "__main__":
    main()
