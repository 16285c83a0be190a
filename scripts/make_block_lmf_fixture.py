#!/usr/bin/env python3
"""Writes the PyTorch reference fixture of the block LMF tests (docs/design.md section 8) into
tests/fixtures/:

- block_lmf_torch.safetensors: the model in mmfuse's block LMF layout (float32): unimodal block
  `<m>.<m>` (d_m, h); interaction factors `<block>.<m>` (r, d_m, h) and `<block>.fusion_weights`
  (r,); `bias` (h,); normalisation statistics `stats.<m>.mean` (d_m,) and `stats.<m>.scale` (1,).
  Metadata: one key `mmfuse_block_lmf`, a JSON object (format "mmfuse-block-lmf", version 1,
  modalities, dims, blocks in block order, rank, out_dim, p as a string, dtype "f32"). Modalities
  visual, audio, text with 5, 3, 4 features; r = 3, h = 2; blocks `all` (visual, audio, text,
  visual*audio, visual*text, audio*text, visual*audio*text); p = "1";
- block_lmf_x_visual.npy, block_lmf_x_audio.npy, block_lmf_x_text.npy: inputs (N = 7 rows x d_m,
  float32, offset from the statistics' means, so that the normalisation matters);
- block_lmf_target.npy: regression targets (N x h, float32);
  block_lmf_labels.npy: class labels (N, int64, in 0..h-1);
- block_lmf_output.npy: the model's outputs on the inputs (N x h, float64: computed in float64
  from the float32 parameters and inputs, an accurate reference);
- block_lmf_norms.npy: the Frobenius norms of the 7 blocks in block order (float64);
- block_lmf_grads.safetensors: float64 gradients, with respect to every parameter (same names and
  shapes, statistics excluded), of two objectives evaluated in float64 from the same float32
  values: `mse/<name>` of MSELoss(output, target) + lam * reg and `xent/<name>` of
  CrossEntropyLoss(output, labels) + lam * reg, where reg = (sum_I ||W_I||_F^q)^(2/q),
  q = 2p/(p+1), lam = 0.01, p = 1 (q = 1). Metadata (repr of Python floats): "mse_loss" and
  "xent_loss" (the objectives, regulariser included), "reg" (reg without lam), "lam", "p".

The model: xn_m = (x_m - mean_m) / scale_m; a unimodal block is xn_m @ W_m; an interaction block I
is sum_i w_I[i] prod_{m in I} (xn_m @ U_{I,m}[i]) (one `torch.matmul` per member, the product,
then the weighted sum over the rank); y = sum of the blocks + bias. The norm of an interaction
block is taken in closed form, ||W_I||_F^2 = sum_k w^T (prod_{m in I} G_{m,k}) w with
G_{m,k}[i, j] = <U_{I,m}[i][:, k], U_{I,m}[j][:, k]>, so autograd differentiates the closed form;
the script asserts that it equals the norm of the materialised tensor W_I (`torch.einsum`), and
that the regulariser's gradients agree both ways. Run once (the files are committed):
    target/peers-venv/bin/pip install safetensors   # if missing
    target/peers-venv/bin/python scripts/make_block_lmf_fixture.py
"""
import itertools
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

torch.manual_seed(20240815)
torch.set_num_threads(1)

NAMES = ["visual", "audio", "text"]
DIMS = [5, 3, 4]
RANK, OUT_DIM, N = 3, 2, 7
LAM, P = 0.01, 1.0
P_STR = "1"
Q = 2 * P / (P + 1)

# Blocks `all`: unimodal in modality order, then by size, lexicographic in member indices.
BLOCKS = [(m,) for m in range(len(NAMES))]
for size in range(2, len(NAMES) + 1):
    BLOCKS += list(itertools.combinations(range(len(NAMES)), size))
BLOCK_NAMES = ["*".join(NAMES[m] for m in b) for b in BLOCKS]


def draw_parameters():
    """Float32 parameters and statistics, keyed by their tensor names (in file order)."""
    params = {}
    for b, name in zip(BLOCKS, BLOCK_NAMES):
        if len(b) == 1:
            params[f"{name}.{name}"] = torch.randn(DIMS[b[0]], OUT_DIM) * 0.5
        else:
            for m in b:
                params[f"{name}.{NAMES[m]}"] = torch.randn(RANK, DIMS[m], OUT_DIM) * 0.3
            params[f"{name}.fusion_weights"] = torch.randn(RANK)
    params["bias"] = torch.randn(OUT_DIM) * 0.5
    stats = {}
    for name, d in zip(NAMES, DIMS):
        stats[f"stats.{name}.mean"] = torch.randn(d)
        stats[f"stats.{name}.scale"] = 0.5 + 1.5 * torch.rand(1)
    return params, stats


def forward(params, stats, xs):
    xn = [(x - stats[f"stats.{n}.mean"]) / stats[f"stats.{n}.scale"] for n, x in zip(NAMES, xs)]
    y = params["bias"].expand(xs[0].shape[0], OUT_DIM)
    for b, name in zip(BLOCKS, BLOCK_NAMES):
        if len(b) == 1:
            y = y + xn[b[0]] @ params[f"{name}.{name}"]
        else:
            prod = None
            for m in b:
                f = torch.matmul(xn[m], params[f"{name}.{NAMES[m]}"])  # (r, N, h)
                prod = f if prod is None else prod * f
            y = y + torch.tensordot(params[f"{name}.fusion_weights"], prod, dims=1)
    return y


def block_norms(params):
    """||W_I||_F per block: closed form for the interactions (Gram matrices per output column)."""
    norms = []
    for b, name in zip(BLOCKS, BLOCK_NAMES):
        if len(b) == 1:
            norms.append(params[f"{name}.{name}"].pow(2).sum().sqrt())
            continue
        g = None
        for m in b:
            u = params[f"{name}.{NAMES[m]}"]
            gm = torch.einsum("iak,jak->kij", u, u)  # (h, r, r)
            g = gm if g is None else g * gm
        w = params[f"{name}.fusion_weights"]
        norms.append(torch.einsum("i,kij,j->", w, g, w).sqrt())
    return torch.stack(norms)


def materialised_norms(params):
    """||W_I||_F per block from the full tensor W_I[a_1, .., a_|I|, k]."""
    letters = "abcdefgh"
    norms = []
    for b, name in zip(BLOCKS, BLOCK_NAMES):
        if len(b) == 1:
            norms.append(params[f"{name}.{name}"].pow(2).sum().sqrt())
            continue
        ins = ["i"] + [f"i{letters[j]}k" for j in range(len(b))]
        expr = ",".join(ins) + "->" + letters[: len(b)] + "k"
        ops = [params[f"{name}.fusion_weights"]] + [params[f"{name}.{NAMES[m]}"] for m in b]
        norms.append(torch.einsum(expr, *ops).pow(2).sum().sqrt())
    return torch.stack(norms)


def regulariser(norms):
    return norms.pow(Q).sum().pow(2 / Q)


params32, stats32 = draw_parameters()
# Inputs away from the statistics' means (and off zero), so that centring and scaling matter.
xs32 = [torch.randn(N, d) + 1.0 for d in DIMS]
target32 = torch.randn(N, OUT_DIM)
labels = torch.randint(0, OUT_DIM, (N,), dtype=torch.int64)

out_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures")

header = {
    "format": "mmfuse-block-lmf", "version": 1, "modalities": NAMES, "dims": DIMS,
    "blocks": BLOCK_NAMES, "rank": RANK, "out_dim": OUT_DIM, "p": P_STR, "dtype": "f32",
}
model = {k: v.contiguous() for k, v in {**params32, **stats32}.items()}
save_file(model, os.path.join(out_dir, "block_lmf_torch.safetensors"),
          metadata={"mmfuse_block_lmf": json.dumps(header, separators=(",", ":"))})
for name, x in zip(NAMES, xs32):
    np.save(os.path.join(out_dir, f"block_lmf_x_{name}.npy"), x.numpy())
np.save(os.path.join(out_dir, "block_lmf_target.npy"), target32.numpy())
np.save(os.path.join(out_dir, "block_lmf_labels.npy"), labels.numpy())

# Everything below in float64, from the float32 values (exactly representable).
stats = {k: v.double() for k, v in stats32.items()}
xs = [x.double() for x in xs32]
target = target32.double()
with torch.no_grad():
    params = {k: v.double() for k, v in params32.items()}
    output = forward(params, stats, xs)
    norms = block_norms(params)
    full = materialised_norms(params)
    assert torch.allclose(norms, full, rtol=1e-12, atol=0), (norms, full)
np.save(os.path.join(out_dir, "block_lmf_output.npy"), output.numpy())
np.save(os.path.join(out_dir, "block_lmf_norms.npy"), norms.numpy())


def objective(loss_fn, t, norm_fn=block_norms):
    """(objective value, regulariser value, gradients) in float64."""
    ps = {k: v.double().requires_grad_(True) for k, v in params32.items()}
    reg = regulariser(norm_fn(ps))
    loss = loss_fn(forward(ps, stats, xs), t) + LAM * reg
    names = list(ps)
    grads = torch.autograd.grad(loss, [ps[k] for k in names])
    return loss.item(), reg.item(), dict(zip(names, grads))


mse_loss, reg, mse_grads = objective(torch.nn.MSELoss(), target)
xent_loss, _, xent_grads = objective(torch.nn.CrossEntropyLoss(), labels)
# The closed form's gradients are those of the materialised norms.
_, reg_full, full_grads = objective(torch.nn.MSELoss(), target, materialised_norms)
assert abs(reg - reg_full) <= 1e-12 * abs(reg_full), (reg, reg_full)
for k, g in mse_grads.items():
    assert torch.allclose(g, full_grads[k], rtol=1e-10, atol=1e-12), k

grads = {f"mse/{k}": g.contiguous() for k, g in mse_grads.items()}
grads.update({f"xent/{k}": g.contiguous() for k, g in xent_grads.items()})
save_file(grads, os.path.join(out_dir, "block_lmf_grads.safetensors"), metadata={
    "mse_loss": repr(mse_loss), "xent_loss": repr(xent_loss), "reg": repr(reg),
    "lam": repr(LAM), "p": P_STR,
})
print("wrote", out_dir, "torch", torch.__version__)
print("blocks", BLOCK_NAMES)
print("norms", norms.tolist())
print("output", output.tolist())
print("mse_loss", mse_loss, "xent_loss", xent_loss, "reg", reg)
