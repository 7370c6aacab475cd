"""The one entrypoint: parses flags and dispatches; nothing else lives here.

  python -m msgm_jax.main --config=configs/<file>.py --workdir=<dir> [--mode=train]
  overrides: --config.training.n_iters=100 (the config is locked: typos fail loudly)
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from msgm_jax import modes

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, TensorBoard events, samples.")
flags.DEFINE_enum("mode", "train", modes.MODES.names(), "What to do.")
flags.DEFINE_bool("traceback", False, "Show the full traceback of user errors.")
flags.mark_flags_as_required(["config"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO)
  # Orbax narrates every save at INFO; keep the run's own messages readable.
  logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)
  try:
    modes.MODES.get(FLAGS.mode)(FLAGS.config, FLAGS.workdir)
  except modes.USER_ERRORS as e:
    if FLAGS.traceback:
      raise
    print(f"msgm_jax: error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
