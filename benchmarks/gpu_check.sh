#!/usr/bin/env bash
# The GPU check (issue 27): on a CUDA machine, NER (CoNLL-2003) and SST-2 with bf16: tunecard with the speed layer
# (speed: auto), without it (speed: off), and the plain Hugging Face recipe, the same data and hyperparameters;
# then predict against transformers.pipeline. Prints each side's throughput and score; the scores must agree.
#
#   benchmarks/gpu_check.sh [TRAIN_SENTENCES]      # default 3000; the data in ../shared/data
#
# Results go to docs/performance.md ("On a GPU") with the card's name (nvidia-smi -L) and the date.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
N=${1:-3000}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi -L || { echo "gpu_check: no NVIDIA GPU here" >&2; exit 2; }
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch has no CUDA here'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
for task in ner sst2; do
  for speed in auto off; do
    echo "== $task, speed $speed (ours) vs the plain recipe (ref), cuda, bf16"
    "$PY" benchmarks/compare_hf.py --task "$task" --device cuda --speed "$speed" --train-sentences "$N" \
      --eval-sentences 1000 | grep -v '^{'
  done
done
