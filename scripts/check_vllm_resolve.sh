#!/usr/bin/env bash
# Check, without installing anything, that the main environment's requirements still resolve
# together with vllm==0.33.0 (the GPU set). Prints the key versions pip would pick.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pip_bin="${PIP:-$root/.venvs/main/bin/pip}"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
"$pip_bin" install --dry-run --ignore-installed --quiet --report "$report" -r "$root/envs/vllm.in" \
  2> >(grep -v "is ignored: it is neither" >&2)
"$(dirname "$pip_bin")/python" - "$report" <<'PY'
import json, sys
picked = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]}
for name in ("vllm", "torch", "transformers", "trl", "lmms-eval", "ms-vlmeval", "datasets"):
    print(f"{name}=={picked.get(name, 'MISSING')}")
missing = [n for n in ("vllm", "torch", "transformers", "trl", "lmms-eval", "ms-vlmeval") if n not in picked]
sys.exit(1 if missing else 0)
PY
