#!/usr/bin/env bash
# GPU speed of the CIFAR-10 DDPM++ (VP) and NCSN++ (VE) U-Nets in bfloat16 and float32
# (issue 14 item 5): train step time, images/s and MFU from `python -m msgm_jax.tools.bench`, plus
# one short PC-sampling measurement, as JSON files. Sized for a few minutes of device time:
# most of it is compilation (kept in JAX_COMPILATION_CACHE_DIR, default
# /tmp/msgm_jax_cache, so a rerun on the same machine is faster).
#
#   scripts/gpu_bench.sh [OUT_DIR]      (default: $OUT if set, else ./gpu_bench)
#
# EXTRA: more bench arguments for every command, e.g. a CPU dry run of the script itself:
#   EXTRA="--config.model.nf=16 --config.model.num_res_blocks=1 --config.training.batch_size=4
#   --config.sampling.batch_size=4" STEPS=1 scripts/gpu_bench.sh /tmp/gpu_bench_dry
# Writes OUT_DIR/<config>_<dtype>_train.json, OUT_DIR/ddpmpp_bfloat16_sample.json and
# OUT_DIR/env.txt (nvidia-smi, jax version). Each command has a time limit, so one slow
# compilation cannot use up the session; a failed command is reported and the rest still run.
# Record the numbers in docs/performance.md ("GPU and TPU") with the date and the device.
set -uo pipefail
out="${1:-${OUT:-gpu_bench}}"
mkdir -p "$out"
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-/tmp/msgm_jax_cache}"
py="${PYTHON:-python3}"
steps="${STEPS:-10}"
limit="${LIMIT_S:-150}"

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$py" -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

run() {  # name, then bench arguments
  local name="$1"; shift
  local t0=$SECONDS
  # shellcheck disable=SC2086  # EXTRA is a list of arguments
  if timeout "$limit" "$py" -m msgm_jax.tools.bench "$@" ${EXTRA:-} --out="$out/$name.json" > /dev/null \
      2> "$out/$name.err"; then
    "$py" - "$out/$name.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
mfu = lambda b: "n/a" if b["mfu"] is None else f"{b['mfu']:.3f}"
if "train" in r:
  b = r["train"]
  print(f"  train: {b['step_time_s']['median']:.4f} s/step, {b['images_per_s']:.0f} images/s, "
        f"MFU {mfu(b)}, compile {b['compile_s']:.0f} s")
if "sample" in r:
  b = r["sample"]
  print(f"  sample: {b['nfe_per_s']:.1f} NFE/s, {b['seconds_per_1000_steps']:.1f} s per 1000 "
        f"steps (batch {b['batch']}), MFU {mfu(b)}, compile {b['compile_s']:.0f} s")
EOF
    echo "ok   $name ($((SECONDS - t0)) s)"
  else
    echo "FAIL $name ($((SECONDS - t0)) s): $(tail -n 3 "$out/$name.err")"
  fi
}

for cfg in vp/cifar10_ddpmpp_continuous ve/cifar10_ncsnpp_continuous; do
  short="${cfg#*/cifar10_}"; short="${short%_continuous}"
  for dtype in bfloat16 float32; do
    run "${short}_${dtype}_train" --config="configs/$cfg.py" --what=train --steps="$steps" \
        --warmup=2 --config.model.dtype="$dtype"
  done
done
run ddpmpp_bfloat16_sample --config=configs/vp/cifar10_ddpmpp_continuous.py --what=sample \
    --steps=2 --warmup=1 --sample_steps=50 --config.model.dtype=bfloat16
