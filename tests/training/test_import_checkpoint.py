"""Importing score_sde_pytorch checkpoints, checked against the reference networks' outputs.

The fixtures (tests/fixtures/score_sde_torch/, written by scripts/make_score_sde_fixtures.py
with torch and score_sde_pytorch at a pinned commit; no torch here) hold seeded weights moved
away from their initialisation (model and EMA differ), inputs, labels as score_sde feeds them
(VP: 999 t; VE: sigma) and the reference's outputs for both weight sets.
"""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from msgm_jax import trained
from msgm_jax.training import import_checkpoint
from msgm_jax.training import torch_pickle
from msgm_jax.models import from_torch, model_from_config
from tests.helpers import ROOT, run_cli

FIX = os.path.join(ROOT, "tests", "fixtures", "score_sde_torch")
TINY_PTH = os.path.join(FIX, "tiny_ddpmpp.pth")
# Real torch.save files (score_sde's run_lib layout, Adam moments of three steps; tiny_ddpm
# without its optimizer, the largest file: its import starts a fresh optimizer) imported
# through the CLI: DDPM (VP), DDPM++ (VP), NCSN++ (VE); each with <name>_config.py, _io.npz.
TINY = ["tiny_ddpm", "tiny_ddpmpp", "tiny_ncsnpp"]
ARCHS = ["ddpm", "ncsnpp", "ncsnpp_input_skip", "ddpmpp"]


def _fixture(name):
  """-> (torch config, OrderedDict-like model / EMA state dicts, x NHWC, labels, outputs)."""
  z = np.load(os.path.join(FIX, name + ".npz"))
  config = ml_collections.ConfigDict(json.loads(str(z["config"])))
  names, shapes = [str(n) for n in z["names"]], json.loads(str(z["shapes"]))

  def decode(tag):
    codes, exps, out, o = z[tag + "_codes"], z[tag + "_exponents"], {}, 0
    for n, s, e in zip(names, shapes, exps):
      k = int(np.prod(s))
      out[n] = (codes[o:o + k].astype(np.float32) * np.float32(2.0**e)).reshape(s)
      o += k
    return out

  nhwc = lambda a: np.transpose(a, (0, 2, 3, 1))
  return (config, decode("model"), decode("ema"), nhwc(z["x"]), z["labels"],
          nhwc(z["out_model"]), nhwc(z["out_ema"]))


def _network(config):
  model = dict(config.model)
  if model["name"] == "ddpm":
    model["num_groups"] = 32  # the reference's DDPM always has 32 groups
  shape = (config.data.image_size, config.data.image_size, config.data.num_channels)
  return model_from_config(ml_collections.ConfigDict(model), data_shape=shape,
                           centered=config.data.centered), shape


def _rel(out, ref):
  return float(np.max(np.abs(np.asarray(out) - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("name", ARCHS)
def test_outputs_match_the_reference_network(name):
  config, model_sd, ema_sd, x, labels, out_model, out_ema = _fixture(name)
  net, shape = _network(config)
  mapping = from_torch.Mapping(net, shape)
  # score_sde's layout: DataParallel prefix, sigmas buffer, EMA shadows in parameters() order
  # without the Fourier features (they take no gradient).
  names = list(model_sd)
  file = {"model": {"module.sigmas": np.zeros(3, np.float32),
                    **{"module." + k: v for k, v in model_sd.items()}},
          "ema": {"decay": 0.999, "num_updates": 7,
                  "shadow_params": [ema_sd[k] for k in names if k not in mapping.frozen]},
          "step": 7}
  source = import_checkpoint.split_layout(file)
  assert source.step == 7 and list(source.model)[1:] == names
  mapping.check_names(list(source.model))
  apply = jax.jit(lambda v, x, l: net.apply(v, x, l, train=False))
  assert _rel(apply(mapping.tree(source.model), x, labels), out_model) < 1e-4
  ema = import_checkpoint.ema_tensors(source, mapping)
  assert _rel(apply(mapping.tree(ema), x, labels), out_ema) < 1e-4
  # A wrong mapping would fail: the two weight sets give different outputs.
  assert _rel(out_model, out_ema) > 1e-2


def test_the_mapping_covers_every_full_size_tensor():
  """The full-size CIFAR-10 state dicts (names and shapes from the reference) map one to one
  onto the networks of configs/vp/cifar10_ddpm_continuous.py, .../cifar10_ddpmpp_continuous.py
  and configs/ve/cifar10_ncsnpp_continuous.py."""
  tables = json.load(open(os.path.join(FIX, "full_size_names.json")))
  counts = {}
  for name, table in tables.items():
    net, shape = _network(ml_collections.ConfigDict(table["config"]))
    mapping = from_torch.Mapping(net, shape)
    sd = table["state_dict"]
    mapping.check_names(list(sd))
    for k, s in sd.items():
      if k != "sigmas":
        want = mapping.shapes[k]
        assert from_torch.to_flax(mapping.kind(k), np.zeros(s, np.int8)).shape == want, k
    counts[name] = sum(int(np.prod(s)) for k, s in sd.items() if k != "sigmas")
    assert counts[name] == sum(int(np.prod(s)) for s in mapping.shapes.values())
  assert counts == {"ddpm": 35218947, "ddpmpp": 61804419, "ncsnpp": 62758915}


def test_mismatches_and_unknown_layouts_are_one_line_errors():
  config, model_sd, _, *_ = _fixture("ncsnpp")
  net, shape = _network(config)
  mapping = from_torch.Mapping(net, shape)
  bad = dict(model_sd)
  bad["all_modules.3.weight"] = np.zeros((8, 1, 3, 3), np.float32)  # the input conv, 1 channel
  with pytest.raises(from_torch.LayoutMismatch,
                     match=r"tensor all_modules.3.weight has shape \(8, 1, 3, 3\).*needs "
                           r"\(3, 3, 3, 8\); likely differs: data.num_channels"):
    mapping.tree(bad)
  config.model.num_res_blocks = 2
  with pytest.raises(from_torch.LayoutMismatch, match="model.num_res_blocks"):
    from_torch.Mapping(*_network(config)).check_names(list(model_sd))
  with pytest.raises(import_checkpoint.UnknownLayout,
                     match=r"holds a dict with keys 'state', 'params'.*expected score_sde"):
    import_checkpoint.split_layout({"state": 1, "params": 2})
  with pytest.raises(import_checkpoint.UnknownLayout, match=r"keys \['lr_sched'\] besides"):
    import_checkpoint.split_layout({"model": {"all_modules.0.W": np.zeros(2)}, "lr_sched": 0})


def test_reads_score_sdes_checkpoint_layout_saved_by_torch():
  state = torch_pickle.load(TINY_PTH)
  assert sorted(state) == ["ema", "model", "optimizer", "step"] and state["step"] == 3
  assert list(state["model"])[0] == "module.sigmas"
  group = state["optimizer"]["param_groups"][0]
  assert group["betas"] == (0.9, 0.999) and group["amsgrad"] is False
  assert len(state["ema"]["shadow_params"]) == len(group["params"]) == len(state["model"]) - 1


def _tiny(name):
  return os.path.join(FIX, name + ".pth"), os.path.join(FIX, name + "_config.py")


@pytest.fixture(scope="module")
def imported(request, tmp_path_factory):
  name = request.param
  pth, config = _tiny(name)
  workdir = str(tmp_path_factory.mktemp("imported_" + name))
  out = run_cli(f"--config={config}", f"--workdir={workdir}", "--mode=import",
                f"--config.import_from={pth}")
  return name, workdir, out


@pytest.mark.parametrize("imported", TINY, indirect=True)
def test_cli_import_gives_the_reference_outputs(imported):
  name, workdir, out = imported
  assert out.returncode == 0, out.stderr[-2000:]
  optimizer = ("a fresh optimizer state (the file has no Adam moments)" if name == "tiny_ddpm"
               else "Adam moments (count 3)")
  assert "step 3" in out.stdout and optimizer in out.stdout, out.stdout
  io = np.load(os.path.join(FIX, name + "_io.npz"))
  x, labels = np.transpose(io["x"], (0, 2, 3, 1)), io["labels"]
  t = trained.load(workdir)
  assert t.step == 3
  ema_out = t.run.model.apply(t.ema_params, x, labels, train=False)
  assert _rel(ema_out, np.transpose(io["out_ema"], (0, 2, 3, 1))) < 1e-4
  assert _rel(io["out_model"], io["out_ema"]) > 1e-4  # the EMA really differs from the model


@pytest.mark.parametrize("imported", ["tiny_ddpmpp"], indirect=True)  # one, to limit time
def test_msgm_fine_tuning_starts_from_the_import(imported, tmp_path):
  name, workdir, _ = imported
  pth, config = _tiny(name)
  out = run_cli(f"--config={config}", f"--workdir={tmp_path}",
                f"--config.training.init_from={workdir}", "--config.training.regime=msgm",
                "--config.training.n_iters=3", "--config.training.snapshot_freq=3")
  assert out.returncode == 0, out.stderr[-2000:]
  assert "fine-tuning from" in out.stderr and "done at step 3" in out.stdout
  again = run_cli(f"--config={config}", f"--workdir={workdir}", "--mode=import",
                  f"--config.import_from={pth}")
  assert again.returncode == 2 and "already holds checkpoints" in again.stderr
