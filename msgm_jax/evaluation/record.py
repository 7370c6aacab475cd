"""Eval mode's per-checkpoint record: its JSON file, TensorBoard scalars and printed line.

A record (msgm_jax/evaluation/eval_mode.py) is {'step', 'params': 'ema', 'split', 'sfg': {...}, 'nsfg':
{...}, ['samples': {...}], ['likelihood': {how bpd was computed}]}. 'sfg' / 'nsfg' hold the
metrics of the real test data of each subset (dsm_loss, bpd or nll with stderr, and the
classifier's nsfg_rate on them: the floor and the recall); 'samples' those of the generated
samples (msgm_jax/evaluation/sample_metrics.py). Numbers become TensorBoard scalars
eval/<part>_<metric>.
"""

import json
import os
from typing import Any, Dict, Optional

from msgm_jax.config import agreement

PARTS = ("sfg", "nsfg", "samples")


def record_path(outdir: str, step: int) -> str:
  return os.path.join(outdir, f"ckpt_{step}.json")


def _rate(r: Dict[str, Any]) -> str:
  low, high = r["nsfg_rate_ci"]
  return f"nsfg_rate {r['nsfg_rate']:.4f} [{low:.4f}, {high:.4f}]"


def _subset_text(name: str, r: Dict[str, Any]) -> str:
  text = name.upper()
  if "dsm_loss" in r:
    text += f" dsm {r['dsm_loss']:.4f}"
  for key, unit in (("bpd", "bits/dim"), ("nll", "nats")):
    if key in r:
      err = f" +- {r[key + '_stderr']:.3f}" if r[key + "_stderr"] is not None else ""
      text += f" {key} {r[key]:.3f}{err} {unit}"
  if "nsfg_rate" in r:
    text += " " + _rate(r)
  return text


def summary_line(record: Dict[str, Any], path: str) -> str:
  """'eval step 20: SFG dsm ... | NSFG ... | SAMPLES 1000 nsfg_rate ... fd_classifier ...
  -> path' (one line)."""
  parts = [_subset_text(s, record[s]) for s in ("sfg", "nsfg")]
  if "samples" in record:
    r = record["samples"]
    text = f"SAMPLES {r['num_samples']}"
    if "nsfg_rate" in r:
      text += " " + _rate(r)
    text += "".join(f" {k} {r[k]:.4g}" for k in ("fd_classifier", "fid", "fid_no_mean")
                    if k in r)
    parts.append(text)
  return f"eval step {record['step']}: {' | '.join(parts)} -> {path}"


def _scalars(record: Dict[str, Any]) -> Dict[str, float]:
  """Every number of the record's parts (lists such as intervals and None are left out)."""
  out = {}
  for part in PARTS:
    for k, v in record.get(part, {}).items():
      if isinstance(v, (int, float)) and not isinstance(v, bool):
        out[f"eval/{part}_{k}"] = v
  return out


def write_record(outdir: str, record: Dict[str, Any], writer) -> str:
  """Writes ckpt_<step>.json and the numeric results as TensorBoard scalars; returns the path."""
  os.makedirs(outdir, exist_ok=True)
  path = record_path(outdir, record["step"])
  with open(path, "w", encoding="utf-8") as f:
    json.dump(record, f, indent=2)
  writer.scalars(record["step"], _scalars(record))
  writer.flush()
  return path


def write_settings(outdir: str, config, tag: str) -> None:
  """settings.json: the tag and the fields that determine the numbers (eval, sampling, seed)."""
  flat = agreement.flatten(config)
  chosen = {k: v for k, v in flat.items()
            if k.startswith(("eval.", "sampling.")) or k == "seed"}
  os.makedirs(outdir, exist_ok=True)
  with open(os.path.join(outdir, "settings.json"), "w", encoding="utf-8") as f:
    json.dump({"tag": tag, **chosen}, f, indent=2, sort_keys=True)


def previous(outdir: str, step: int) -> Optional[Dict[str, Any]]:
  """The record of `step` written before with these settings, printed; None if there is none."""
  if not os.path.exists(record_path(outdir, step)):
    return None
  with open(record_path(outdir, step), encoding="utf-8") as f:
    record = json.load(f)
  print(summary_line(record, record_path(outdir, step)) +
        f" ({agreement.STORED})", flush=True)
  return record
