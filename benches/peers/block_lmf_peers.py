#!/usr/bin/env python3
"""Block low-rank fusion: mmfuse against PyTorch, one training step, same shapes, same run.

The model is the block LMF of docs/design.md section 8 (the same as scripts/
make_block_lmf_fixture.py): unimodal blocks xn_m @ W_m, interaction blocks
sum_i w_I[i] prod_{m in I} (xn_m @ U_{I,m}[i]), y = sum of the blocks + bias. Modalities: 128, 64
and 300 features; blocks `pairs` (3 unimodal, 3 pairs); r = 8, h = 1; float32,
`torch.set_num_threads(2)`. Inputs are uniform in [-0.5, 0.5) (seeded), as in `mmfuse bench lmf`,
normalised once before timing (centred by the column means, divided by the square root of the
mean squared row norm): the step works on normalised inputs on both sides.

One training step: `opt.zero_grad(set_to_none=True)`, the forward pass, MSELoss + lam * reg with
reg = (sum_I ||W_I||_F^q)^(2/q), q = 2p/(p+1), lam = 0.01, p = 1 (a group lasso over the blocks;
interaction norms in closed form from r x r Gram matrices per output column), backward,
torch.optim.Adam step (its defaults, lr 1e-3). PyTorch runs in two variants, both timed:
  - per_block: one `torch.matmul` per (block, modality), x_m with W_m (d_m, h) or with the factor
    U_{I,m} (r, d_m, h), as the model is written;
  - concat: one matmul per modality with all its blocks' weights in one (d_m, C_m) parameter
    (h unimodal columns, then r h columns per interaction block), the blocks sliced from the
    product.
The faster of the two in each round is the reference. mmfuse runs `mmfuse bench lmf --train
--blocks pairs --relevance-p 1 --reg 0.01 --json` on the same cases (`BlockLmf::step_normalized`:
forward, loss, backward, the regulariser's gradient in closed form, one Adam step). Each figure is the median over timed calls after a warm-up (at least
`--runs` calls, more for fast cases so that each side is timed for about `--seconds`), and each
case runs `--rounds` times alternating the sides: the table shows the median over rounds of each
side's samples/s and the median of the per-round ratios mmfuse / fastest PyTorch (> 1: mmfuse is
faster) with their range, or one JSON object per case with `--json`. `--torch-only` times the
PyTorch side alone (no binary needed); `--check` first verifies that the two PyTorch variants
give the same loss and gradients on a small batch.

The machine's load disturbs both sides: run it on an otherwise idle machine (the table header
prints the load average), and repeat it to see the spread.

Set-up (once; nothing is committed):
    python3 -m venv target/peers-venv
    target/peers-venv/bin/pip install numpy torch
    cargo build --release
Run:
    target/peers-venv/bin/python benches/peers/block_lmf_peers.py [--json] [--runs 10] [--batch ...]
        [--torch-only] [--check]
"""
import argparse
import itertools
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
RANK, OUT_DIM = 8, 1
LAM, P = 0.01, 1.0
VARIANTS = ["per_block", "concat"]
BATCHES = [256, 4096]


def pairs(m):
    """Blocks `pairs`: the unimodal blocks, then every pair in lexicographic order."""
    return [(i,) for i in range(m)] + list(itertools.combinations(range(m), 2))


def regulariser(norms_sq, p=P):
    """(sum_I ||W_I||^q)^(2/q), q = 2p/(p+1), from the squared block norms."""
    q = 2 * p / (p + 1)
    return torch.stack(norms_sq).pow(q / 2).sum().pow(2 / q)


def interaction_norm_sq(w, factors):
    """||W_I||_F^2 = sum_k w^T (prod_m G_{m,k}) w, factors (r, d_m, h) each."""
    g = None
    for u in factors:
        gm = torch.einsum("iak,jak->kij", u, u)  # (h, r, r)
        g = gm if g is None else g * gm
    return torch.einsum("i,kij,j->", w, g, w)


class PerBlock(torch.nn.Module):
    """One parameter per (block, modality), one `torch.matmul` each."""

    def __init__(self, dims, blocks, rank, output_dim):
        super().__init__()
        self.blocks = blocks
        self.weights = torch.nn.ParameterList()  # per block: W_m, or U_{I,m} per member + w_I
        for b in blocks:
            if len(b) == 1:
                self.weights.append(torch.nn.Parameter(torch.randn(dims[b[0]], output_dim) * 0.1))
            else:
                for m in b:
                    self.weights.append(torch.nn.Parameter(torch.randn(rank, dims[m], output_dim) * 0.5))
                self.weights.append(torch.nn.Parameter(torch.randn(rank) / rank ** 0.5))
        self.bias = torch.nn.Parameter(torch.zeros(output_dim))

    def parts(self):
        """Per block: (W_m,) or (w_I, [U_{I,m} for m in I])."""
        out, j = [], 0
        for b in self.blocks:
            if len(b) == 1:
                out.append((self.weights[j],))
                j += 1
            else:
                out.append((self.weights[j + len(b)], list(self.weights[j:j + len(b)])))
                j += len(b) + 1
        return out

    def forward(self, xs):
        y = self.bias
        for b, part in zip(self.blocks, self.parts()):
            if len(b) == 1:
                y = y + torch.matmul(xs[b[0]], part[0])
            else:
                w, factors = part
                prod = None
                for m, u in zip(b, factors):
                    f = torch.matmul(xs[m], u)  # (r, B, h)
                    prod = f if prod is None else prod * f
                y = y + torch.tensordot(w, prod, dims=1)
        return y

    def reg(self):
        sq = []
        for b, part in zip(self.blocks, self.parts()):
            sq.append(part[0].pow(2).sum() if len(b) == 1 else interaction_norm_sq(*part))
        return regulariser(sq)


class Concat(torch.nn.Module):
    """One (d_m, C_m) parameter per modality: its unimodal block's h columns, then r h columns
    (rank-major) per interaction block it belongs to, in block order."""

    def __init__(self, dims, blocks, rank, output_dim):
        super().__init__()
        self.blocks, self.rank, self.h = blocks, rank, output_dim
        self.cols = {}  # (block index, modality) -> (first column, last column + 1)
        width = [0] * len(dims)
        for bi, b in enumerate(blocks):
            for m in b:
                c = output_dim if len(b) == 1 else rank * output_dim
                self.cols[(bi, m)] = (width[m], width[m] + c)
                width[m] += c
        self.mats = torch.nn.ParameterList([torch.nn.Parameter(torch.empty(d, c)) for d, c in zip(dims, width)])
        self.fusion = torch.nn.ParameterList()
        self.fusion_of = {}
        for bi, b in enumerate(blocks):
            if len(b) > 1:
                self.fusion_of[bi] = len(self.fusion)
                self.fusion.append(torch.nn.Parameter(torch.randn(rank) / rank ** 0.5))
        with torch.no_grad():
            for (bi, m), (a, e) in self.cols.items():
                self.mats[m][:, a:e].normal_(0, 0.1 if len(blocks[bi]) == 1 else 0.5)
        self.bias = torch.nn.Parameter(torch.zeros(output_dim))

    def factor(self, bi, m):
        """U_{I,m} as (d_m, r, h) (a view of the concatenated parameter)."""
        a, e = self.cols[(bi, m)]
        return self.mats[m][:, a:e].view(-1, self.rank, self.h)

    def forward(self, xs):
        z = [torch.matmul(x, w) for x, w in zip(xs, self.mats)]  # (B, C_m)
        y = self.bias
        for bi, b in enumerate(self.blocks):
            if len(b) == 1:
                a, e = self.cols[(bi, b[0])]
                y = y + z[b[0]][:, a:e]
            else:
                prod = None
                for m in b:
                    a, e = self.cols[(bi, m)]
                    f = z[m][:, a:e].view(-1, self.rank, self.h)  # (B, r, h)
                    prod = f if prod is None else prod * f
                y = y + torch.einsum("bih,i->bh", prod, self.fusion[self.fusion_of[bi]])
        return y

    def reg(self):
        sq = []
        for bi, b in enumerate(self.blocks):
            if len(b) == 1:
                a, e = self.cols[(bi, b[0])]
                sq.append(self.mats[b[0]][:, a:e].pow(2).sum())
            else:
                factors = [self.factor(bi, m).permute(1, 0, 2) for m in b]  # (r, d_m, h)
                sq.append(interaction_norm_sq(self.fusion[self.fusion_of[bi]], factors))
        return regulariser(sq)

    @torch.no_grad()
    def load_per_block(self, pb):
        """The parameters of a PerBlock model."""
        for bi, (b, part) in enumerate(zip(self.blocks, pb.parts())):
            if len(b) == 1:
                a, e = self.cols[(bi, b[0])]
                self.mats[b[0]][:, a:e].copy_(part[0])
            else:
                w, factors = part
                for m, u in zip(b, factors):
                    self.factor(bi, m).copy_(u.permute(1, 0, 2))
                self.fusion[self.fusion_of[bi]].copy_(w)
        self.bias.copy_(pb.bias)

    def grads_as_per_block(self):
        """The gradients in PerBlock's order and shapes."""
        out = []
        for bi, b in enumerate(self.blocks):
            if len(b) == 1:
                a, e = self.cols[(bi, b[0])]
                out.append(self.mats[b[0]].grad[:, a:e])
            else:
                for m in b:
                    a, e = self.cols[(bi, m)]
                    out.append(self.mats[m].grad[:, a:e].view(-1, self.rank, self.h).permute(1, 0, 2))
                out.append(self.fusion[self.fusion_of[bi]].grad)
        return out + [self.bias.grad]


MODELS = {"per_block": PerBlock, "concat": Concat}


def normalised_inputs(batch):
    """Uniform in [-0.5, 0.5), centred by the column means, divided by sqrt(mean ||x||^2)."""
    xs = []
    for d in DIMS:
        x = torch.rand(batch, d) - 0.5
        x = x - x.mean(0)
        xs.append((x / x.pow(2).sum(1).mean().sqrt()).contiguous())
    return xs


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


def torch_case(variant, batch, runs, seconds, seed=0):
    torch.manual_seed(seed)
    xs = normalised_inputs(batch)
    target = torch.rand(batch, OUT_DIM) - 0.5
    model = MODELS[variant](DIMS, pairs(len(DIMS)), RANK, OUT_DIM)
    model.train()
    loss_fn = torch.nn.MSELoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xs), target) + LAM * model.reg()
        loss.backward()
        opt.step()
        return loss

    return time_calls(step, runs, seconds)


def check(batch=64, tol=1e-5):
    """Both variants, same parameters: same loss and gradients (relative to each tensor's largest
    entry), float32."""
    torch.manual_seed(1)
    xs = normalised_inputs(batch)
    target = torch.rand(batch, OUT_DIM) - 0.5
    blocks = pairs(len(DIMS))
    pb = PerBlock(DIMS, blocks, RANK, OUT_DIM)
    with torch.no_grad():
        pb.bias.fill_(0.1)
    cc = Concat(DIMS, blocks, RANK, OUT_DIM)
    cc.load_per_block(pb)
    loss_fn = torch.nn.MSELoss()
    losses = []
    for model in (pb, cc):
        loss = loss_fn(model(xs), target) + LAM * model.reg()
        loss.backward()
        losses.append(loss.item())
    worst = abs(losses[0] - losses[1]) / abs(losses[0])
    ok = worst <= tol
    grads_pb = [p.grad for p in pb.weights] + [pb.bias.grad]
    for i, (a, b) in enumerate(zip(grads_pb, cc.grads_as_per_block())):
        assert a.shape == b.shape, (i, a.shape, b.shape)
        err = ((a - b).abs().max() / a.abs().max()).item()
        worst = max(worst, err)
        ok = ok and err <= tol
    print(f"# check (batch {batch}, float32): losses per_block {losses[0]!r} concat {losses[1]!r}, "
          f"reg {pb.reg().item():.6g}; largest relative difference {worst:.2e} "
          f"({'ok' if ok else 'FAILED'}, tolerance {tol:g})", file=sys.stderr)
    return ok


def mmfuse_case(binary, batch, runs):
    cmd = [binary, "bench", "lmf", "--train", "--blocks", "pairs", "--relevance-p", f"{P:g}",
           "--reg", f"{LAM:g}", "--batch", str(batch), "--rank", str(RANK), "--out-dim", str(OUT_DIM),
           "--dims", ",".join(map(str, DIMS)), "--threads", str(THREADS), "--runs", str(runs), "--json"]
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
    p.add_argument("--batch", type=int, action="append", default=None,
                   help=f"only this batch size (repeatable; default {BATCHES})")
    p.add_argument("--torch-only", action="store_true", help="time the PyTorch side only (no binary)")
    p.add_argument("--check", action="store_true",
                   help="first check that both PyTorch variants give the same loss and gradients")
    args = p.parse_args()
    if not args.torch_only and not os.path.exists(args.bin):
        sys.exit(f"{args.bin} not found: run `cargo build --release` first (or use --torch-only)")
    torch.set_num_threads(THREADS)
    if args.check and not check():
        sys.exit("the two PyTorch variants disagree")
    load = os.getloadavg()
    print(f"# threads={THREADS}; torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"dims={DIMS}; blocks pairs; r={RANK}; h={OUT_DIM}; lam={LAM:g}; p={P:g}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", file=sys.stderr)

    rows = []
    for batch in args.batch or BATCHES:
        # Rounds alternate the sides, so that a slow spell of a shared machine hits all of them;
        # the reported ratio is the median of the per-round ratios (mmfuse against the faster
        # PyTorch variant of that round), with their range.
        rounds = []
        for _ in range(max(1, args.rounds)):
            th = {v: torch_case(v, batch, args.runs, args.seconds) for v in VARIANTS}
            fastest = min(VARIANTS, key=lambda v: th[v][0])
            ours, cmd = None, None
            if not args.torch_only:
                # As many mmfuse calls as PyTorch's budget allows at mmfuse's speed, at least --runs.
                ours, cmd = mmfuse_case(args.bin, batch, args.runs)
                calls = max(args.runs, min(2000, int(args.seconds / max(ours["seconds_per_batch"], 1e-7))))
                if calls > args.runs:
                    ours, cmd = mmfuse_case(args.bin, batch, calls)
            ratio = th[fastest][0] / ours["seconds_per_batch"] if ours else None
            rounds.append({"torch": th, "fastest": fastest, "ours": ours, "cmd": cmd, "ratio": ratio})
        med = statistics.median
        row = {"mode": "train", "batch": batch, "rank": RANK, "out_dim": OUT_DIM, "dims": DIMS,
               "blocks": "pairs", "reg": LAM, "p": P, "threads": THREADS, "rounds": len(rounds)}
        for v in VARIANTS:
            s = med(r["torch"][v][0] for r in rounds)
            row[f"torch_{v}_seconds_per_batch"] = s
            row[f"torch_{v}_samples_per_second"] = batch / s
            row[f"torch_{v}_calls"] = rounds[0]["torch"][v][1]
        row["torch_fastest_rounds"] = [r["fastest"] for r in rounds]
        if not args.torch_only:
            s = med(r["ours"]["seconds_per_batch"] for r in rounds)
            ratios = sorted(r["ratio"] for r in rounds)
            row.update({
                "mmfuse_seconds_per_batch": s, "mmfuse_samples_per_second": batch / s,
                "mmfuse_gflops": med(r["ours"]["gflops"] for r in rounds),
                "faer_gemm_gflops": med(r["ours"]["gemm_gflops"] for r in rounds),
                "mmfuse_command": rounds[0]["cmd"],
                "ratio": med(ratios), "ratio_min": ratios[0], "ratio_max": ratios[-1],
            })
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print("| batch | mmfuse samples/s | PyTorch per_block samples/s | PyTorch concat samples/s | "
              "mmfuse / fastest PyTorch (range) |")
        print("|---|---|---|---|---|")
        for r in rows:
            ours = f"{r['mmfuse_samples_per_second']:.0f}" if "ratio" in r else "-"
            ratio = f"{r['ratio']:.2f}x ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})" if "ratio" in r else "-"
            print(f"| {r['batch']} | {ours} | {r['torch_per_block_samples_per_second']:.0f} | "
                  f"{r['torch_concat_samples_per_second']:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
