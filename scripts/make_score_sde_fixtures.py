"""Writes the committed fixtures that verify msgm_jax's import of score_sde_pytorch checkpoints.

Not part of the package and not run by the tests: it needs torch and a copy of
score_sde_pytorch (github.com/yang-song/score_sde_pytorch at commit PINNED_COMMIT), in a
separate virtual environment:

  python3.11 -m venv /work/torchvenv
  /work/torchvenv/bin/pip install torch==2.13.0 numpy ml_collections scipy
  git clone https://github.com/yang-song/score_sde_pytorch /work/ref/score_sde_pytorch
  git -C /work/ref/score_sde_pytorch checkout cb1f359f4aadf0ff9a5e122fe8fffc9451fd6e44
  /work/torchvenv/bin/python scripts/make_score_sde_fixtures.py --ref=/work/ref/score_sde_pytorch

score_sde_pytorch's `op` package compiles CUDA extensions when imported. This script puts a
replacement `op` module into sys.modules first, whose `upfirdn2d` (written here, plain torch:
zero insertion, padding / cropping, a depthwise convolution with the flipped kernel, striding)
computes what its CPU path `upfirdn2d_native` computes. Everything else is the reference code.

Not covered, because the reference cannot run them at the pinned commit: layerspp.Upsample
(NCSN++ with resblock_type="ddpm", and progressive="residual"). Without FIR it calls
F.interpolate(x, size, 'nearest'), which passes 'nearest' as scale_factor (ValueError); with
FIR, up_or_down_sampling.upsample_conv_2d starts with `w[..., ::-1, ::-1]`, a negative-step
slice that torch refuses. No released config uses them (their upsampling is BigGAN blocks' and
the output_skip pyramid's).

Each network is built by the reference's own constructor from a reduced config that keeps the
module types of the full-size one, then every parameter (biases, GroupNorm scales, the Fourier
features, zero-initialised output layers included) is moved away from its initialisation by
seeded noise, and the EMA copy by other noise. The values are put on a grid (integer codes
times a power of two per tensor), so the fixture stores int8 codes and is exact and small; the
reference computes in float32 with exactly those values. Inputs are fed as score_sde's
`models/utils.py:get_score_fn` feeds them: VP / sub-VP time labels 999 t, VE sigma(t).

Outputs (tests/fixtures/score_sde_torch/):
  <arch>.npz          codes of the model and EMA state dicts (in state-dict order), the config
                      the reference was built with, inputs, labels and both outputs;
  tiny_<arch>.pth     torch.save of {'optimizer', 'model' ('module.' prefix), 'ema', 'step'} as
                      score_sde's run_lib saves it, on 8x8x1 digits (Adam moments from three
                      real optimiser steps), for a DDPM++ (VP), a DDPM (VP) and an NCSN++ (VE,
                      as the CIFAR-10 config); each with tiny_<arch>_io.npz, its inputs and
                      outputs (tiny_<arch>_config.py, the msgm_jax config, is written by hand);
  full_size_names.json  name -> shape of the full-size CIFAR-10 DDPM, DDPM++ and NCSN++ state
                      dicts (the tests check that the mapping covers every tensor).
With --only=<names> (comma-separated fixture names; 'tiny' = the three tiny files), writes only
those (and not full_size_names.json). With --full_size=<path>, also writes a full-size NCSN++
CIFAR-10 checkpoint (not committed) for measuring the import.
"""

import argparse
import json
import os
import sys
import types

import ml_collections
import numpy as np
import torch
import torch.nn.functional as F

PINNED_COMMIT = "cb1f359f4aadf0ff9a5e122fe8fffc9451fd6e44"
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "score_sde_torch")


def upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
  """x [N, C, H, W]; 2-D kernel; zero-insert `up`, pad pad[0] before / pad[1] after (negative
  crops), true convolution with `kernel`, keep every `down`-th pixel."""
  n, c, h, w = x.shape
  if up > 1:
    z = x.new_zeros((n, c, h * up, w * up))
    z[:, :, ::up, ::up] = x
    x = z
  p0, p1 = pad
  x = F.pad(x, [p0, p1, p0, p1])  # negative values crop
  k = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
  return F.conv2d(x, k, stride=down, groups=c)


def import_reference(ref: str):
  op = types.ModuleType("op")
  op.upfirdn2d = upfirdn2d
  sys.modules["op"] = op
  sys.path.insert(0, ref)
  from models import ddpm, ncsnpp  # noqa: F401  (register the models)
  from models import utils as mutils
  return mutils


def base_config(name: str, image_size: int, channels: int, centered: bool, continuous=True):
  c = ml_collections.ConfigDict()
  c.training = ml_collections.ConfigDict(dict(continuous=continuous))
  c.data = ml_collections.ConfigDict(dict(image_size=image_size, num_channels=channels,
                                          centered=centered))
  c.model = ml_collections.ConfigDict(dict(
      name=name, nonlinearity="swish", nf=8, ch_mult=(1, 2), num_res_blocks=1,
      attn_resolutions=(8,), dropout=0.0, resamp_with_conv=True, conditional=True,
      scale_by_sigma=False, sigma_min=0.01, sigma_max=50.0, num_scales=1000, fir=False,
      fir_kernel=(1, 3, 3, 1), skip_rescale=True, resblock_type="biggan", progressive="none",
      progressive_input="none", progressive_combine="sum", embedding_type="positional",
      init_scale=0.0, fourier_scale=16, conv_size=3))
  c.device = "cpu"
  return c


def variants():
  """The reduced networks: every module type the full-size configs use, and the options."""
  out = {}
  c = base_config("ddpm", 16, 3, centered=True)  # torch's DDPM has 32 groups: nf = 32
  c.model.update(dict(nf=32, ch_mult=(1, 1)))
  out["ddpm"] = (c, "vp")
  c = base_config("ncsnpp", 16, 3, centered=False)  # NCSN++ (VE) as the CIFAR-10 config
  c.model.update(dict(fir=True, progressive="output_skip", progressive_input="residual",
                      embedding_type="fourier", scale_by_sigma=True))
  out["ncsnpp"] = (c, "ve")
  c = base_config("ncsnpp", 16, 3, centered=False)  # input_skip, 'cat', deeper
  c.model.update(dict(fir=True, progressive="output_skip", progressive_input="input_skip",
                      progressive_combine="cat", embedding_type="fourier",
                      scale_by_sigma=True, num_res_blocks=2))
  out["ncsnpp_input_skip"] = (c, "ve")
  c = base_config("ncsnpp", 16, 3, centered=True)  # DDPM++ (VP) as the CIFAR-10 config
  out["ddpmpp"] = (c, "vp")
  return out


def on_grid(v: np.ndarray):
  """-> (int8 codes, exponent e): v ~ codes * 2**e with |codes| <= 31 (few bits: compresses)."""
  peak = float(np.max(np.abs(v))) or 1.0
  e = int(np.ceil(np.log2(peak / 31.0)))
  codes = np.clip(np.round(v / 2.0**e), -31, 31).astype(np.int8)
  return codes, e


def perturbed(state, rng):
  """state dict -> {name: (codes, e)}: each tensor plus seeded noise of its own scale."""
  out = {}
  for name, t in state.items():
    if name.endswith("sigmas"):  # a buffer computed from the config, not a weight
      continue
    v = t.detach().numpy().astype(np.float64)
    scale = max(float(v.std()) if v.size > 1 else 0.0, 0.05)
    out[name] = on_grid(v + rng.normal(0.0, scale, v.shape))
  return out


def load_codes(model, codes):
  values = {k: torch.tensor(c.astype(np.float32) * np.float32(2.0**e)) for k, (c, e) in
            codes.items()}
  missing = set(model.state_dict()) - set(values) - {"sigmas"}
  assert not missing, missing
  with torch.no_grad():
    for name, p in model.named_parameters():
      p.copy_(values[name])
  return values


def inputs(c, sde: str, rng, batch=3):
  shape = (batch, c.data.num_channels, c.data.image_size, c.data.image_size)
  x = rng.uniform(-1.0 if c.data.centered else 0.0, 1.0, shape).astype(np.float32)
  t = np.array([0.05, 0.4, 0.9][:batch], np.float32)
  if sde == "ve":
    labels = c.model.sigma_min * (c.model.sigma_max / c.model.sigma_min)**t
  else:
    labels = 999.0 * t
  return x, labels.astype(np.float32)


def run(model, x, labels):
  with torch.no_grad():
    return model(torch.tensor(x), torch.tensor(labels)).numpy()


def make_variant(mutils, name, c, sde, seed):
  torch.manual_seed(seed)
  rng = np.random.default_rng(seed)
  model = mutils.get_model(c.model.name)(c).eval()
  state = model.state_dict()
  model_codes = perturbed(state, rng)
  ema_codes = perturbed(state, rng)
  for n, p in model.named_parameters():  # score_sde's EMA skips these (copy_to too)
    if not p.requires_grad:
      ema_codes[n] = model_codes[n]
  x, labels = inputs(c, sde, rng)
  load_codes(model, model_codes)
  out_model = run(model, x, labels)
  load_codes(model, ema_codes)
  out_ema = run(model, x, labels)
  arrays = {"x": x, "labels": labels, "out_model": out_model, "out_ema": out_ema,
            "names": np.array(list(model_codes)), "config": np.array(c.to_json()),
            "sde": np.array(sde), "commit": np.array(PINNED_COMMIT)}
  # One array per weight set (few zip members): codes concatenated in state-dict order.
  for tag, codes in (("model", model_codes), ("ema", ema_codes)):
    arrays[f"{tag}_codes"] = np.concatenate([c.reshape(-1) for c, _ in codes.values()])
    arrays[f"{tag}_exponents"] = np.array([e for _, e in codes.values()], np.int32)
  arrays["shapes"] = np.array(json.dumps([list(c.shape) for c, _ in model_codes.values()]))
  np.savez_compressed(os.path.join(OUT, f"{name}.npz"), **arrays)
  n = sum(p.numel() for p in model.parameters())
  print(f"{name}: {n} parameters, |out| {np.abs(out_model).mean():.3g}")


WITHOUT_OPTIMIZER = ("tiny_ddpm",)  # the largest file; the other two keep their Adam moments


def tiny_variants():
  """The networks of the tiny torch.save files (8x8x1 digits): name -> (config, sde, seed)."""
  out = {}
  c = base_config("ncsnpp", 8, 1, centered=True)  # DDPM++ (VP)
  c.model.update(dict(nf=4, attn_resolutions=(4,)))
  out["tiny_ddpmpp"] = (c, "vp", 3)
  # DDPM (VP). torch's DDPM has 32 groups (nf >= 32) and msgm_jax needs num_res_blocks >= 1,
  # so this is the smallest: one level (no resampling; the ddpm variant has it), one block,
  # attention only in the middle: 162,177 parameters. Saved without its optimizer (1.35 MB
  # instead of 2.7 MB): the CLI import of a file without Adam moments is tested with it.
  c = base_config("ddpm", 8, 1, centered=True)
  c.model.update(dict(nf=32, ch_mult=(1,), attn_resolutions=()))
  out["tiny_ddpm"] = (c, "vp", 4)
  c = base_config("ncsnpp", 8, 1, centered=False)  # NCSN++ (VE) as the CIFAR-10 config
  c.model.update(dict(nf=4, attn_resolutions=(4,), fir=True, progressive="none",
                      progressive_input="residual", embedding_type="fourier",
                      scale_by_sigma=True))
  out["tiny_ncsnpp"] = (c, "ve", 5)
  return out


def tiny_pth(mutils, name, c, sde, seed):
  """A real torch.save checkpoint in score_sde's layout, <name>.pth, and <name>_io.npz."""
  from models.ema import ExponentialMovingAverage
  torch.manual_seed(seed)
  rng = np.random.default_rng(seed)
  model = mutils.get_model(c.model.name)(c)
  load_codes(model, perturbed(model.state_dict(), rng))
  ema = ExponentialMovingAverage(model.parameters(), decay=0.999)
  opt = torch.optim.Adam(model.parameters(), lr=1e-3)
  shape = (4, c.data.num_channels, c.data.image_size, c.data.image_size)
  for _ in range(3):  # real Adam moments and EMA shadows that differ from the model
    opt.zero_grad()
    x = torch.randn(*shape)
    if sde == "ve":
      labels = c.model.sigma_min * (c.model.sigma_max / c.model.sigma_min)**torch.rand(4)
    else:
      labels = torch.rand(4) * 999
    loss = (model(x, labels) ** 2).mean()
    loss.backward()
    opt.step()
    ema.update(model.parameters())
  model = model.eval()
  dp = torch.nn.DataParallel(model)
  state = {"optimizer": opt.state_dict(), "model": dp.state_dict(), "ema": ema.state_dict(),
           "step": 3}
  if name in WITHOUT_OPTIMIZER:
    del state["optimizer"]
  torch.save(state, os.path.join(OUT, f"{name}.pth"))
  x, labels = inputs(c, sde, rng)
  out_model = run(model, x, labels)
  ema.copy_to(model.parameters())
  out_ema = run(model, x, labels)
  np.savez(os.path.join(OUT, f"{name}_io.npz"), x=x, labels=labels, out_model=out_model,
           out_ema=out_ema, config=np.array(c.to_json()))
  print(f"{name}.pth: {sum(p.numel() for p in model.parameters())} parameters")


def full_size_configs():
  out = {}
  c = base_config("ddpm", 32, 3, centered=True)
  c.model.update(dict(nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                      dropout=0.1))
  out["ddpm"] = c
  c = base_config("ncsnpp", 32, 3, centered=True)
  c.model.update(dict(nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4, attn_resolutions=(16,),
                      dropout=0.1))
  out["ddpmpp"] = c
  c = base_config("ncsnpp", 32, 3, centered=False)
  c.model.update(dict(nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4, attn_resolutions=(16,),
                      dropout=0.1, fir=True, progressive="none",
                      progressive_input="residual", embedding_type="fourier",
                      scale_by_sigma=True))  # as score_sde's configs/ve/cifar10_ncsnpp_continuous.py
  out["ncsnpp"] = c
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--ref", default="/work/ref/score_sde_pytorch")
  parser.add_argument("--full_size", default="", help="also write a full-size NCSN++ .pth here")
  parser.add_argument("--only", default="", help="comma-separated names (e.g. tiny_ddpm,"
                      "tiny_ncsnpp; 'tiny' = the three tiny files): write only these")
  args = parser.parse_args()
  mutils = import_reference(args.ref)
  os.makedirs(OUT, exist_ok=True)
  only = set(args.only.split(",")) - {""}
  if "tiny" in only:
    only = (only - {"tiny"}) | set(tiny_variants())
  for i, (name, (c, sde)) in enumerate(variants().items()):
    if not only or name in only:
      make_variant(mutils, name, c, sde, seed=10 + i)
  for name, (c, sde, seed) in tiny_variants().items():
    if not only or name in only:
      tiny_pth(mutils, name, c, sde, seed)
  if only:
    return
  tables = {}
  for name, c in full_size_configs().items():
    model = mutils.get_model(c.model.name)(c)
    tables[name] = {"config": json.loads(c.to_json()),
                    "state_dict": {k: list(v.shape) for k, v in model.state_dict().items()}}
    if name == "ncsnpp" and args.full_size:
      ema = {"decay": 0.999, "num_updates": 1000,
             "shadow_params": [p.detach().clone() + 0.01 for p in model.parameters()
                               if p.requires_grad], "collected_params": []}
      opt = torch.optim.Adam(model.parameters(), lr=2e-4)
      model(torch.rand(2, 3, 32, 32), torch.rand(2) + 0.1).mean().backward()
      opt.step()
      torch.save({"optimizer": opt.state_dict(),
                  "model": torch.nn.DataParallel(model).state_dict(), "ema": ema,
                  "step": 1000}, args.full_size)
      print(f"full size: {sum(p.numel() for p in model.parameters())} parameters -> "
            f"{args.full_size}")
  with open(os.path.join(OUT, "full_size_names.json"), "w") as f:
    json.dump(tables, f, indent=1)


if __name__ == "__main__":
  main()
