#!/usr/bin/env python3
"""End to end: `mmfuse gram --input X.npy --out K.npy` against NumPy load + scikit-learn + np.save.

Both sides read the same X.npy (n x d, float32 unless --dtype f64) and write a K.npy of the same
bytes' size into the same directory (on disk, not tmpfs: --dir, default target/cli-peers), each
overwriting its own previous output, as a user re-running a study does. Rounds alternate the
sides; each side's median and range over the rounds are printed.

  - mmfuse: the whole command as a child process (start-up, reading, computing, writing the
    rows while computing, fsync, rename), timed from here.
  - Python: np.load, sklearn's rbf_kernel, np.save, timed inside this (warm) process, so
    Python's start-up and imports do not count against it. Two variants: np.save as is (the
    usual script: the data may still be in the page cache when it returns), and np.save to a
    temporary file + fsync + os.replace, the same guarantee mmfuse gives.

Set-up as for gram_peers.py (target/peers-venv with numpy scikit-learn threadpoolctl), then
    target/peers-venv/bin/python benches/peers/gram_cli_peers.py
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

# The thread pinning and BLAS environment of gram_peers.py (set there before numpy loads),
# and its ROOT and THREADS.
from gram_peers import ROOT, THREADS, np  # noqa: E402
from sklearn.metrics.pairwise import rbf_kernel  # noqa: E402

def python_side(x_path, out, gamma, durable):
    t = time.perf_counter()
    x = np.load(x_path)
    k = rbf_kernel(x, gamma=gamma)
    if durable:
        tmp = out + ".tmp"
        with open(tmp, "wb") as f:
            np.save(f, k)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    else:
        np.save(out, k)
    return time.perf_counter() - t


def mmfuse_side(binary, x_path, out, dtype):
    t = time.perf_counter()
    subprocess.run(
        [binary, "gram", "--input", x_path, "--kernel", "rbf", "--dtype", dtype,
         "--threads", str(THREADS), "--out", out],
        check=True,
    )
    return time.perf_counter() - t


def fmt(v):
    return f"{statistics.median(v) * 1e3:.0f} ms ({min(v) * 1e3:.0f}-{max(v) * 1e3:.0f})"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "mmfuse"))
    p.add_argument("--dir", default=os.path.join(ROOT, "target", "cli-peers"))
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--d", type=int, default=300)
    p.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} not found: run `cargo build --release` first")
    os.makedirs(args.dir, exist_ok=True)
    rng = np.random.default_rng(42)
    x = rng.uniform(-1.0, 1.0, size=(args.n, args.d)).astype(np.float32 if args.dtype == "f32" else np.float64)
    x_path = os.path.join(args.dir, "X.npy")
    np.save(x_path, x)
    gamma = 1.0 / args.d
    outs = {s: os.path.join(args.dir, f"K_{s}.npy") for s in ("mmfuse", "save", "durable")}
    sides = {
        "mmfuse": lambda: mmfuse_side(args.bin, x_path, outs["mmfuse"], args.dtype),
        "save": lambda: python_side(x_path, outs["save"], gamma, False),
        "durable": lambda: python_side(x_path, outs["durable"], gamma, True),
    }
    for f in sides.values():  # warm-up: caches, BLAS threads, and an output to overwrite
        f()
    times = {s: [] for s in sides}
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for s in order:
            times[s].append(sides[s]())
    ours = statistics.median(times["mmfuse"])
    print(f"# rbf {args.dtype} n={args.n} d={args.d} threads={THREADS}, {args.rounds} alternating rounds, output in {args.dir}")
    print("| side | end to end | ratio to mmfuse |")
    print("|---|---|---|")
    print(f"| mmfuse gram (rows written while computing, fsync, rename) | {fmt(times['mmfuse'])} | 1.00 |")
    print(f"| NumPy load + scikit-learn + np.save | {fmt(times['save'])} | {statistics.median(times['save']) / ours:.2f} |")
    print(f"| same + fsync + os.replace | {fmt(times['durable'])} | {statistics.median(times['durable']) / ours:.2f} |")
    np.testing.assert_allclose(np.load(outs["mmfuse"]), np.load(outs["save"]), rtol=0, atol=1e-5)


if __name__ == "__main__":
    main()
