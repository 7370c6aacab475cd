#!/usr/bin/env bash
# Evaluates one trained run with every sampler of docs/fast_samplers.md, timing each command,
# and appends one line per command to <outdir>/runs.txt (the --runs format of
# msgm_jax/experiments/sampler_tradeoff.py). The run is copied first (its checkpoints and
# config.json) to <outdir>/<label>: eval keeps drawn batches for reuse, so a command timed on
# the original workdir after an earlier eval there may time nothing.
#
#   scripts/sampler_tradeoff.sh <label> <workdir> <outdir> <eval flags...>
#   python -m msgm_jax.experiments.sampler_tradeoff --runs=<outdir>/runs.txt --out=<prefix>
#
# <eval flags>: the config and what eval needs, e.g. --config=configs/compositional_phase3.py
# --config.eval.classifier_weights=... (eval mode, --allow_config_change and the losses and
# likelihoods off are added here). SAMPLERS overrides the list: "method:steps[:eta]" words,
# method pc (steps: model.num_scales, empty: the run's own), ode (no steps), ddim, dpm_solver,
# heun.
set -euo pipefail
label="$1" workdir="$2" outdir="$3"
shift 3
SAMPLERS="${SAMPLERS:-pc: dpm_solver:10 dpm_solver:20 dpm_solver:50 dpm_solver:100 \
heun:5 heun:10 heun:25 heun:50 ddim:10 ddim:20 ddim:50 ddim:100 \
ddim:10:1.0 ddim:20:1.0 ddim:50:1.0 ddim:100:1.0 pc:50 pc:100 pc:200 pc:1000 ode:}"
copy="$outdir/$label"
mkdir -p "$copy"
[ -d "$copy/checkpoints" ] || cp -r "$workdir/checkpoints" "$workdir/config.json" "$copy/"
for sampler in $SAMPLERS; do
  IFS=: read -r method steps eta <<< "$sampler"
  args=()
  case "$method" in
    pc) [ -z "$steps" ] || args+=("--config.model.num_scales=$steps") ;;
    ode) args+=("--config.sampling.method=ode") ;;
    *) args+=("--config.sampling.method=$method" "--config.sampling.num_steps=$steps")
       [ -z "${eta:-}" ] || args+=("--config.sampling.ddim_eta=$eta") ;;
  esac
  start=$(date +%s.%N)
  record=$(python -m msgm_jax.main "$@" --workdir="$copy" --mode=eval --allow_config_change \
             --config.eval.enable_loss=False --config.eval.enable_bpd=False "${args[@]}" 2>&1 |
           grep -o ' -> .*ckpt_[0-9]*\.json' | tail -1) || true
  if [ -z "$record" ]; then
    echo "sampler_tradeoff.sh: eval with '$sampler' wrote no record; run it by hand to see why" >&2
    exit 1
  fi
  wall=$(python -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" \
           "$start" "$(date +%s.%N)")
  echo "$label $wall ${record# -> } ${args[*]}" | tee -a "$outdir/runs.txt"
done
