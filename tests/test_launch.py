"""The launch scripts: bash syntax, what their dry runs print, and usage errors.

Dry runs must not need gcloud, srun or a GPU (none is here), and must print the one
entrypoint with the flags that make the processes find each other.
"""

import os
import subprocess

import pytest

from tests.helpers import ROOT

SCRIPTS = ("launch/gpu.sh", "launch/tpu_pod.sh", "launch/slurm.sbatch")
MAIN = ["--", "--config=configs/msgm/cifar10_ve_ncsnpp_continuous.py"]
TPU = ["--tpu=msgm", "--zone=us-central2-b", "--accelerator=v4-32", "--bucket=gs://b"]


def _bash(script, *args, env=None):
  # A PATH without gcloud, srun or nvidia-smi: a dry run that called them would fail.
  full = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
  return subprocess.run(["bash", script, *args], cwd=ROOT, env=full, capture_output=True,
                        text=True, timeout=60)


def _commands(out):
  """The printed commands: lines that start with '+ '."""
  return [line[2:] for line in out.stdout.splitlines() if line.startswith("+ ")]


@pytest.mark.parametrize("script", SCRIPTS)
def test_syntax(script):
  out = subprocess.run(["bash", "-n", script], cwd=ROOT, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr


def test_gpu_dry_run_is_one_process_on_the_chosen_gpus():
  out = _bash("launch/gpu.sh", "--gpus=0,1,2,3", "--dry-run", *MAIN, "--workdir=runs/c10",
              "--config.training.batch_size=128")
  assert out.returncode == 0, out.stderr
  (cmd,) = _commands(out)
  assert cmd.startswith("CUDA_VISIBLE_DEVICES=0,1,2,3 XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 "
                        "python -m msgm_jax.main --distributed=off "
                        "--config=configs/msgm/cifar10_ve_ncsnpp_continuous.py "
                        "--workdir=runs/c10 --config.training.batch_size=128 2>&1 | tee -a logs/")


def test_tpu_dry_run_creates_installs_runs_on_all_workers_and_collects_logs():
  out = _bash("launch/tpu_pod.sh", *TPU, "--project=p", "--spot", "--dry-run", *MAIN,
              "--workdir=/mnt/msgm/runs/c10",
              "--config.data.data_dir=/mnt/msgm/tensorflow_datasets")
  assert out.returncode == 0, out.stderr
  cmds = _commands(out)
  where = "--zone=us-central2-b --project=p"
  assert cmds[0] == ("gcloud compute tpus tpu-vm create msgm " + where +
                     " --accelerator-type=v4-32 --version=tpu-ubuntu2204-base --spot")
  assert cmds[1].startswith("git -C ") and cmds[1].endswith(" archive --format=tar.gz -o "
                                                            "/tmp/msgm_jax_msgm.tar.gz HEAD")
  assert cmds[2] == ("gcloud compute tpus tpu-vm scp /tmp/msgm_jax_msgm.tar.gz "
                     f"msgm:~/msgm_jax.tar.gz --worker=all {where}")
  assert cmds[3].startswith(f"gcloud compute tpus tpu-vm ssh msgm --worker=all {where} "
                            "--command=set -e")
  assert "gcsfuse --implicit-dirs --rename-dir-limit=1000000 b /mnt/msgm" in out.stdout
  assert cmds[4] == (f"gcloud compute tpus tpu-vm ssh msgm --worker=all {where} --command=cd "
                     "~/msgm_jax && python3 -m msgm_jax.main --distributed=on "
                     "--config=configs/msgm/cifar10_ve_ncsnpp_continuous.py "
                     "--workdir=/mnt/msgm/runs/c10 "
                     "--config.data.data_dir=/mnt/msgm/tensorflow_datasets 2>&1 | tee -a "
                     "~/msgm_jax_worker.log; exit ${PIPESTATUS[0]}")
  assert cmds[5] == ("gcloud compute tpus tpu-vm scp msgm:~/msgm_jax_worker.log "
                     f"logs/msgm/worker_$i.log --worker=$i {where}")
  skipped = _bash("launch/tpu_pod.sh", *TPU, "--skip_install", "--dry-run", *MAIN,
                  "--workdir=/mnt/msgm/runs/c10")
  assert [c.split(" --")[0] for c in _commands(skipped)] == [
      "gcloud compute tpus tpu-vm create msgm", "gcloud compute tpus tpu-vm ssh msgm",
      "gcloud compute tpus tpu-vm scp msgm:~/msgm_jax_worker.log logs/msgm/worker_$i.log"]


def test_slurm_dry_run_is_one_process_per_node_with_all_its_gpus():
  out = _bash("launch/slurm.sbatch", "--dry-run", *MAIN, "--workdir=/shared/c10",
              env={"SLURM_GPUS_ON_NODE": "h100:4"})
  assert out.returncode == 0, out.stderr
  assert _commands(out) == [
      "srun --kill-on-bad-exit=1 --wait=120 python -m msgm_jax.main --distributed=on "
      "--local_device_ids=0,1,2,3 --config=configs/msgm/cifar10_ve_ncsnpp_continuous.py "
      "--workdir=/shared/c10"]
  per_gpu = _bash("launch/slurm.sbatch", "--dry-run", *MAIN, "--workdir=/shared/c10",
                  env={"LOCAL_DEVICE_IDS": "auto"})
  assert "--local_device_ids" not in per_gpu.stdout and "--distributed=on" in per_gpu.stdout
  with open(os.path.join(ROOT, "launch/slurm.sbatch")) as f:
    directives = [l for l in f if l.startswith("#SBATCH")]
  assert "#SBATCH --ntasks-per-node=1\n" in directives


@pytest.mark.parametrize("script,args,missing", [
    ("launch/gpu.sh", ["--dry-run", "--", "--workdir=w"], "missing --config"),
    ("launch/gpu.sh", ["--dry-run", *MAIN], "missing --workdir"),
    ("launch/gpu.sh", ["--gpu=0", *MAIN, "--workdir=w"], "unknown option --gpu=0"),
    ("launch/tpu_pod.sh", [*TPU[1:], "--dry-run", *MAIN, "--workdir=/mnt/msgm/r"],
     "missing --tpu"),
    ("launch/tpu_pod.sh", [*TPU[:3], "--dry-run", *MAIN, "--workdir=/mnt/msgm/r"],
     "missing --bucket"),
    ("launch/tpu_pod.sh", [*TPU, "--dry-run", *MAIN, "--workdir=runs/r"],
     "--workdir must be under --mount=/mnt/msgm"),
    ("launch/slurm.sbatch", ["--dry-run", "--", "--workdir=w"], "missing --config"),
    ("launch/slurm.sbatch", [*MAIN, "--workdir=w"], "not inside a SLURM job"),
])
def test_missing_arguments_get_a_usage_line(script, args, missing):
  out = _bash(script, *args)
  assert out.returncode == 2 and out.stdout == ""
  lines = out.stderr.splitlines()
  assert missing in lines[0] and lines[-1].startswith("usage: ")
