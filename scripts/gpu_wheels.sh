#!/usr/bin/env bash
# Fetch into .whl/ the pure-Python wheels scripts/gpu_check.sh needs on the GPU machine (Python 3.12;
# it has torch 2.11, transformers 5.17, accelerate, peft, pyarrow, pandas, no TRL, datasets or
# math-verify). Their other needs are on that machine, but check there with pip that its pyarrow (datasets
# wants >= 24), regex and fsspec versions satisfy them. Exactly one version of each: the main environment's pins (envs/main.lock). Prints the total size.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.whl"
mkdir -p "$dest"
wheels=()
for name in transformers trl datasets dill multiprocess math-verify latex2sympy2_extended antlr4-python3-runtime; do
  pin="$(grep -i "^${name}==" "$root/envs/main.lock")" || { echo "gpu_wheels.sh: $name is not in envs/main.lock" >&2; exit 1; }
  wheels+=("$pin")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$dest" "${wheels[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
du -ch "$dest"/*.whl | tail -1
