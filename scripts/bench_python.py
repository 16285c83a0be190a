#!/usr/bin/env python3
"""The Python binding against the CLI, in one run, alternating (README, "From Python: speed").

1. `mmfuse.gram` on n x d float32 (rbf) against `mmfuse bench gram` on the same data: the
   CLI's `seconds` is the median of its own timed runs of the same library call.
2. `MKLClassifier.fit` on the bundled Multiple Features views against `mmfuse mkl fit --data`
   on the same views saved as .npy (the CLI's wall time includes reading the files and writing
   the model; the Python time includes validating X and cutting the views).

Usage: target/py-venv/bin/python scripts/bench_python.py [--cli target/release/mmfuse]
       [--rounds 5] [--n 4096] [--d 300] [--views fou,fac,kar,pix,zer,mor]
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import numpy as np

import mmfuse
from mmfuse import MKLClassifier
from mmfuse.datasets import load_mfeat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default="target/release/mmfuse")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--d", type=int, default=300)
    ap.add_argument("--views", default="fou,fac,kar,pix,zer,mor")
    ap.add_argument("--skip", default="", help="gram or mkl")
    a = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp())
    out = {"isa": mmfuse.isa()}

    if "gram" not in a.skip:
        X = np.random.default_rng(0).normal(size=(a.n, a.d)).astype(np.float32)
        np.save(tmp / "x.npy", X)
        mmfuse.gram(X)
        py, cli = [], []
        for _ in range(a.rounds):
            calls = []
            for _ in range(3):  # as the CLI's --runs 3: the median of three calls
                t = time.perf_counter()
                mmfuse.gram(X)
                calls.append(time.perf_counter() - t)
            py.append(statistics.median(calls))
            r = subprocess.run(
                [a.cli, "bench", "gram", "--input", str(tmp / "x.npy"), "--kernel", "rbf",
                 "--dtype", "f32", "--runs", "3", "--json"],
                check=True, capture_output=True, text=True,
            )
            cli.append(json.loads(r.stdout.strip().splitlines()[0])["seconds"])
        out["gram"] = {"n": a.n, "d": a.d, "python_s": statistics.median(py),
                       "cli_bench_s": statistics.median(cli),
                       "ratio": statistics.median(py) / statistics.median(cli)}

    if "mkl" not in a.skip:
        d = load_mfeat()
        names = a.views.split(",")
        views = {k: d.view_slices[k] for k in names}
        args = [a.cli, "mkl", "fit", "--quiet", "--labels", str(tmp / "y.npy"), "--out", str(tmp / "m.mkl")]
        for k in names:
            np.save(tmp / f"{k}.npy", d.views[k])
            args += ["--data", f"{k}={tmp / k}.npy"]
        np.save(tmp / "y.npy", d.target.astype(np.float64))
        py, cli = [], []
        for _ in range(a.rounds):
            t = time.perf_counter()
            MKLClassifier(views=views).fit(d.data, d.target)
            py.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run(args, check=True)
            cli.append(time.perf_counter() - t)
        out["mkl_fit"] = {"views": names, "n": len(d.target), "python_s": statistics.median(py),
                          "cli_s": statistics.median(cli),
                          "ratio": statistics.median(py) / statistics.median(cli)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
