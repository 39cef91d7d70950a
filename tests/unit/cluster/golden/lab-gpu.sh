#!/bin/bash
# labkit VERSION: experiment digits_cnn from /home/ana/analysis/experiments/digits_cnn.yaml
# run directory /home/ana/analysis/runs/digits_cnn/20261124-120000-0123abcd (a requeued job resumes here)
# profile lab-gpu: 1 node(s) x 1 task(s), 1 GPU(s) per node
# trainer: accelerator=gpu devices=1 num_nodes=1 strategy=auto precision=bf16-mixed
#SBATCH --job-name=digits_cnn
#SBATCH --output=/home/ana/analysis/runs/digits_cnn/20261124-120000-0123abcd/slurm-%j.out
#SBATCH --chdir=/home/ana/analysis
#SBATCH --partition=gpu
#SBATCH --qos=normal
#SBATCH --time=12:00:00
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:a100:1
#SBATCH --mem=64G
#SBATCH --signal=USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
set -eo pipefail

# site setup (profile lab-gpu)
module purge
module load cuda/12.4 gcc/12
source "$HOME/venvs/labkit/bin/activate"

export PYTHONUNBUFFERED=1
export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"  # srun no longer inherits --cpus-per-task (SLURM >= 22.05)
export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK"
export NCCL_DEBUG=WARN
export LABKIT_CLUSTER=lab-gpu
export LABKIT_SIGNAL=USR1
export LABKIT_REQUEUE=1

echo "labkit: job ${SLURM_JOB_ID} on ${SLURM_JOB_NODELIST}, start $(date -Is), restart ${SLURM_RESTART_COUNT:-0}"
srun python -m labkit run /home/ana/analysis/runs/digits_cnn/20261124-120000-0123abcd/config.yaml --run-dir /home/ana/analysis/runs/digits_cnn/20261124-120000-0123abcd --progress plain
