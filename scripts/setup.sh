#!/usr/bin/env bash
# Idempotent set-up of vthinker-plugins' two environments (see README "Environments"):
#   .venvs/main  TRL 1.16 + lmms-eval + VLMEvalKit + the package (inference, RL, evaluation)
#   .venvs/sft   LlamaFactory 0.9.5 + the package (stage-1 / stage-2 SFT)
# Both install the exact versions in envs/*.lock. Re-running reuses an environment whose
# lock has not changed. VTHINKER_ENV_DIR moves the environments elsewhere.
set -euo pipefail
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

make_env() {  # name lockfile
  local name="$1" lock="$root/envs/$2" venv="$env_dir/$1"
  local stamp="$venv/.vthinker-lock.sha256" want
  want="$(sha256sum "$lock" | cut -d' ' -f1)"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "$name environment up to date ($venv)"
  else
    log "creating $name environment in $venv (a few minutes the first time)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
    "$venv/bin/pip" install -q -r "$lock" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    echo "$want" > "$stamp"
  fi
  # The package itself, editable, so the checkout is what runs.
  "$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$root" 2> >(grep -v "is ignored: it is neither" >&2)
}

make_env main main.lock
make_env sft sft.lock
log "ready: $env_dir/main/bin/vthinker, $env_dir/sft/bin/llamafactory-cli"
