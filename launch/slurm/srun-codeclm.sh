#!/usr/bin/env bash
# The body shared by the sbatch templates: runs `codeclm "$@"` as one srun task per GPU of the
# allocation, with the options that make a requeued job resume where it stopped.
# Environment: CODECLM (the command, default .venv/bin/codeclm, else codeclm on PATH),
# CODECLM_LOGGER_VERSION (default slurm-$SLURM_JOB_ID; empty: leave the logger alone),
# CODECLM_SRUN_ARGS (extra srun options).
set -euo pipefail

if [[ -z "${SLURM_JOB_ID:-}" ]]; then
    echo "srun-codeclm.sh: not inside a SLURM allocation; submit with sbatch (or use launch/torchrun.sh)" >&2
    exit 2
fi
if [[ $# -eq 0 ]]; then
    echo "usage: sbatch $0 {codec|lm} fit --config CONFIG [options]" >&2
    exit 2
fi

if [[ -z "${CODECLM:-}" ]]; then
    if [[ -x .venv/bin/codeclm ]]; then CODECLM=.venv/bin/codeclm; else CODECLM=codeclm; fi
fi
tasks_per_node="${SLURM_NTASKS_PER_NODE:-1}"
tasks_per_node="${tasks_per_node%%(*}"  # "8(x4)" -> "8"
nodes="${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}"
version="${CODECLM_LOGGER_VERSION-slurm-${SLURM_JOB_ID}}"

args=("$@" --trainer.devices "$tasks_per_node" --trainer.num_nodes "$nodes" --ckpt_path auto)
if [[ -n "$version" ]]; then
    args+=(--trainer.logger.init_args.version "$version")
fi

export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-4}}"
export TORCH_NCCL_ASYNC_ERROR_HANDLING=1   # a dead rank ends the job instead of hanging it
export PYTHONUNBUFFERED=1
mkdir -p runs/slurm

echo "codeclm: job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}) on ${nodes} node(s) x ${tasks_per_node} task(s): $CODECLM ${args[*]}"
# shellcheck disable=SC2086
srun --kill-on-bad-exit=1 --ntasks-per-node="$tasks_per_node" ${CODECLM_SRUN_ARGS:-} "$CODECLM" "${args[@]}"
