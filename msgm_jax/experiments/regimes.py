"""Experiments that compare regimes side by side (the toy and the digits reports): their rows,
each row's config, training the rows in order, and the report files.

An experiment config has an `experiment` section; experiment.name picks the runner in
EXPERIMENTS (train mode calls it with the config and the workdir). experiment.rows lists the
rows, comma-separated:
- trained rows (TRAINED): an ordinary training run in <workdir>/<row>/ with the row's config
  overrides (rerunning resumes it, or skips it when finished);
- a sweep suffix on a trained row, <row>@a<alpha>p<period>[m<margin>][w<lo>[_<hi>]][r<n>],
  sets msgm.alpha, msgm.period (and the hinge margin, the NSFG batch's noise window
  msgm.std_min = lo, msgm.std_max = hi, and msgm.num_refs = n, rall: -1, every SFG training
  example), e.g. redirect@a0.2p1w0.3rall;
- fine-tuned rows (FINETUNED): a trained row's overrides, started from another row's final
  checkpoint (training.init_from; the step counter restarts) for experiment.finetune_steps
  steps (sweep suffixes apply);
- training-free rows, <row>+free_<method>: a trained row's model under the training-free
  moderation adjust.method=<method> at sampling time (msgm_jax/method/training_free.py; the adjust
  section's settings);
- rows an experiment adds itself (EXTRA_ROWS, e.g. the toy's exact-score rows).
"""

import dataclasses
import json
import os
import re
import time
from typing import Callable, Dict, List, Optional

from absl import logging

from msgm_jax.training import loop as train
from msgm_jax.config import validate
from msgm_jax.method.training_free import ADJUSTMENTS
from msgm_jax.registry import Registry

EXPERIMENTS: Registry = Registry("experiment")  # name -> run(config, workdir)
TRAINED = {
    "standard": {"training.regime": "standard"},
    "unseen": {"training.regime": "unseen"},
    "orthogonal_elementwise": {"training.regime": "msgm", "msgm.variant": "orthogonal",
                               "msgm.form": "elementwise"},
    "orthogonal_inner": {"training.regime": "msgm", "msgm.variant": "orthogonal",
                         "msgm.form": "inner"},
    "obtuse_release": {"training.regime": "msgm", "msgm.variant": "obtuse", "msgm.sign": "release",
                       "msgm.hinge": False},
    "obtuse_repel": {"training.regime": "msgm", "msgm.variant": "obtuse", "msgm.sign": "repel",
                     "msgm.hinge": False},
    # The project's default variant: repel, hinged, margin 1 (a strictly obtuse angle).
    "obtuse_repel_hinge": {"training.regime": "msgm", "msgm.variant": "obtuse",
                           "msgm.sign": "repel", "msgm.hinge": True, "msgm.margin": 1.0},
    # Towards the SFG references' posterior mean (moderation.redirect); use with a window.
    "redirect": {"training.regime": "msgm", "msgm.variant": "redirect"},
}
# Fine-tuned row -> (the row it starts from, the trained row whose overrides it takes).
FINETUNED = {"finetuned_obtuse_repel_hinge": ("standard", "obtuse_repel_hinge"),
             "finetuned_redirect": ("standard", "redirect"),
             # the realistic post-hoc case: a model re-trained without the NSFG data, moderated
             "unseen_finetuned_redirect": ("unseen", "redirect")}
EXTRA_ROWS: set = set()  # rows an experiment handles itself
_NUM = r"[0-9.]+(?:e-?[0-9]+)?"
_SWEEP = re.compile(
    rf"^(?P<base>[a-z_]+)@a(?P<alpha>{_NUM})p(?P<period>\d+)(m(?P<margin>{_NUM}))?"
    rf"(w(?P<std_min>{_NUM})(_(?P<std_max>{_NUM}))?)?(r(?P<num_refs>\d+|all))?$")
_FREE = re.compile(r"^(?P<base>.+)\+free_(?P<method>[a-z]+)$")


@dataclasses.dataclass(frozen=True)
class Row:
  """name; trained: the trained row whose run it uses (itself, or a free row's base);
  overrides: config overrides (flattened keys); source: the row a fine-tuned row starts from."""

  name: str
  trained: str
  overrides: Dict[str, object]
  source: Optional[str] = None


def _trained_overrides(name: str) -> Dict[str, object]:
  match = _SWEEP.match(name)
  if match:
    out = dict(_trained_overrides(match["base"]))
    out.update({"msgm.alpha": float(match["alpha"]), "msgm.period": int(match["period"])})
    if match["margin"]:
      out["msgm.margin"] = float(match["margin"])
    if match["std_min"]:
      out["msgm.std_min"] = float(match["std_min"])
      out["msgm.std_max"] = float(match["std_max"] or 0.0)
    if match["num_refs"]:
      out["msgm.num_refs"] = -1 if match["num_refs"] == "all" else int(match["num_refs"])
    return out
  if name in FINETUNED:
    return _trained_overrides(FINETUNED[name][1])
  if name not in TRAINED:
    valid = sorted(TRAINED) + sorted(FINETUNED) + sorted(EXTRA_ROWS)
    raise ValueError(f"unknown row {name!r}; valid: {', '.join(valid)} (trained rows also as "
                     "<row>@a<alpha>p<period>, e.g. obtuse_repel@a0.1p1, and <row>+free_"
                     f"<{'|'.join(ADJUSTMENTS.names())}>)")
  return TRAINED[name]


def row(name: str) -> Row:
  """The Row of a name (ValueError listing the valid names for an unknown one); not for
  EXTRA_ROWS."""
  free = _FREE.match(name)
  if free:
    ADJUSTMENTS.get(free["method"])
    base = row(free["base"])
    if base.trained != base.name:
      raise ValueError(f"row {name!r}: training-free rows apply to a trained row")
    return Row(name, base.name, {**base.overrides, "adjust.method": free["method"]},
               base.source)
  match = _SWEEP.match(name)
  source = FINETUNED.get(match["base"] if match else name, (None,))[0]
  return Row(name, name, _trained_overrides(name), source)


def names(exp) -> List[str]:
  return [r.strip() for r in exp.rows.split(",") if r.strip()]


def _rows_rule(rows) -> Optional[str]:
  """validate's rule for experiment.rows: comma-separated row names, each known."""
  if not isinstance(rows, str) or not [r for r in rows.split(",") if r.strip()]:
    return "a comma-separated list of rows"
  for name in (r.strip() for r in rows.split(",") if r.strip()):
    if name not in EXTRA_ROWS:
      try:
        row(name)
      except ValueError as e:
        return f"a comma-separated list of known rows ({e})"
  return None


# The experiment section's rules; experiments add the fields of their own.
RULES = {"name": validate.one_of(EXPERIMENTS.names), "rows": _rows_rule,
         "finetune_steps": validate.POSITIVE, "report": validate.text}
validate.SECTIONS.add("experiment", RULES)


def row_config(config, name: str, workdir: str):
  """The config of a row: the experiment's, with the row's overrides; a fine-tuned row starts
  from its source row's run in workdir and trains experiment.finetune_steps steps."""
  r = row(name)
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.update_from_flattened_dict(r.overrides)
    cfg.training.snapshot_sampling = False
    if r.source is not None:
      cfg.training.init_from = os.path.join(workdir, r.source)
      cfg.training.restart_step = True
      cfg.training.n_iters = config.experiment.finetune_steps
  return cfg


def row_workdir(workdir: str, name: str) -> str:
  """The training run a row uses (a training-free row: its base row's)."""
  return os.path.join(workdir, row(name).trained)


def train_rows(config, workdir: str, rows: List[str]) -> Dict[str, dict]:
  """Trains (or resumes, or finds finished) the runs `rows` need, sources first.

  Returns {trained row: {'config', 'ema' (the final EMA parameters), 'train_s' (wall seconds
  of this call's training)}}.
  """
  needed = []
  for name in rows:
    if name not in EXTRA_ROWS:
      r = row(name)
      needed += [n for n in (r.source, r.trained) if n is not None and n not in needed]
  needed.sort(key=lambda n: row(n).source is not None)  # sources train first
  out = {}
  for i, name in enumerate(needed):
    cfg = row_config(config, name, workdir)
    logging.info("%s: training run %d/%d (%s), for %d rows", config.experiment.name, i + 1,
                 len(needed), name, len(rows))
    start = time.time()
    state = train.train_and_evaluate(cfg, os.path.join(workdir, name))
    out[name] = {"config": cfg, "ema": state.ema_params, "train_s": time.time() - start}
  return out


def write_report(workdir: str, results: Dict[str, Dict], text: str,
                 figure: Callable[[str], None], name: str = "report") -> str:
  """<name>.json (row -> results), <name>.md (text) and <name>.png (figure(path)); name:
  experiment.report, so experiments sharing a workdir (and so its trained rows) keep their
  own reports. Returns the line that says where they are (callers print it last)."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, f"{name}.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=2)
  with open(os.path.join(workdir, f"{name}.md"), "w", encoding="utf-8") as f:
    f.write(text)
  figure(os.path.join(workdir, f"{name}.png"))
  return f"report: {os.path.join(workdir, name)}.{{json,md,png}}"
