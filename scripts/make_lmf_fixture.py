#!/usr/bin/env python3
"""Writes the PyTorch reference fixture of the LMF tests (tests/lmf.rs) into tests/fixtures/:

- lmf_torch.safetensors: the fusion module's state_dict as PyTorch saves it
  (`safetensors.torch.save_file`, keys `<modality>_factor` (r, d+1, h), `fusion_weights` (1, r),
  `fusion_bias` (1, h), float32, no metadata: loading it needs the modality order explicitly);
- lmf_visual.npy, lmf_audio.npy, lmf_text.npy: inputs (N x d_m, float32);
- lmf_target.npy: targets (N x h); lmf_output.npy: the module's outputs on the inputs;
- lmf_grads.safetensors: the gradients of MSELoss(output, target) (same names and shapes as the
  parameters; metadata "loss" = the loss value, repr of a Python float);
- lmf_adam3.safetensors: the parameters after 3 steps of torch.optim.Adam(lr=1e-2) on that loss,
  full batch (metadata "losses" = the 3 losses before each step, comma-separated).

The module is the fusion part of the LMF reference (Liu et al. 2018, github.com/Justin1904/
Low-rank-Multimodal-Fusion, `LMF.forward` after the sub-networks): a column of ones prepended,
`torch.matmul` with each factor, the product over modalities in order, then
`fusion_weights @ fusion_zy.permute(1, 0, 2)` plus the bias. Run once (the files are committed):
    target/peers-venv/bin/pip install safetensors   # if missing
    target/peers-venv/bin/python scripts/make_lmf_fixture.py
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file

torch.manual_seed(20240607)
torch.set_num_threads(1)

NAMES = ["visual", "audio", "text"]
DIMS = [5, 3, 4]
RANK, OUT_DIM, N = 3, 2, 7


class LMFFusion(torch.nn.Module):
    def __init__(self, names, dims, rank, output_dim):
        super().__init__()
        self.names = list(names)
        self.output_dim = output_dim
        for name, d in zip(names, dims):
            setattr(self, f"{name}_factor", torch.nn.Parameter(torch.empty(rank, d + 1, output_dim)))
        self.fusion_weights = torch.nn.Parameter(torch.empty(1, rank))
        self.fusion_bias = torch.nn.Parameter(torch.empty(1, output_dim))
        for name in self.names:
            torch.nn.init.xavier_normal_(getattr(self, f"{name}_factor"))
        torch.nn.init.xavier_normal_(self.fusion_weights)
        self.fusion_bias.data.fill_(0)

    def forward(self, *xs):
        batch_size = xs[0].shape[0]
        fusion_zy = None
        for name, x in zip(self.names, xs):
            _x = torch.cat((torch.ones(batch_size, 1, dtype=x.dtype), x), dim=1)
            f = torch.matmul(_x, getattr(self, f"{name}_factor"))
            fusion_zy = f if fusion_zy is None else fusion_zy * f
        output = torch.matmul(self.fusion_weights, fusion_zy.permute(1, 0, 2)).squeeze() + self.fusion_bias
        return output.view(-1, self.output_dim)


model = LMFFusion(NAMES, DIMS, RANK, OUT_DIM)
# A non-zero bias, so that loading and using it is tested too.
with torch.no_grad():
    model.fusion_bias.copy_(torch.randn(1, OUT_DIM) * 0.1)
xs = [torch.randn(N, d) for d in DIMS]
target = torch.randn(N, OUT_DIM)

out_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures")


def state():
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


save_file(state(), os.path.join(out_dir, "lmf_torch.safetensors"))
for name, x in zip(NAMES, xs):
    np.save(os.path.join(out_dir, f"lmf_{name}.npy"), x.numpy())
np.save(os.path.join(out_dir, "lmf_target.npy"), target.numpy())
with torch.no_grad():
    model.eval()
    np.save(os.path.join(out_dir, "lmf_output.npy"), model(*xs).numpy())
model.train()

loss_fn = torch.nn.MSELoss()
loss = loss_fn(model(*xs), target)
loss.backward()
grads = {k: p.grad.detach().clone().contiguous() for k, p in model.named_parameters()}
save_file(grads, os.path.join(out_dir, "lmf_grads.safetensors"), metadata={"loss": repr(loss.item())})

model.zero_grad()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
losses = []
for _ in range(3):
    opt.zero_grad()
    loss = loss_fn(model(*xs), target)
    losses.append(loss.item())
    loss.backward()
    opt.step()
save_file(state(), os.path.join(out_dir, "lmf_adam3.safetensors"), metadata={"losses": ",".join(repr(v) for v in losses)})
print("wrote", out_dir, "torch", torch.__version__, "losses", losses)
