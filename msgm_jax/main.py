"""The one entrypoint: parses flags, checks them and dispatches; nothing else lives here.

  python -m msgm_jax.main --config=configs/<file>.py --workdir=<dir> [--mode=train]
  overrides: --config.training.n_iters=100 (the config is locked: typos fail loudly)

Every mistake in the command, the config or the workdir ends the run before anything is built,
with one `msgm_jax: error:` line naming the fix and exit status 2; --traceback shows the full
trace instead (for bug reports).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from msgm_jax import cli, modes, validate

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, TensorBoard events, samples.")
flags.DEFINE_enum("mode", "train", modes.MODES.names(), "What to do.")
flags.DEFINE_bool("traceback", False, "Show the full traceback of errors (for bug reports).")
flags.DEFINE_bool("allow_config_change", False,
                  "Resume, evaluate or sample a run although the config differs from the run's "
                  "in fields that define the model or the SDE.")
flags.DEFINE_bool("overwrite", False,
                  "Replace existing sample files and re-evaluate already evaluated checkpoints "
                  "(same checkpoint and settings).")
flags.mark_flags_as_required(["config"])


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])} (flags look like --name=value)")
  logging.set_verbosity(logging.INFO)
  # Orbax narrates every save at INFO; keep the run's own messages readable.
  logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)
  options = modes.Options(allow_config_change=FLAGS.allow_config_change,
                          overwrite=FLAGS.overwrite)
  try:
    validate.startup(FLAGS.config, FLAGS.workdir, FLAGS.mode)
    modes.MODES.get(FLAGS.mode)(FLAGS.config, FLAGS.workdir, options)
  except modes.USER_ERRORS as e:
    if FLAGS.traceback:
      raise
    print(f"{cli.PREFIX} {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.flags_parser(FLAGS))
