#!/usr/bin/env bash
# The premise on the colour digits (docs/compositional_report.md): Standard and Unseen by
# re-training through the entrypoint, sample mode, then the NSFG rates against the floor.
#
#   bash scripts/compositional_premise.sh <outdir> [steps=6000] [samples=1000] [overrides...]
#
# e.g. bash scripts/compositional_premise.sh runs/premise 6000 1000 --config.seed=1
# Overrides go to both runs (e.g. '--config.data.nsfg_classes=(27,)' for blue sevens alone;
# the rates then use the same NSFG set). Rerunning resumes or skips finished steps. Writes
# <outdir>/rates.json and prints it; the wall time of each stage goes to <outdir>/times.txt.
# About 25 minutes on 2 shared cores at the defaults.
set -euo pipefail
out=${1:?usage: compositional_premise.sh <outdir> [steps] [samples] [overrides...]}
steps=${2:-6000}
num=${3:-1000}
shift $(( $# < 3 ? $# : 3 ))
config=configs/colour_digits_ddpm.py
mkdir -p "$out"

timed() {  # timed <label> <command...>: runs it and appends its wall seconds to times.txt
  local label=$1 start=$SECONDS
  shift
  "$@"
  echo "$label $(( SECONDS - start ))s" >> "$out/times.txt"
}

if [ ! -f "$out/classifier_digits/classifier_eval.json" ]; then
  timed classifier python -m msgm_jax.main --config=configs/classifier/digits.py \
      --workdir="$out/classifier_digits"
fi
samples=""
for regime in standard unseen; do
  run=(--config="$config" --workdir="$out/$regime" --config.training.regime=$regime
       --config.training.n_iters="$steps" "$@")
  timed "train_$regime" python -m msgm_jax.main "${run[@]}" \
      --config.training.snapshot_sampling=False
  npz="$out/$regime/samples/eval_$steps.npz"
  if [ ! -f "$npz" ]; then
    timed "sample_$regime" python -m msgm_jax.main "${run[@]}" --mode=sample \
        --config.eval.num_samples="$num" --config.sampling.batch_size=500
  fi
  samples="$samples --samples=$regime=$npz"
done
# shellcheck disable=SC2086
python -m msgm_jax.experiments.colour_rates --classifier="$out/classifier_digits" --config="$config" \
    "$@" $samples --out="$out/rates.json"
