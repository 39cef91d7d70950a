#!/bin/bash
# labkit VERSION: experiment digits_mlp from /home/ana/analysis/experiments/digits_mlp.yaml
# run directory /home/ana/analysis/runs/digits_mlp/20261124-120000-0123abcd (a requeued job resumes here)
# profile slurm-local: 1 node(s) x 2 task(s), 0 GPU(s) per node
# trainer: accelerator=cpu devices=2 num_nodes=1 strategy=ddp precision=32-true
#SBATCH --job-name=digits_mlp
#SBATCH --output=/home/ana/analysis/runs/digits_mlp/20261124-120000-0123abcd/slurm-%j.out
#SBATCH --chdir=/home/ana/analysis
#SBATCH --partition=debug
#SBATCH --time=00:20:00
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=1
#SBATCH --mem-per-cpu=2G
#SBATCH --signal=USR1@60
#SBATCH --requeue
#SBATCH --open-mode=append
set -eo pipefail

export PYTHONUNBUFFERED=1
export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"  # srun no longer inherits --cpus-per-task (SLURM >= 22.05)
export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK"
export LABKIT_CLUSTER=slurm-local
export LABKIT_SIGNAL=USR1
export LABKIT_REQUEUE=1

echo "labkit: job ${SLURM_JOB_ID} on ${SLURM_JOB_NODELIST}, start $(date -Is), restart ${SLURM_RESTART_COUNT:-0}"
srun --kill-on-bad-exit=1 /opt/venv/bin/python -m labkit run /home/ana/analysis/runs/digits_mlp/20261124-120000-0123abcd/config.yaml --run-dir /home/ana/analysis/runs/digits_mlp/20261124-120000-0123abcd --progress plain
