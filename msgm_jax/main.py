"""The one entrypoint: parses flags, checks them and dispatches; nothing else lives here.

  python -m msgm_jax.main --config=configs/<file>.py --workdir=<dir> [--mode=train]
  overrides: --config.training.n_iters=100 (the config is locked: typos fail loudly)

Several processes (TPU pod slices, multi-node GPU jobs; msgm_jax/runtime/distributed.py) run this same
command: on TPU VMs and in SLURM steps of several tasks they connect by themselves, elsewhere
add --coordinator_address=<host of process 0>:<port> --num_processes=N --process_id=i.

Every mistake in the command, the config or the workdir ends the run before anything is built,
with one `msgm_jax: error:` line naming the fix and exit status 2; --traceback shows the full
trace instead (for bug reports). With several processes, an error in one stops all of them,
each printing the message.

One run per workdir: every mode that writes into the run holds its lock (<workdir>/.lock,
msgm_jax/runtime/workdir_lock.py) while it runs. Ctrl-C (SIGINT) and SIGTERM end the run with one or
two lines (the last checkpoint and the command that resumes) and exit status 130 / 143;
during training SIGTERM, SIGUSR1 and SIGUSR2 are a preemption notice instead: a checkpoint
at the next step, one line, exit status 75 (msgm_jax/runtime/preemption.py, docs/preemption.md).
`--help` / `-h` print the modes, a first command and these flags (cli.usage).
"""

import contextlib
import os
import shlex
import signal
import sys
import traceback

from absl import app, flags, logging
from ml_collections import config_flags

from msgm_jax.cli import terminal as cli
from msgm_jax.runtime import distributed
from msgm_jax.cli import modes
from msgm_jax.runtime import preemption
from msgm_jax.config import validate
from msgm_jax.runtime import workdir_lock

FLAGS = flags.FLAGS
CONSOLE_COMMAND = "msgm-jax"  # [project.scripts] in pyproject.toml
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
flags.DEFINE_enum("distributed", "auto", distributed.MODES,
                  "Multi-process runtime: auto (with --coordinator_address, in a SLURM step of "
                  "several tasks or on a Cloud TPU VM), on (always; JAX detects the cluster) "
                  "or off (one process).")
flags.DEFINE_string("coordinator_address", "",
                    "host:port of process 0's coordination service (several processes).")
flags.DEFINE_integer("num_processes", None, "Number of processes (with --coordinator_address).")
flags.DEFINE_integer("process_id", None, "This process's index, 0..num_processes-1.")
flags.DEFINE_list("local_device_ids", None,
                  "Devices this process uses, e.g. 0,1,2,3 (SLURM otherwise gives one GPU per "
                  "task).")
flags.DEFINE_integer("init_timeout", 120, "Seconds for all processes to connect at start-up.")
flags.DEFINE_integer("heartbeat_timeout", 100,
                     "Seconds after which a silent process counts as dead and JAX stops all.")
flags.mark_flags_as_required(["config"])


def _distributed_settings() -> distributed.Settings:
  ids = FLAGS.local_device_ids
  if ids is not None:
    if not all(i.strip().isdigit() for i in ids):
      raise distributed.DistributedError(
          f"--local_device_ids={','.join(ids)} must be device numbers, e.g. 0,1,2,3")
    ids = [int(i) for i in ids]
  return distributed.Settings(
      mode=FLAGS.distributed, coordinator_address=FLAGS.coordinator_address,
      num_processes=FLAGS.num_processes, process_id=FLAGS.process_id, local_device_ids=ids,
      init_timeout=FLAGS.init_timeout, heartbeat_timeout=FLAGS.heartbeat_timeout)


def command() -> str:
  """The command line of this run, as a user would type it again."""
  started = os.path.basename(sys.argv[0]) if sys.argv else ""
  head = [CONSOLE_COMMAND] if started == CONSOLE_COMMAND else ["python", "-m", "msgm_jax.main"]
  return shlex.join([*head, *sys.argv[1:]])


def _terminated(signum, frame):
  del frame
  raise cli.Interrupted(signal.Signals(signum).name)


def _run_mode(options: modes.Options) -> None:
  """The mode, holding the workdir's lock where it writes into the run."""
  writes = validate.MODE_NEEDS.get(FLAGS.mode, (None, ()))[0] is not None
  with workdir_lock.held(FLAGS.workdir, command()) if writes else contextlib.nullcontext():
    modes.MODES.get(FLAGS.mode)(FLAGS.config, FLAGS.workdir, options)


def _library_noise_filter(record) -> bool:
  """False for the library INFO lines a user cannot act on (see main)."""
  if "orbax" in record.pathname:
    return False
  return not (record.levelno < logging.converter.STANDARD_WARNING and
              record.pathname.endswith("xla_bridge.py") and
              str(record.msg).startswith("Unable to initialize backend"))


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])} (flags look like --name=value)")
  logging.set_verbosity(logging.INFO)
  # Orbax narrates every save at INFO, and JAX reports at INFO each accelerator backend it
  # looked for and did not find ("Unable to initialize backend 'tpu'" on every CPU/GPU
  # machine); keep the run's own messages readable.
  logging.get_absl_handler().addFilter(_library_noise_filter)
  options = modes.Options(allow_config_change=FLAGS.allow_config_change,
                          overwrite=FLAGS.overwrite)
  signal.signal(signal.SIGTERM, _terminated)  # as Ctrl-C: `finally` blocks run, locks go
  one_run = not {"experiment", "classifier"} & set(FLAGS.config.keys())
  # Another process's Ctrl-C: this one's own command goes on (its --process_id).
  distributed.after_peer_stop(lambda code: cli.resume_lines(code, FLAGS.mode, FLAGS.workdir,
                                                            command(), one_run))
  try:
    distributed.initialize(_distributed_settings())
    validate.startup(FLAGS.config, FLAGS.workdir, FLAGS.mode)
    _run_mode(options)
    distributed.report_done()
  except preemption.Preempted as e:
    print(f"msgm_jax: {e}", file=sys.stderr, flush=True)
    sys.exit(preemption.EXIT_STATUS)
  except KeyboardInterrupt as e:
    if FLAGS.traceback:
      traceback.print_exc()
    lines = cli.interrupted_lines(e, FLAGS.mode, FLAGS.workdir, command(), one_run)
    code = cli.interrupted_status(e)
    if distributed.connected():  # the others print the first line and their own second
      distributed.stop_all(lines[0].split(" ", 1)[1], code, prefix="msgm_jax:", then=lines[1:])
    print("\n".join(lines), file=sys.stderr, flush=True)
    sys.exit(code)
  except modes.USER_ERRORS as e:
    if FLAGS.traceback and not distributed.connected():
      raise
    if FLAGS.traceback:
      traceback.print_exc()
    distributed.stop_all(" ".join(str(e).split()), 2)
  except Exception as e:  # pylint: disable=broad-except
    if not distributed.connected():
      raise
    # With several processes a plain raise would leave the others waiting in a collective.
    traceback.print_exc()
    distributed.stop_all(f"{cli.first_line(e)} (the traceback is in this process's log)", 1)


def run() -> None:
  """`python -m msgm_jax.main` and the console command `msgm-jax` (pyproject.toml)."""
  app.run(main, flags_parser=cli.flags_parser(FLAGS, usage=lambda: cli.usage(
      {name: modes.MODES.get(name).__doc__ for name in modes.MODES},
      FLAGS.module_help(sys.argv[0] if __name__ == "__main__" else __name__))))


if __name__ == "__main__":
  run()
