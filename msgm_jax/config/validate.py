"""Start-up checks: every config field, the workdir and the data, before anything is built.

    validate.startup(config, workdir, mode)   # main.py, before dispatching the mode
    validate.check_config(config)             # the config alone (train/eval/sample call it too)

Each field has a rule in the table of its section (`SECTIONS`, one dict per section); rules
that need several fields are `CHECKS`. A failure raises ConfigError with one line naming the
field, its value and the fix. Sections and checks added later register themselves:

    validate.SECTIONS.add("classifier", {"lr": validate.number(lo=0, lo_open=True), ...})
    validate.CHECKS.add("classifier_batch", lambda config: ...)

A field with no rule is not checked (tests/config/test_validate.py asserts that every field of the
shipped configs has one). Rules only look at values: nothing is built, read or compiled, except
the typed constructors of builders.py & co. (cheap dataclasses) that the cross checks call.
"""

import difflib
import math
import os
import tempfile
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Union

import jax

from msgm_jax import data
from msgm_jax.method import training_free as adjust
from msgm_jax.config import builders
from msgm_jax.diffusion import fast_sampling
from msgm_jax.diffusion import likelihood
from msgm_jax.data import masks
from msgm_jax.method import moderation
from msgm_jax.diffusion import sampling
from msgm_jax.diffusion import sde as sde_lib
from msgm_jax.models import conv, factory, layers, ncsnpp
from msgm_jax.registry import Registry

# value -> None when valid, else what it must be ("an integer >= 1").
Rule = Callable[[Any], Optional[str]]
ROOT = ""  # the section of top-level fields (seed)


class ConfigError(ValueError):
  """A config field, a flag or the workdir is invalid; the message says how to fix it."""


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def integer(lo: Optional[int] = None, hi: Optional[int] = None, zero: str = "") -> Rule:
  """An int in [lo, hi]; `zero` documents what 0 means where lo is 0 ("never")."""
  want = "an integer" + (f" >= {lo}" if lo is not None else "") + \
      (f" <= {hi}" if hi is not None else "") + (f" (0: {zero})" if zero else "")

  def rule(v):
    ok = _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi)
    return None if ok else want

  return rule


def number(lo: Optional[float] = None, hi: Optional[float] = None, *, lo_open: bool = False,
           hi_open: bool = False) -> Rule:
  """A finite int or float in the interval from lo to hi (open ends where asked)."""
  bounds = []
  if lo is not None:
    bounds.append(f"{'>' if lo_open else '>='} {lo}")
  if hi is not None:
    bounds.append(f"{'<' if hi_open else '<='} {hi}")
  want = "a number" + (" " + " and ".join(bounds) if bounds else "")

  def rule(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      return want
    if lo is not None and (v <= lo if lo_open else v < lo):
      return want
    if hi is not None and (v >= hi if hi_open else v > hi):
      return want
    return None

  return rule


def boolean(v) -> Optional[str]:
  return None if isinstance(v, bool) else "True or False"


def text(v) -> Optional[str]:
  return None if isinstance(v, str) else "a string"


def one_of(names: Union[Sequence[str], Callable[[], Iterable[str]]]) -> Rule:
  """A string among `names` (case-insensitive), or among names() for a registry's names."""

  def rule(v):
    valid = list(names() if callable(names) else names)
    if isinstance(v, str) and v.lower() in [n.lower() for n in valid]:
      return None
    return "one of " + ", ".join(map(str, valid))

  return rule


def ints(min_len: int = 0, lo: Optional[int] = None) -> Rule:
  """A tuple or list of at least min_len ints, each >= lo."""
  want = f"a tuple of {'at least %d ' % min_len if min_len else ''}integers" + \
      (f" >= {lo}" if lo is not None else "")

  def rule(v):
    ok = isinstance(v, (tuple, list)) and len(v) >= min_len and \
        all(_is_int(x) and (lo is None or x >= lo) for x in v)
    return None if ok else want

  return rule


def path_or_empty(v) -> Optional[str]:
  if isinstance(v, str) and (not v or os.path.exists(v)):
    return None
  return "'' or an existing path"


def anything(v) -> Optional[str]:
  """For fields a typed constructor checks in CHECKS (e.g. data.toy_means)."""
  del v


def dataset_name(v) -> Optional[str]:
  """A registered dataset in any spelling data.get_dataset accepts ('CIFAR10', 'colour_digits')."""
  known = list(data.DATASETS.names())
  if isinstance(v, str) and data.datasets.canonical_name(v) in known:
    return None
  return "one of " + ", ".join(known)


SECTIONS: Registry = Registry("config section")
CHECKS: Registry = Registry("config check")

POSITIVE = integer(lo=1)
UNIT = number(0.0, 1.0, hi_open=True)
POSITIVE_NUMBER = number(lo=0.0, lo_open=True)
# A metric that needs weights: 'auto' (when they are configured), 'on' (required) or 'off'.
SWITCHES = ("auto", "on", "off")
SWITCH = one_of(SWITCHES)
NSFG_DETECTORS = ("classifier", "factored")  # eval.nsfg_detector (msgm_jax/evaluation/sample_metrics.py)

SECTIONS.add(ROOT, {"seed": integer(lo=0), "import_from": path_or_empty})
SECTIONS.add("training", {
    "sde": one_of(sde_lib.SDES.names), "continuous": boolean, "reduce_mean": boolean,
    "likelihood_weighting": boolean, "batch_size": POSITIVE, "n_iters": POSITIVE,
    "snapshot_freq": POSITIVE, "snapshot_freq_for_preemption": POSITIVE,
    "keep_every": integer(lo=0, zero="keep none forever"), "max_to_keep": POSITIVE,
    "log_freq": POSITIVE, "eval_freq": integer(lo=0, zero="never"), "snapshot_sampling": boolean,
    "steps_per_call": POSITIVE, "num_devices": integer(lo=0, zero="all local devices"),
    "regime": one_of(builders.REGIMES), "init_from": path_or_empty, "restart_step": boolean})
SECTIONS.add("msgm", {
    "variant": text, "form": text, "sign": text, "hinge": boolean, "margin": number(lo=0.0),
    "preset": lambda v: None if v == "" else (
        one_of(tuple(moderation.PRESETS))(v) and "'' (none) or " + one_of(moderation.PRESETS)(v)),
    "alpha": number(0.0, 1.0), "period": POSITIVE, "std_min": number(lo=0.0),
    "std_max": number(lo=0.0), "num_refs": integer(
        lo=-1, zero="the step's SFG batch; n > 0: the first n SFG examples; -1: all"),
    "nsfg_batch_size": integer(lo=0, zero="training.batch_size")})
SECTIONS.add("sampling", {
    "method": one_of(builders.SAMPLER_METHODS), "predictor": one_of(sampling.PREDICTORS.names),
    "corrector": one_of(sampling.CORRECTORS.names), "n_steps_each": POSITIVE,
    "noise_removal": boolean, "probability_flow": boolean, "snr": POSITIVE_NUMBER,
    "batch_size": POSITIVE, "eps": number(0.0, 1.0, lo_open=True, hi_open=True),
    "ode_tol": POSITIVE_NUMBER, "num_steps": POSITIVE, "ddim_eta": number(0.0, 1.0)})
SECTIONS.add("eval", {
    "begin_ckpt": integer(lo=0, zero="the latest"), "end_ckpt": integer(lo=0, zero="no bound"),
    "batch_size": POSITIVE, "num_batches": POSITIVE, "enable_loss": boolean,
    "enable_bpd": boolean, "bpd_dataset": text, "bpd_num_examples": POSITIVE,
    "divergence": one_of(likelihood.DIVERGENCES.names), "num_samples": POSITIVE,
    "nsfg_rate": SWITCH, "fd_classifier": SWITCH, "fid": SWITCH,
    "classifier_weights": path_or_empty, "inception_weights": path_or_empty,
    "nsfg_detector": one_of(NSFG_DETECTORS), "detector_weights": path_or_empty,
    "fid_split": text, "stats_dir": text})
SECTIONS.add("adjust", {
    "method": lambda v: None if v == "" else one_of(adjust.ADJUSTMENTS.names)(v) and
    f"'' (none) or {one_of(adjust.ADJUSTMENTS.names)(v)}",
    "num_refs": integer(lo=2), "strength": number(lo=0.0), "bandwidth": number(lo=0.0),
    "max_noise": POSITIVE_NUMBER})
SECTIONS.add("inpaint", {"mask": masks.mask_rule, "num_images": integer(lo=0, zero="all")})
SECTIONS.add("reconstruct", {"perturb_t": number(0.0, 1.0, hi_open=True),
                             "num_images": integer(lo=0, zero="all")})
SECTIONS.add("data", {
    "dataset": dataset_name, "data_dir": text,
    "image_size": integer(lo=0, zero="the dataset's"),
    "num_channels": integer(lo=0, zero="the dataset's"), "random_flip": boolean,
    "centered": boolean, "uniform_dequantization": boolean, "nsfg_classes": ints(lo=0),
    "nsfg_attribute": text, "cache_dir": text, "toy_means": anything, "toy_stds": anything,
    "toy_weights": anything, "toy_eval_size": POSITIVE})
SECTIONS.add("model", {
    "name": one_of(factory.MODELS.names), "sigma_min": POSITIVE_NUMBER,
    "sigma_max": POSITIVE_NUMBER, "num_scales": POSITIVE, "beta_min": number(lo=0.0),
    "beta_max": POSITIVE_NUMBER, "dropout": UNIT, "ema_rate": UNIT,
    "dtype": one_of(("float32", "bfloat16")), "conv_impl": one_of(conv.CONV_IMPLS),
    "nf": POSITIVE, "ch_mult": ints(min_len=1, lo=1), "num_res_blocks": POSITIVE,
    "attn_resolutions": ints(lo=1), "resamp_with_conv": boolean, "conditional": boolean,
    "scale_by_sigma": boolean, "nonlinearity": one_of(layers.ACTIVATIONS),
    "num_groups": POSITIVE, "fir": boolean, "fir_kernel": ints(min_len=1, lo=0),
    "skip_rescale": boolean, "fourier_scale": POSITIVE_NUMBER, "init_scale": number(lo=0.0),
    "hidden": POSITIVE, "n_layers": POSITIVE,
    **{k: one_of((str(v),)) for k, v in factory.FIXED.items() if k != "conv_size"},
    "conv_size": integer(lo=factory.FIXED["conv_size"], hi=factory.FIXED["conv_size"]),
    **{k: one_of(v) for k, v in ncsnpp.CHOICES.items()}})
SECTIONS.add("optim", {
    "optimizer": text, "lr": POSITIVE_NUMBER, "beta1": UNIT, "beta2": UNIT,
    "eps": POSITIVE_NUMBER, "weight_decay": number(lo=0.0),
    "warmup": integer(lo=0, zero="no warmup"), "grad_clip": number(lo=0.0)})


def _override(path: str) -> str:
  return f"--config.{path}"


def field_error(path: str, value: Any, want: str) -> ConfigError:
  return ConfigError(f"config field {path}={value!r} is invalid: it must be {want}; set it in "
                     f"the config file or with {_override(path)}=<value>")


def check_fields(config) -> None:
  """Applies SECTIONS' rule to every field that has one; raises the first failure."""
  for section in SECTIONS:
    node = config if section == ROOT else config.get(section)
    if node is None:
      continue
    for name, rule in SECTIONS.get(section).items():
      if name in node and not hasattr(node[name], "items"):
        want = rule(node[name])
        if want is not None:
          raise field_error(f"{section}.{name}" if section else name, node[name], want)


def check_config(config) -> None:
  """Every field's rule, then every cross-field check: ConfigError on the first failure.
  A classifier config (one with a `classifier` section and no score-model sections) gets the
  'classifier' check only; score-model configs get all the others."""
  check_fields(config)
  is_classifier = "classifier" in config
  for name in CHECKS:
    if (name == "classifier") != is_classifier:
      continue
    try:
      CHECKS.get(name)(config)
    except ConfigError:
      raise
    except ValueError as e:  # typed constructors' own one-line errors
      raise ConfigError(str(e)) from None


# ----------------------------------------------------------------------- cross-field checks

def device_count(config) -> int:
  return config.training.num_devices or jax.local_device_count()


def multiple_of(path: str, value: int, n: int, why: str) -> None:
  if value % n:
    raise ConfigError(f"config field {path}={value} is not a multiple of {n} ({why}); set "
                      f"{_override(path)} to a multiple of {n}")


@CHECKS.register("schedule")
def _schedule(config) -> None:
  """Checkpoints and logs land on compiled-call boundaries."""
  k = config.training.steps_per_call
  for name in ("snapshot_freq", "snapshot_freq_for_preemption", "log_freq", "eval_freq",
               "keep_every"):
    multiple_of(f"training.{name}", config.training[name], k,
              f"training.steps_per_call={k}: checkpoints and logs land on compiled-call "
              "boundaries")


@CHECKS.register("devices")
def _devices(config) -> None:
  """Batches are split evenly over the devices of all processes."""
  available = jax.local_device_count()
  if config.training.num_devices > available:
    raise ConfigError(
        f"config field training.num_devices={config.training.num_devices} is more than the "
        f"{available} local devices; set {_override('training.num_devices')}=0 to use all")
  n_dev = device_count(config) * jax.process_count()  # every global batch spans them all
  sizes = {"training.batch_size": (config.training.batch_size, n_dev),
           "msgm.nsfg_batch_size": (config.msgm.nsfg_batch_size, n_dev),
           "eval.batch_size": (config.eval.batch_size, n_dev)}
  for path, (value, n) in sizes.items():
    multiple_of(path, value, n, f"it is split over {n} devices; or choose the devices with "
              f"{_override('training.num_devices')}")


@CHECKS.register("sde")
def _sde_ranges(config) -> None:
  m = config.model
  for lo, hi in (("sigma_min", "sigma_max"), ("beta_min", "beta_max")):
    if lo in m and hi in m and not m[hi] > m[lo]:
      raise ConfigError(f"config fields model.{hi}={m[hi]!r} and model.{lo}={m[lo]!r}: "
                        f"{hi} must be larger; set {_override('model.' + hi)}=<value>")


@CHECKS.register("eval_range")
def _eval_range(config) -> None:
  e = config.eval
  if e.end_ckpt and e.end_ckpt < e.begin_ckpt:
    raise ConfigError(f"config field eval.end_ckpt={e.end_ckpt} is below eval.begin_ckpt="
                      f"{e.begin_ckpt}; set {_override('eval.end_ckpt')}=0 for no bound")




@CHECKS.register("typed")
def _typed_sections(config) -> None:
  """The typed objects the run is built from (dataclasses only: nothing is initialised)."""
  spec = data.DataSpec.from_config(config.data)
  if config.training.regime != "standard":
    spec.nsfg_criterion()
  spec.definition.tfds_split(config.eval.bpd_dataset)
  factory.model_from_config(config.model, data_shape=data.data_shape(spec),
                            centered=spec.centered)
  builders.step_config(config)  # loss, optimiser and (in the msgm regime) moderation
  builders.SamplerSpec.from_config(config.sampling)


@CHECKS.register("sampler_sde")
def _sampler_sde(config) -> None:
  """A fast sampler takes the training SDE (ddim and dpm_solver: the VP family only)."""
  method = config.sampling.method.lower()
  if method in fast_sampling.FAST_SAMPLERS:
    fast_sampling.check_sde(method, sde_lib.SDES.get(config.training.sde.lower()))


# ------------------------------------------------------------------------- workdir and data

# What each mode needs: its workdir ('create': written, made if missing; 'existing': a run's)
# and the data splits it reads ('train'; 'eval': eval.bpd_dataset; 'train_eval': the same when
# training.eval_freq > 0). Modes added later add a row; others get the config checks only.
MODE_NEEDS: Dict[str, tuple] = {"train": ("create", ("train", "train_eval")),
                                "eval": ("existing", ("eval",)), "sample": ("existing", ()),
                                "inpaint": ("existing", ("eval",)),
                                "reconstruct": ("existing", ("eval",)), "summary": (None, ()),
                                "import": ("create", ())}


def unwritable_reason(path: str) -> Optional[str]:
  """None when a file can be created in directory `path`, else the reason."""
  try:
    fd, name = tempfile.mkstemp(dir=path, prefix=".msgm_jax_write_test")
    os.close(fd)
    os.remove(name)
    return None
  except OSError as e:
    return f"{type(e).__name__}: {e.strerror or e}"


def check_workdir(workdir: Optional[str], need: Optional[str]) -> None:
  """need 'create': a directory that can be made and written; 'existing': a run's directory
  (written to: eval and sample outputs go inside it)."""
  if need is None:
    return
  if not workdir:
    raise ConfigError("this mode needs --workdir=<dir>")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"--workdir={workdir} is a file, not a directory; pass a directory")
  if need == "existing" and not os.path.isdir(workdir):
    raise ConfigError(f"--workdir={workdir} does not exist; pass the --workdir of a trained run")
  if need == "create":
    try:
      os.makedirs(workdir, exist_ok=True)
    except OSError as e:
      raise ConfigError(f"--workdir={workdir} cannot be created ({type(e).__name__}: "
                        f"{e.strerror or e}); pass a directory you can write to") from None
  reason = unwritable_reason(workdir)
  if reason:
    raise ConfigError(f"--workdir={workdir} is not writable ({reason}); outputs go there: "
                      "pass a directory you can write to, or make it writable")


def check_data(config, splits: Iterable[str]) -> None:
  """Opens each split a mode reads (MODE_NEEDS): a dataset that is not prepared fails here in
  about a second with DatasetNotPrepared, not after the model is built. Embedded data (toy2d
  points) needs nothing."""
  spec = data.DataSpec.from_config(config.data)
  if spec.is_points:
    return
  if "classifier" in config:  # trains on its train_split, evaluates on its eval_split
    c = config.classifier
    names = {"train": c.get("train_split", "train"), "eval": c.get("eval_split", "test"),
             "train_eval": c.get("eval_split", "test")}
  else:
    names = {"train": "train", "eval": config.eval.bpd_dataset,
             "train_eval": config.eval.bpd_dataset if config.training.eval_freq else None}
  for split in dict.fromkeys(names[s] for s in splits):
    if split is not None:
      spec.definition.load(split, spec.data_dir)


def startup(config, workdir: Optional[str], mode: str) -> None:
  """All start-up checks of `mode`: the config, then the workdir, then the data."""
  check_config(config)
  need_dir, splits = MODE_NEEDS.get(mode, (None, ()))
  check_workdir(workdir, need_dir)
  if "experiment" not in config:
    check_data(config, splits)


def closest(name: str, valid: Iterable[str]) -> Optional[str]:
  """The valid name nearest to a misspelt one, or None."""
  match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
  return match[0] if match else None
