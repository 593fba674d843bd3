#!/usr/bin/env bash
# GPU check (issue 15): sampling, one reward-model step and one PPO step of the paper preset on
# a GPT-2 774M configuration with random weights; tokens/s and MFU for each (bench/gpu_check.py,
# bench/README.md). Installs nothing and downloads nothing; under 5 minutes on one GPU.
#   bench/gpu_check.sh                       # CUDA
#   bench/gpu_check.sh --peak-tflops 989     # GPU not in the peak table
#   bench/gpu_check.sh --device cpu --tiny   # dry run (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec "$PYTHON" bench/gpu_check.py "$@"
