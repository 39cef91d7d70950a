#!/bin/bash
# labkit VERSION: experiment digits_cnn from /home/ana/analysis/experiments/digits_cnn.yaml
# run directory /home/ana/analysis/runs/digits_cnn/20261124-120000-0123abcd (a requeued job resumes here)
# profile national-hpc: 1 node(s) x 4 task(s), 4 GPU(s) per node
# trainer: accelerator=gpu devices=4 num_nodes=1 strategy=ddp precision=16-mixed
#SBATCH --job-name=digits_cnn
#SBATCH --output=/home/ana/analysis/runs/digits_cnn/20261124-120000-0123abcd/slurm-%j.out
#SBATCH --chdir=/home/ana/analysis
#SBATCH --partition=gpu_p13
#SBATCH --account=phy123
#SBATCH --qos=qos_gpu-t3
#SBATCH --time=20:00:00
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=10
#SBATCH --gres=gpu:4
#SBATCH --constraint=v100-32g
#SBATCH --hint=nomultithread
#SBATCH --signal=USR1@600
#SBATCH --requeue
#SBATCH --open-mode=append

# centre documentation: https://hpc.example.org/jobs (support: hpc-support@example.org)
set -eo pipefail

# site setup (profile national-hpc)
module purge
module load apptainer/1.3

export PYTHONUNBUFFERED=1
export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"  # srun no longer inherits --cpus-per-task (SLURM >= 22.05)
export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK"
export MLFLOW_HTTP_REQUEST_TIMEOUT=30
export LABKIT_CLUSTER=national-hpc
export LABKIT_SIGNAL=USR1
export LABKIT_REQUEUE=1

echo "labkit: job ${SLURM_JOB_ID} on ${SLURM_JOB_NODELIST}, start $(date -Is), restart ${SLURM_RESTART_COUNT:-0}"
srun --kill-on-bad-exit=1 apptainer exec --nv --bind /lustre /lustre/fswork/projects/phy123/images/labkit-0.1.sif python -m labkit run /home/ana/analysis/runs/digits_cnn/20261124-120000-0123abcd/config.yaml --run-dir /home/ana/analysis/runs/digits_cnn/20261124-120000-0123abcd --progress plain

sacct -j "$SLURM_JOB_ID" --format=JobID,Elapsed,AllocTRES%60,MaxRSS || true
