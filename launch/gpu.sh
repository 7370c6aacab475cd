#!/usr/bin/env bash
# One GPU node, all its GPUs, one process: data parallelism over them inside one JAX process.
#
#   launch/gpu.sh [--gpus=0,1,2,3] [--log_dir=logs] [--dry-run] -- \
#       --config=configs/<file>.py --workdir=<dir> [more python -m msgm_jax.main flags]
#
# --distributed=off keeps it one process even inside a SLURM allocation, where JAX would
# otherwise detect SLURM and give the process one GPU. Rerun the same command to resume.
set -euo pipefail

usage() {
  echo "usage: launch/gpu.sh [--gpus=0,1,...] [--log_dir=logs] [--dry-run] --" \
    "--config=configs/<file>.py --workdir=<dir> [python -m msgm_jax.main flags]" >&2
  exit 2
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
GPUS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gpus=*) GPUS="${1#*=}" ;;
    --) shift; break ;;
    *) common_option "$1" ||
         { echo "launch/gpu.sh: unknown option $1 (python flags go after --)" >&2; usage; } ;;
  esac
  shift
done
ARGS=("$@")
require_main_flags launch/gpu.sh "$@"

if [[ -z "$GPUS" ]]; then
  if [[ $DRY_RUN -eq 1 ]]; then
    GPUS="<all GPUs that nvidia-smi -L lists>"
  else
    N=$(nvidia-smi -L | wc -l)
    [[ $N -gt 0 ]] || { echo "launch/gpu.sh: nvidia-smi lists no GPU" >&2; exit 2; }
    GPUS=$(seq -s, 0 $((N - 1)))
  fi
fi
LOG="$LOG_DIR/gpu_$(date +%Y%m%d_%H%M%S).log"
# JAX preallocates a fraction of each GPU's memory (0.75 by default); the data pipeline and
# the logs stay on the host.
MEM="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
CMD=(python -m msgm_jax.main --distributed=off "${ARGS[@]}")

echo "+ CUDA_VISIBLE_DEVICES=$GPUS XLA_PYTHON_CLIENT_MEM_FRACTION=$MEM ${CMD[*]} 2>&1 | tee -a $LOG"
[[ $DRY_RUN -eq 1 ]] && exit 0
mkdir -p "$LOG_DIR"
CUDA_VISIBLE_DEVICES="$GPUS" XLA_PYTHON_CLIENT_MEM_FRACTION="$MEM" "${CMD[@]}" 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
