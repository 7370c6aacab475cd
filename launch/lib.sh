# Shared by launch/gpu.sh and launch/tpu_pod.sh (sourced). slurm.sbatch stands alone: sbatch
# runs a copy of it from its spool directory, where this file is not next to it.

DRY_RUN=0
LOG_DIR=logs

# Consumes one option every script takes; returns 1 for any other.
common_option() {
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --log_dir=*) LOG_DIR="${1#*=}" ;;
    -h|--help) usage ;;
    *) return 1 ;;
  esac
}

# The python flags after -- must name the config and the workdir: usage() otherwise.
require_main_flags() {
  local script=$1 flag
  shift
  for flag in --config --workdir; do
    if [[ " $* " != *" $flag="* ]]; then
      echo "$script: missing $flag=... after --" >&2
      usage
    fi
  done
}

# Prints a command, then runs it unless --dry-run.
run() {
  echo "+ $*"
  [[ $DRY_RUN -eq 1 ]] || "$@"
}
