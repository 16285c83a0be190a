#!/usr/bin/env python3
"""Low-rank multimodal fusion: mmfuse against the PyTorch reference module, same shapes, same run.

The PyTorch side is the fusion module of the LMF reference (Liu et al. 2018, the same code as
scripts/make_lmf_fixture.py): per modality a column of ones prepended (`torch.cat`), `torch.matmul`
with the factor (r, d + 1, h), the product over modalities, then `fusion_weights @ .permute(1, 0, 2)`
plus the bias; float32, Xavier-normal factors, `torch.set_num_threads(2)`. Inputs are uniform in
[-0.5, 0.5) (seeded), as in `mmfuse bench lmf`. Modalities: 128, 64 and 300 features.

Cases:
  - forward (eval + no_grad): r = 16, h = 128 at batch 1, 256, 4096; r = 4, h = 32 at batch 1, 32;
  - training step (forward, MSELoss, backward, torch.optim.Adam step with its defaults):
    r = 16, h = 128 at batch 256, 4096.
mmfuse runs `mmfuse bench lmf --json` on the same cases (forward: the pre-scaled inference model;
training: `loss_and_gradients` + one Adam step), which also reports the fraction of faer's GEMM
GFLOP/s reached on the same GEMM shapes. Each figure is the median over timed calls after a
warm-up (at least `--runs` calls, more for fast cases so that each side is timed for about
`--seconds`), and each case runs `--rounds` times alternating the two sides: the table shows the
median of the per-round ratios and their range. Prints a table with samples/s of both and the ratio mmfuse / PyTorch (> 1: mmfuse is
faster), or one JSON object per case with `--json`.

The machine's load disturbs both sides: run it on an otherwise idle machine (the table header
prints the load average), and repeat it to see the spread.

Set-up (once; nothing is committed):
    python3 -m venv target/peers-venv
    target/peers-venv/bin/pip install numpy torch
    cargo build --release
Run:
    target/peers-venv/bin/python benches/peers/lmf_peers.py [--json] [--runs 10] [--case ...]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

THREADS = int(os.environ.get("PEER_THREADS", "2"))
# Thread counts must be fixed before torch loads its BLAS / OpenMP runtime.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(THREADS)

import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_BIN = os.path.join(ROOT, "target", "release", "mmfuse")
DIMS = [128, 64, 300]

CASES = [
    # (mode, batch, rank, out_dim)
    ("forward", 1, 16, 128),
    ("forward", 256, 16, 128),
    ("forward", 4096, 16, 128),
    ("forward", 1, 4, 32),
    ("forward", 32, 4, 32),
    ("train", 256, 16, 128),
    ("train", 4096, 16, 128),
]


class LMFFusion(torch.nn.Module):
    """The reference fusion module (scripts/make_lmf_fixture.py)."""

    def __init__(self, dims, rank, output_dim):
        super().__init__()
        self.output_dim = output_dim
        self.factors = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.empty(rank, d + 1, output_dim)) for d in dims]
        )
        self.fusion_weights = torch.nn.Parameter(torch.empty(1, rank))
        self.fusion_bias = torch.nn.Parameter(torch.empty(1, output_dim))
        for f in self.factors:
            torch.nn.init.xavier_normal_(f)
        torch.nn.init.xavier_normal_(self.fusion_weights)
        self.fusion_bias.data.fill_(0)

    def forward(self, *xs):
        batch_size = xs[0].shape[0]
        fusion_zy = None
        for factor, x in zip(self.factors, xs):
            _x = torch.cat((torch.ones(batch_size, 1, dtype=x.dtype), x), dim=1)
            f = torch.matmul(_x, factor)
            fusion_zy = f if fusion_zy is None else fusion_zy * f
        output = torch.matmul(self.fusion_weights, fusion_zy.permute(1, 0, 2)).squeeze() + self.fusion_bias
        return output.view(-1, self.output_dim)


def time_calls(fn, runs, seconds):
    """Median seconds of one call of `fn`: one warm-up, then at least `runs` timed calls (more for
    fast calls, up to about `seconds` in total)."""
    t = time.perf_counter()
    fn()  # warm-up
    first = time.perf_counter() - t
    count = max(runs, min(2000, int(seconds / max(first, 1e-7))))
    times = []
    for _ in range(count):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), count


def torch_case(mode, batch, rank, out_dim, runs, seconds, seed=0):
    torch.manual_seed(seed)
    model = LMFFusion(DIMS, rank, out_dim)
    xs = [torch.rand(batch, d) - 0.5 for d in DIMS]
    target = torch.rand(batch, out_dim) - 0.5
    if mode == "forward":
        model.eval()

        def step():
            with torch.no_grad():
                return model(*xs)
    else:
        model.train()
        loss_fn = torch.nn.MSELoss()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            opt.zero_grad()
            loss = loss_fn(model(*xs), target)
            loss.backward()
            opt.step()
            return loss

    return time_calls(step, runs, seconds)


def mmfuse_case(binary, mode, batch, rank, out_dim, runs):
    cmd = [binary, "bench", "lmf", "--batch", str(batch), "--rank", str(rank), "--out-dim", str(out_dim),
           "--dims", ",".join(map(str, DIMS)), "--threads", str(THREADS), "--runs", str(runs), "--json"]
    if mode == "train":
        cmd.append("--train")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1]), " ".join(cmd[1:])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=DEFAULT_BIN, help="mmfuse binary (cargo build --release)")
    p.add_argument("--runs", type=int, default=10, help="fewest timed calls per case and side")
    p.add_argument("--seconds", type=float, default=0.5, help="time budget per case and side (fast cases)")
    p.add_argument("--rounds", type=int, default=5,
                   help="rounds per case, alternating the sides; the median ratio is reported")
    p.add_argument("--json", action="store_true")
    p.add_argument("--case", action="append", default=None,
                   help="only MODE:BATCH:RANK:OUT_DIM (repeatable), e.g. forward:256:16:128")
    args = p.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} not found: run `cargo build --release` first")
    cases = CASES
    if args.case:
        cases = []
        for c in args.case:
            mode, b, r, h = c.split(":")
            cases.append((mode, int(b), int(r), int(h)))
    torch.set_num_threads(THREADS)
    load = os.getloadavg()
    print(f"# threads={THREADS}; torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"dims={DIMS}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", file=sys.stderr)

    rows = []
    for mode, batch, rank, out_dim in cases:
        # Rounds alternate the two sides, so that a slow spell of a shared machine hits both;
        # the reported ratio is the median of the per-round ratios, with their range.
        rounds = []
        for _ in range(max(1, args.rounds)):
            th_s, th_calls = torch_case(mode, batch, rank, out_dim, args.runs, args.seconds)
            # As many mmfuse calls as PyTorch's budget allows at mmfuse's speed, at least --runs.
            ours, cmd = mmfuse_case(args.bin, mode, batch, rank, out_dim, args.runs)
            calls = max(args.runs, min(2000, int(args.seconds / max(ours["seconds_per_batch"], 1e-7))))
            if calls > args.runs:
                ours, cmd = mmfuse_case(args.bin, mode, batch, rank, out_dim, calls)
            rounds.append((th_s, th_calls, ours, cmd, th_s / ours["seconds_per_batch"]))
        rounds.sort(key=lambda r: r[4])
        th_s, th_calls, ours, cmd, ratio = rounds[len(rounds) // 2]
        row = {
            "mode": mode, "batch": batch, "rank": rank, "out_dim": out_dim, "dims": DIMS,
            "threads": THREADS,
            "mmfuse_seconds_per_batch": ours["seconds_per_batch"],
            "mmfuse_samples_per_second": ours["samples_per_second"],
            "mmfuse_gflops": ours["gflops"], "faer_gemm_gflops": ours["gemm_gflops"],
            "fraction_of_gemm_gflops": ours["fraction_of_gemm_gflops"],
            "fraction_of_gemm_gflops_rounds": [r[2]["fraction_of_gemm_gflops"] for r in rounds],
            "torch_seconds_per_batch": th_s, "torch_samples_per_second": batch / th_s,
            "torch_calls": th_calls, "mmfuse_command": cmd,
            "ratio": ratio, "ratio_min": rounds[0][4], "ratio_max": rounds[-1][4], "rounds": len(rounds),
        }
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print("| mode | batch | r | h | mmfuse samples/s | PyTorch samples/s | mmfuse / PyTorch (range) | mmfuse GFLOP/s | of faer GEMM (range) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['mode']} | {r['batch']} | {r['rank']} | {r['out_dim']} | "
                  f"{r['mmfuse_samples_per_second']:.0f} | {r['torch_samples_per_second']:.0f} | "
                  f"{r['ratio']:.2f}x ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) | {r['mmfuse_gflops']:.1f} | "
                  f"{100 * r['fraction_of_gemm_gflops']:.0f}% ({100 * min(r['fraction_of_gemm_gflops_rounds']):.0f}-"
                  f"{100 * max(r['fraction_of_gemm_gflops_rounds']):.0f}%) |")


if __name__ == "__main__":
    main()
