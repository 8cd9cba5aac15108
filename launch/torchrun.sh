#!/usr/bin/env bash
# codeclm training on one or more machines without SLURM, through torchrun.
#
#   launch/torchrun.sh lm fit --config configs/lm/valle-ar-base.yaml --data.shards runs/speech/tokens
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 launch/torchrun.sh lm fit ...   # on node0
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=node0 launch/torchrun.sh lm fit ...   # on node1
#
# Environment: NPROC_PER_NODE (default: the GPUs nvidia-smi lists, else 1), NNODES (1),
# NODE_RANK (0), MASTER_ADDR (127.0.0.1), MASTER_PORT (29500), CODECLM_PYTHON (.venv/bin/python).
# Adds --trainer.devices, --trainer.num_nodes and --ckpt_path auto, so running the same command
# again after a crash, a kill or Ctrl-C resumes from the newest complete checkpoint. SIGTERM
# (what torchrun forwards on Ctrl-C or from a scheduler) makes every rank finish its step, save
# one checkpoint together and exit.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 {codec|lm} fit --config CONFIG [options]" >&2
    exit 2
fi
python="${CODECLM_PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi
if [[ -z "${NPROC_PER_NODE:-}" ]]; then
    NPROC_PER_NODE=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU' || true)
    [[ "$NPROC_PER_NODE" -ge 1 ]] || NPROC_PER_NODE=1
fi
NNODES="${NNODES:-1}"

exec "$python" -m torch.distributed.run --nnodes "$NNODES" --node-rank "${NODE_RANK:-0}" \
    --nproc-per-node "$NPROC_PER_NODE" --master-addr "${MASTER_ADDR:-127.0.0.1}" \
    --master-port "${MASTER_PORT:-29500}" -m launch.cli \
    "$@" --trainer.devices "$NPROC_PER_NODE" --trainer.num_nodes "$NNODES" --ckpt_path auto
