#!/usr/bin/env bash
# Idempotent set-up of vthinker-plugins' two environments (see README "Environments"):
#   .venvs/main  TRL 1.16 + lmms-eval + VLMEvalKit + the package (inference, RL, evaluation)
#   .venvs/sft   LlamaFactory 0.9.5 + the package (stage-1 / stage-2 SFT)
# Both install the exact versions in envs/*.lock. Re-running reuses an environment whose
# lock has not changed. VTHINKER_ENV_DIR moves the environments elsewhere.
#   --vllm  (GPU machines) build the main environment from envs/vllm.in: + vllm 0.33.0, torch 2.14.0
#   --vllm-check  (or VTHINKER_VLLM_CHECK=1) also build .venvs/vllm-check from envs/vllm-check.in (vllm 0.33.0 + TRL, no GPU needed)
#                 for the vLLM contract tests (tests/vllm_contract); about 10 GiB and 3 minutes of
#                 downloads. Skipped, with the reason printed and kept in .venvs/vllm-check.skipped,
#                 when the disk is short or the install fails or outlasts VTHINKER_VLLM_CHECK_TIMEOUT
#                 (seconds, default 1200).
set -euo pipefail
with_vllm=0
with_check="${VTHINKER_VLLM_CHECK:-0}"
for arg in "$@"; do
  case "$arg" in
    --vllm) with_vllm=1 ;;
    --vllm-check) with_check=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_dir="${VTHINKER_ENV_DIR:-$root/.venvs}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3

log() { printf '[setup] %s\n' "$*" >&2; }

# The sandbox's outer isolation layer; optional (the per-cell layer works without it).
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing bubblewrap (sandbox namespace layer)"
    (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1; }) \
      || log "bubblewrap unavailable: the sandbox will use its per-cell layers only"
  else
    log "bubblewrap missing and apt not usable: the sandbox will use its per-cell layers only"
  fi
fi

make_env() {  # name requirements-file
  local name="$1" lock="$root/envs/$2" venv="$env_dir/$1"
  local stamp="$venv/.vthinker-lock.sha256" want
  want="$(sha256sum "$lock" | cut -d' ' -f1)"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "$name environment up to date ($venv)"
  else
    log "creating $name environment in $venv (a few minutes the first time)"
    # torch's CUDA build alone is ~5.5 GB per environment: fail early and clearly, not halfway.
    mkdir -p "$env_dir"
    free_kb="$(df -Pk "$env_dir" | awk 'NR==2 {print $4}')"
    if [ "${free_kb:-0}" -lt $((9 * 1024 * 1024)) ]; then
      log "not enough disk space in $env_dir: $((free_kb / 1024)) MiB free, about 9 GiB needed for the $name environment"
      exit 1
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
    "$venv/bin/pip" install -q -r "$lock" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    echo "$want" > "$stamp"
  fi
  # The package itself, editable, so the checkout is what runs (setuptools' notices go to a log).
  "$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$root" >"$venv/.vthinker-editable.log" 2>&1 \
    || { cat "$venv/.vthinker-editable.log" >&2; exit 1; }
}

# The optional vLLM check environment: never fails the set-up, says why it was skipped.
make_check_env() {
  local venv="$env_dir/vllm-check" lock="$root/envs/vllm-check.in" marker="$env_dir/vllm-check.skipped"
  local stamp="$venv/.vthinker-lock.sha256" want need_kb=$((12 * 1024 * 1024)) limit="${VTHINKER_VLLM_CHECK_TIMEOUT:-1200}"
  want="$(sha256sum "$lock" | cut -d' ' -f1)"
  mkdir -p "$env_dir"
  skip() { echo "$1" > "$marker"; rm -rf "$venv"; log "skipping the vLLM check environment: $1"; }
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "vllm-check environment up to date ($venv)"
  else
    free_kb="$(df -Pk "$env_dir" | awk 'NR==2 {print $4}')"
    if [ "${free_kb:-0}" -lt "$need_kb" ]; then
      skip "$((free_kb / 1024)) MiB free in $env_dir, about 12 GiB needed (vllm 0.33.0 with CUDA torch)"; return 0
    fi
    log "creating the vllm-check environment in $venv (about 10 GiB, a few minutes)"
    rm -rf "$venv"
    local start=$SECONDS
    if ! { "$python" -m venv "$venv" && "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 \
           && timeout "$limit" "$venv/bin/python" -m pip install -q -r "$lock" \
              2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }; then
      skip "installing envs/vllm-check.in failed or took over ${limit}s (see the pip output above)"; return 0
    fi
    echo "$want" > "$stamp"
    log "vllm-check environment built in $((SECONDS - start))s ($(du -sh "$venv" | cut -f1))"
  fi
  rm -f "$marker"
  "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$root" >"$venv/.vthinker-editable.log" 2>&1 \
    || { cat "$venv/.vthinker-editable.log" >&2; skip "installing the package failed"; }
}

if [ "$with_vllm" = 1 ]; then make_env main vllm.in; else make_env main main.lock; fi
if [ "$with_check" = 1 ]; then make_check_env; fi
make_env sft sft.lock
# Lets plain `llamafactory-cli train` (and its torchrun workers) find our chat template: a .pth
# import hook that registers it when LlamaFactory loads its templates (llamafactory_configs/README.md).
"$env_dir/sft/bin/python" -m vthinker_plugins.llamafactory.hook install >/dev/null
log "ready: $env_dir/main/bin/vthinker, $env_dir/sft/bin/llamafactory-cli"
