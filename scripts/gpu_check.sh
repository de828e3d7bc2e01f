#!/usr/bin/env bash
# The prepared GPU check: HF backend interactive loop and GRPO steps in bf16 on Qwen2.5-VL-shaped models
# built offline (tiny and ~1B random), figures to a JSON file (scripts/gpu_check.py says which).
#   bash scripts/gpu_check.sh [--out FILE]     on a CUDA machine, under 8 minutes on one H100
#   bash scripts/gpu_check.sh --cpu [--out FILE]  dry run: tiny model, two steps, CPU (the test suite runs it)
# Missing pure-Python packages travel as wheels in .whl/ (bash scripts/gpu_wheels.sh fetches them here);
# they are installed into /tmp/vthinker-site, before the machine's own packages on the path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
if [ -d "$root/.whl" ] && compgen -G "$root/.whl/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/vthinker-site "$root"/.whl/*.whl
  export PYTHONPATH="/tmp/vthinker-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
limit="${VTHINKER_GPU_CHECK_TIMEOUT:-480}"
exec timeout "$limit" "$python" "$root/scripts/gpu_check.py" "$@"
