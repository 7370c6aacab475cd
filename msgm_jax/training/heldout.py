"""Held-out evaluation over local devices: test batches, the eval DSM loss, per-example maps.

The training loop logs the DSM loss every training.eval_freq steps on one fixed test batch
(`TrainingEval`); eval mode (msgm_jax/evaluation/eval_mode.py) averages it over several batches and adds
likelihoods. Both build batches with `model_batches` and run per-example functions with
`map_examples`, and draw the noise of example i of batch b from fold_in(fold_in(key, b), i)
with i the global index: the same numbers on one device or eight, and batch 0 of eval mode
reproduces the training loop's eval_loss for the same EMA parameters.
"""

from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import jax
import numpy as np

from msgm_jax import data
from msgm_jax.runtime import parallel
from msgm_jax.diffusion.losses import LossConfig, dsm_loss, example_keys

Array = jax.Array
# fn(variables, batch {'x': [B, ...], 'ids': int32 [B]}, key) -> {name: [B]}, one device.
ExampleFn = Callable[[Any, Dict[str, Array], Array], Dict[str, Array]]

EVAL_STREAM = 1  # folded into the init key: evaluation never reuses a training key
_SUBSET_IDS = {"all": 0, "sfg": 1, "nsfg": 2}


def eval_keys(init_key: Array) -> Tuple[Array, Array]:
  """(DSM key, likelihood key): evaluation streams derived from the run's init key.

  Not from the training key, whose fold_in(key, step) are the train steps' keys.
  """
  dsm, lik = jax.random.split(jax.random.fold_in(init_key, EVAL_STREAM))
  return dsm, lik


def host_rng(seed: int, subset: str, purpose: int) -> np.random.Generator:
  """The dequantisation noise of one subset, fixed across checkpoints so they compare on the
  same inputs. purpose: 0 for the DSM loss, 1 for likelihoods."""
  return np.random.default_rng((seed, _SUBSET_IDS[subset], purpose))


def subset_source(spec: data.DataSpec, split: str, subset: str) -> data.Source:
  """make_eval_source, refusing an empty subset with a message instead of an IndexError."""
  source = data.make_eval_source(spec, split, subset)
  if len(source) == 0:
    raise ValueError(f"the {subset.upper()} part of the {split!r} split of {spec.dataset} is "
                     "empty; check data.nsfg_classes / data.nsfg_attribute")
  return source


def model_batches(spec: data.DataSpec, source: data.Source, batch_size: int, num_examples: int,
                  rng: np.random.Generator) -> Iterator[Dict[str, np.ndarray]]:
  """The first num_examples examples of source, in order, as global host batches.

  Yields {'x': float32 [B, ...] in model space (data.model_inputs: dequantised with rng when
  spec.uniform_dequantization), 'ids': int32 [B] global example indices, 'mask': bool [B]};
  the last batch is padded (mask False) so every batch has one shape (one compilation).
  """
  n = min(len(source), num_examples)
  batches = data.eval_batches(source, batch_size, indices=np.arange(n))
  for b, batch in enumerate(batches):
    yield {"x": data.model_inputs(spec, batch["image"], rng),
           "ids": np.arange(b * batch_size, (b + 1) * batch_size, dtype=np.int32),
           "mask": batch["mask"]}


def map_examples(p_fn: Callable, p_variables: Any, batches: Iterable[Dict[str, np.ndarray]],
                 key: Array, devices: Sequence,
                 on_batch: Optional[Callable[[int], None]] = None) -> Dict[str, np.ndarray]:
  """Runs p_fn = parallel.data_parallel_map(fn) over global host batches (with several
  processes each computes its rows and every process gets all outputs).

  p_variables: replicated. Batch b gets the key fold_in(key, b). on_batch(b + 1) is called
  after each batch (progress). Returns {name: [n]}: the outputs of the real (mask True)
  examples, concatenated in order.
  """
  outs: List[Dict[str, np.ndarray]] = []
  for b, batch in enumerate(batches):
    out = parallel.map_global_batch(p_fn, p_variables, {"x": batch["x"], "ids": batch["ids"]},
                                    jax.random.fold_in(key, b), devices)
    outs.append({k: v.reshape(-1)[batch["mask"]] for k, v in out.items()})
    if on_batch is not None:
      on_batch(b + 1)
  return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def dsm_fn(build_score_fn: Callable, sde, cfg: LossConfig) -> ExampleFn:
  """Per-example DSM loss {'loss': [B]} of the (eval-mode) score, noise from global ids."""

  def fn(variables, batch, key):
    score_fn = build_score_fn(variables, None)
    return {"loss": dsm_loss(example_keys(key, batch["ids"]), batch["x"], score_fn, sde, cfg)}

  return fn


class TrainingEval:
  """The training loop's eval_loss: the DSM loss of the EMA parameters on a fixed test batch.

  The batch is the first eval batch of the SFG test subset ('all' for the standard regime);
  under MSGM also of the NSFG subset (eval_loss_nsfg). One compiled function serves both.
  """

  def __init__(self, spec: data.DataSpec, regime: str, *, split: str, batch_size: int,
               seed: int, build_score_fn: Callable, sde, loss_cfg: LossConfig,
               devices: Sequence, init_key: Array):
    self.devices = devices
    self.key = eval_keys(init_key)[0]
    self.p_fn = parallel.data_parallel_map(dsm_fn(build_score_fn, sde, loss_cfg), devices,
                                           distinct_keys=False)
    subsets = {"eval_loss": "all" if regime == "standard" else "sfg"}
    if regime == "msgm":
      subsets["eval_loss_nsfg"] = "nsfg"
    self.batches = {
        name: next(model_batches(spec, subset_source(spec, split, subset), batch_size,
                                 batch_size, host_rng(seed, subset, 0)))
        for name, subset in subsets.items()}

  def __call__(self, p_variables) -> Dict[str, float]:
    """p_variables: replicated EMA variables -> {'eval_loss': ..., ['eval_loss_nsfg': ...]}."""
    return {name: float(np.mean(map_examples(self.p_fn, p_variables, [batch], self.key,
                                             self.devices)["loss"]))
            for name, batch in self.batches.items()}
