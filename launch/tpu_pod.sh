#!/usr/bin/env bash
# A Cloud TPU VM slice (one host or a pod slice): create it or reuse it, install this project
# on every worker, mount a bucket at the same path on all of them, run the same
# `python -m msgm_jax.main` on --worker=all (one process per host; JAX finds the others through
# the TPU metadata) and copy each worker's log back.
#
#   launch/tpu_pod.sh --tpu=NAME --zone=ZONE --accelerator=v4-32 --bucket=BUCKET \
#       [--project=ID] [--version=tpu-ubuntu2204-base] [--spot] [--mount=/mnt/msgm] \
#       [--skip_install] [--log_dir=logs] [--dry-run] -- \
#       --config=configs/<file>.py --workdir=/mnt/msgm/runs/<name> \
#       --config.data.data_dir=/mnt/msgm/tensorflow_datasets [more main flags]
#
# The workdir and the data must be under --mount (the bucket, through gcsfuse): checkpoints are
# written by all hosts into one directory. Rerun the same command after a preemption: the slice
# is reused (or recreated) and training resumes from the last checkpoint.
set -euo pipefail

usage() {
  echo "usage: launch/tpu_pod.sh --tpu=NAME --zone=ZONE --accelerator=TYPE --bucket=BUCKET" \
    "[--project=ID] [--version=RUNTIME] [--spot] [--mount=DIR] [--skip_install]" \
    "[--log_dir=DIR] [--dry-run] -- --config=configs/<file>.py --workdir=<mount>/runs/<name>" \
    "[python -m msgm_jax.main flags]" >&2
  exit 2
}
die() { echo "launch/tpu_pod.sh: $*" >&2; usage; }

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TPU="" ZONE="" ACCEL="" BUCKET="" PROJECT="" VERSION="tpu-ubuntu2204-base" SPOT=0
MOUNT="/mnt/msgm" INSTALL=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tpu=*) TPU="${1#*=}" ;;
    --zone=*) ZONE="${1#*=}" ;;
    --accelerator=*) ACCEL="${1#*=}" ;;
    --bucket=*) BUCKET="${1#*=}"; BUCKET="${BUCKET#gs://}" ;;
    --project=*) PROJECT="${1#*=}" ;;
    --version=*) VERSION="${1#*=}" ;;
    --spot) SPOT=1 ;;
    --mount=*) MOUNT="${1#*=}" ;;
    --skip_install) INSTALL=0 ;;
    --) shift; break ;;
    *) common_option "$1" || die "unknown option $1 (python flags go after --)" ;;
  esac
  shift
done
ARGS=("$@")
[[ -n "$TPU" ]] || die "missing --tpu=NAME"
[[ -n "$ZONE" ]] || die "missing --zone=ZONE"
[[ -n "$ACCEL" ]] || die "missing --accelerator=TYPE (e.g. v4-32)"
[[ -n "$BUCKET" ]] || die "missing --bucket=BUCKET (it holds the workdir and the data)"
require_main_flags launch/tpu_pod.sh "$@"
[[ " ${ARGS[*]} " == *" --workdir=$MOUNT/"* ]] ||
  die "--workdir must be under --mount=$MOUNT (the bucket every worker sees)"

GCLOUD=(gcloud compute tpus tpu-vm)
WHERE=(--zone="$ZONE")
[[ -n "$PROJECT" ]] && WHERE+=(--project="$PROJECT")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARBALL="/tmp/msgm_jax_$TPU.tar.gz"
LOG="msgm_jax_worker.log"

quote() { printf '%q ' "$@"; }

# 1. Create the slice, or reuse it.
if [[ $DRY_RUN -eq 1 ]] || ! "${GCLOUD[@]}" describe "$TPU" "${WHERE[@]}" >/dev/null 2>&1; then
  CREATE=("${GCLOUD[@]}" create "$TPU" "${WHERE[@]}" --accelerator-type="$ACCEL"
          --version="$VERSION")
  [[ $SPOT -eq 1 ]] && CREATE+=(--spot)
  [[ $DRY_RUN -eq 1 ]] && echo "# if '${GCLOUD[*]} describe $TPU' fails:"
  run "${CREATE[@]}"
fi

# 2. Install this commit of the project on every worker and mount the bucket.
APT=https://packages.cloud.google.com/apt
KEY=/usr/share/keyrings/cloud.google.asc
SETUP="set -e
mkdir -p ~/msgm_jax && tar -xzf ~/msgm_jax.tar.gz -C ~/msgm_jax
python3 -m pip install -q -U pip
python3 -m pip install -q -e ~/msgm_jax 'jax[tpu]>=0.10.2,<0.13'
if ! command -v gcsfuse >/dev/null; then
  curl -s $APT/doc/apt-key.gpg | sudo tee $KEY >/dev/null
  echo \"deb [signed-by=$KEY] $APT gcsfuse-\$(lsb_release -cs) main\" |
    sudo tee /etc/apt/sources.list.d/gcsfuse.list
  sudo apt-get update -q && sudo apt-get install -y -q gcsfuse
fi
mountpoint -q $MOUNT || { sudo mkdir -p $MOUNT && sudo chown \$USER $MOUNT &&
  gcsfuse --implicit-dirs --rename-dir-limit=1000000 $BUCKET $MOUNT; }"
if [[ $INSTALL -eq 1 ]]; then
  run git -C "$ROOT" archive --format=tar.gz -o "$TARBALL" HEAD
  run "${GCLOUD[@]}" scp "$TARBALL" "$TPU:~/msgm_jax.tar.gz" --worker=all "${WHERE[@]}"
  run "${GCLOUD[@]}" ssh "$TPU" --worker=all "${WHERE[@]}" --command="$SETUP"
fi

# 3. The same command on every worker. --distributed=on: JAX reads the slice's workers from
# the TPU metadata; without it a slice whose detection failed would run N separate trainings.
MAIN=(python3 -m msgm_jax.main --distributed=on "${ARGS[@]}")
COMMAND="cd ~/msgm_jax && $(quote "${MAIN[@]}")2>&1 | tee -a ~/$LOG; exit \${PIPESTATUS[0]}"
set +e
run "${GCLOUD[@]}" ssh "$TPU" --worker=all "${WHERE[@]}" --command="$COMMAND"
STATUS=$?
set -e

# 4. Every worker's log (process 0's holds the progress bar and the final line).
if [[ $DRY_RUN -eq 1 ]]; then
  echo "# for each worker i of $TPU (${GCLOUD[*]} describe ... networkEndpoints):"
  echo "+ ${GCLOUD[*]} scp $TPU:~/$LOG $LOG_DIR/$TPU/worker_\$i.log --worker=\$i ${WHERE[*]}"
  exit 0
fi
WORKERS=$("${GCLOUD[@]}" describe "$TPU" "${WHERE[@]}" \
  --format='value(networkEndpoints[].ipAddress)' | tr ';,' '\n\n' | grep -c .)
mkdir -p "$LOG_DIR/$TPU"
for ((i = 0; i < WORKERS; i++)); do
  run "${GCLOUD[@]}" scp "$TPU:~/$LOG" "$LOG_DIR/$TPU/worker_$i.log" --worker="$i" "${WHERE[@]}" ||
    echo "launch/tpu_pod.sh: no log from worker $i" >&2
done
echo "logs: $LOG_DIR/$TPU/worker_*.log"
exit "$STATUS"
