"""Loading the FID Inception weights: .npz and .pth routes, and one-line errors naming the fix."""

import os

import numpy as np
import pytest

from msgm_jax.evaluation.metrics import weights
from tests.helpers import ROOT

TINY_PTH = os.path.join(ROOT, "tests", "fixtures", "tiny_zip.pth")


def test_layout_maps_torch_names_to_flax_paths_and_layouts():
  layout = weights.torch_layout()
  assert len(layout) == 472  # 94 BasicConv2d x 5 tensors + the classifier's 2
  shape, path, perm = layout["Mixed_6b.branch7x7_2.conv.weight"]
  assert shape == (128, 128, 1, 7)  # torch [out, in, kh, kw]
  assert path == ("params", "Mixed_6b", "branch7x7_2", "conv", "kernel") and perm == (2, 3, 1, 0)
  assert layout["Conv2d_1a_3x3.bn.running_var"][1] == (
      "batch_stats", "Conv2d_1a_3x3", "bn", "var")
  assert layout["fc.weight"][0] == (1008, 2048)


def test_to_variables_transposes_and_ignores_batchnorm_counters(seeded_inception):
  state, _ = seeded_inception
  variables = weights.to_variables(state)
  kernel = variables["params"]["Mixed_7c"]["branch3x3_2a"]["conv"]["kernel"]
  torch_w = state["Mixed_7c.branch3x3_2a.conv.weight"]  # [384, 384, 1, 3]
  assert kernel.shape == (1, 3, 384, 384) and kernel.dtype == np.float32
  np.testing.assert_array_equal(kernel[0, 2, 5, 7], torch_w[7, 5, 0, 2])
  np.testing.assert_array_equal(variables["params"]["fc"]["kernel"], state["fc.weight"].T)
  np.testing.assert_array_equal(variables["batch_stats"]["Mixed_5b"]["branch_pool"]["bn"]["mean"],
                                state["Mixed_5b.branch_pool.bn.running_mean"])


def test_wrong_names_or_shapes_are_refused_with_the_fix(seeded_inception):
  state, _ = seeded_inception
  missing = {k: v for k, v in state.items() if k != "fc.bias"}
  with pytest.raises(ValueError, match=r"1 missing .*fc\.bias.*inception_weights=<path>"):
    weights.to_variables(missing)
  extra = dict(state, **{"AuxLogits.fc.weight": np.zeros((1000, 768), np.float32)})
  with pytest.raises(ValueError, match=r"1 unexpected .*AuxLogits"):
    weights.to_variables(extra)
  wrong = dict(state, **{"fc.weight": np.zeros((1000, 2048), np.float32)})  # torchvision's head
  with pytest.raises(ValueError, match=r"fc\.weight has shape \(1000, 2048\)"):
    weights.to_variables(wrong)


def test_files_missing_unreadable_or_foreign_name_the_fix(tmp_path):
  with pytest.raises(ValueError, match="no Inception weights given: pass pytorch-fid's"):
    weights.read_state_dict("")
  with pytest.raises(FileNotFoundError, match=r"download it from https://github\.com/mseitzer"):
    weights.read_state_dict(str(tmp_path / "absent.pth"))
  junk = tmp_path / "junk.pth"
  junk.write_bytes(b"not a pickle")
  with pytest.raises(ValueError, match="cannot read .* as a torch state dict"):
    weights.read_state_dict(str(junk))
  # A real torch file (read by the safe reader) that holds other tensors.
  assert set(weights.read_state_dict(TINY_PTH)) >= {"base", "count"}
  with pytest.raises(ValueError, match="not the FID Inception's"):
    weights.load_inception(TINY_PTH)
