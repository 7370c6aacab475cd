"""Writes the committed fixtures that verify the Flax FID Inception and the safe .pth reader.

Not part of the package and not run by the tests: it needs torch and torch-fidelity, in a
separate virtual environment (no torchvision needed; nothing is downloaded):

  python3 -m venv /tmp/fid/torchenv
  /tmp/fid/torchenv/bin/pip install torch==2.13.0 numpy scipy
  /tmp/fid/torchenv/bin/pip install --no-deps torch-fidelity   # 0.4.0 was used
  /tmp/fid/torchenv/bin/python scripts/make_inception_fixture.py

The reference network is torch-fidelity's pure-torch FeatureExtractorInceptionV3: the same
graph as pytorch-fid's `fid_inception_v3` (torchvision's layout, 1008 classes, no aux head,
FIDInceptionA/C/E_1/E_2) with the same state-dict names. It is filled with the seeded weights
of tests/inception_recipe.py (loaded strictly, so the names and shapes must be the real ones)
and run with pytorch-fid's input convention instead of torch-fidelity's own: images in [0, 1]
resized by F.interpolate(bilinear, align_corners=False) to 299, then 2x - 1. Outputs:

  tests/fixtures/inception_pool3.npz   uint8 inputs, their pool_3 features and logits, the
                                       state dict's names and shapes, and torch's bilinear
                                       resize of small arrays (up and down);
  tests/fixtures/tiny_zip.pth          tests/inception_recipe.tiny_state_dict() saved by
  tests/fixtures/tiny_legacy.pth       torch.save in the zip and the legacy format.
"""

import importlib.util
import json
import os
import sys
import tempfile
import types

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_recipe():
  # By path: a 'tests' package installed in site-packages would shadow the repository's.
  spec = importlib.util.spec_from_file_location(
      "inception_recipe", os.path.join(ROOT, "tests", "inception_recipe.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


inception_recipe = _load_recipe()

FIXTURES = os.path.join(ROOT, "tests", "fixtures")
NUM_IMAGES, IMAGE_SIZE = 3, 32


def _torch_fidelity_inception():
  """torch_fidelity.feature_extractor_inceptionv3 without running the package's __init__
  (which imports torchvision for its CLIP extractor)."""
  spec = importlib.util.find_spec("torch_fidelity")
  package = types.ModuleType("torch_fidelity")
  package.__path__ = list(spec.submodule_search_locations)
  sys.modules["torch_fidelity"] = package
  import torch_fidelity.feature_extractor_inceptionv3 as module  # noqa: E402
  return module


def _pytorch_fid_resize(x, size, align_corners):
  """Replaces torch-fidelity's TF1-style resize of uint8-valued input (then (x - 128) / 128) by
  pytorch-fid's: v = F.interpolate(x / 255) and 2 v - 1. Returning 256 v makes torch-fidelity's
  (256 v - 128) / 128 equal 2 v - 1 exactly (scaling by powers of two is exact)."""
  assert not align_corners
  return 256.0 * F.interpolate(x / 255.0, size=size, mode="bilinear", align_corners=False)


def reference_network(module, tmp: str):
  """The reference Inception holding the seeded weights, and the weights' layout."""

  class Skeleton(module.FeatureExtractorInceptionV3):
    def load_state_dict(self, state_dict, strict=True, assign=False):
      del state_dict, strict, assign  # only the parameter layout is wanted here

  empty = os.path.join(tmp, "empty.pth")
  torch.save({}, empty)
  layout = {k: tuple(v.shape) for k, v in
            Skeleton("inception-v3", ["2048"], feature_extractor_weights_path=empty)
            .state_dict().items()}
  weights = inception_recipe.seeded_state_dict(layout)
  path = os.path.join(tmp, "seeded.pth")
  torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, path)
  net = module.FeatureExtractorInceptionV3("inception-v3", ["2048", "logits"],
                                           feature_extractor_weights_path=path)
  return net, layout


def inception_fixture() -> dict:
  module = _torch_fidelity_inception()
  module.interpolate_bilinear_2d_like_tensorflow1x = _pytorch_fid_resize
  rng = np.random.default_rng(inception_recipe.FIXTURE_SEED)
  noise = rng.integers(0, 256, (1, IMAGE_SIZE, IMAGE_SIZE, 3))
  ii, jj = np.meshgrid(np.arange(IMAGE_SIZE), np.arange(IMAGE_SIZE), indexing="ij")
  smooth = 127.5 + 127.5 * np.stack([np.sin(ii / 3.0), np.cos(jj / 5.0),
                                     np.sin((ii + jj) / 7.0)], -1)[None]
  blocks = np.kron(rng.integers(0, 256, (1, 4, 4, 3)), np.ones((1, 8, 8, 1)))
  images = np.concatenate([noise, smooth, blocks]).round().clip(0, 255).astype(np.uint8)
  with tempfile.TemporaryDirectory() as tmp:
    net, layout = reference_network(module, tmp)
  with torch.no_grad():
    pool3, logits = net(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
  up = rng.uniform(0.0, 1.0, (2, 5, 7, 3)).astype(np.float32)
  down = rng.uniform(0.0, 1.0, (2, 20, 17, 3)).astype(np.float32)

  def resize(x, size):
    y = F.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=size, mode="bilinear",
                      align_corners=False)
    return y.permute(0, 2, 3, 1).numpy()

  print(f"reference: {len(layout)} state-dict entries; pool_3 range "
        f"[{pool3.min():.3f}, {pool3.max():.3f}], mean {pool3.mean():.3f}")
  names = sorted(layout)
  return dict(seed=inception_recipe.FIXTURE_SEED, images=images, pool3=pool3.numpy(),
              layout_names=np.array(names),
              layout_shapes=json.dumps([layout[k] for k in names]),
              logits=logits.numpy(), resize_up_in=up, resize_up_out=resize(up, (13, 11)),
              resize_down_in=down, resize_down_out=resize(down, (7, 6)),
              torch_version=torch.__version__)


def tiny_tensors() -> dict:
  """inception_recipe.tiny_state_dict() built with torch, views sharing one storage."""
  base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8.0
  return {"base": base, "transposed": base.t(), "row": base[1], "column": base[:, 2],
          "scalar": torch.tensor(3.5), "count": torch.tensor(7),
          "double": torch.linspace(-1.0, 1.0, 5, dtype=torch.float64),
          "half": torch.tensor([0.5, -2.0, 65504.0], dtype=torch.float16),
          "empty": torch.zeros(0, 3)}


def main():
  os.makedirs(FIXTURES, exist_ok=True)
  tensors = tiny_tensors()
  expected = inception_recipe.tiny_state_dict()
  for name, value in tensors.items():  # the numpy recipe and torch agree before saving
    np.testing.assert_array_equal(value.numpy(), expected[name])
  torch.save(tensors, os.path.join(FIXTURES, "tiny_zip.pth"))
  torch.save(tensors, os.path.join(FIXTURES, "tiny_legacy.pth"),
             _use_new_zipfile_serialization=False)
  fixture = inception_fixture()
  np.savez_compressed(os.path.join(FIXTURES, "inception_pool3.npz"), **fixture)
  for name in ("tiny_zip.pth", "tiny_legacy.pth", "inception_pool3.npz"):
    print(f"wrote tests/fixtures/{name}: {os.path.getsize(os.path.join(FIXTURES, name))} bytes")


if __name__ == "__main__":
  main()
