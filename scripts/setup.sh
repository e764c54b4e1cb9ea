#!/usr/bin/env bash
# Create .venv/ at the repo root with everything pinned: Airflow 3.3.1 and the providers at the
# versions MWAA runs (requirements.txt), the test tools (requirements-dev.txt), all resolved
# through constraints.txt. Uses Python 3.12 (MWAA's) when it can find it. Re-running is a no-op
# unless one of those files changed.
set -euo pipefail
cd "$(dirname "$0")/.."

AIRFLOW_VERSION=3.3.1
# uv installs the same pinned set as pip in seconds instead of minutes (measured 2026-12-02 on a
# fresh machine: 9 s against about 9 min for the 230 packages); pip stays as the fallback.
UV_VERSION=0.9.30

find_python() {
  local candidates=("${PYTHON:-}" python3.12)
  local root
  if root=$(pyenv root 2>/dev/null); then candidates+=("$root"/versions/3.12*/bin/python3.12); fi
  candidates+=(/root/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 python3)
  for c in "${candidates[@]}"; do
    [ -n "$c" ] || continue
    if "$c" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)' >/dev/null 2>&1; then
      command -v "$c" 2>/dev/null || echo "$c"
      return 0
    fi
  done
  echo "no Python 3.10-3.13 found (set PYTHON=/path/to/python3.12)" >&2
  return 1
}

stamp_of() { cat constraints.txt requirements.txt requirements-dev.txt scripts/setup.sh | sha256sum | cut -c1-16; }
stamp=".venv/.installed-$(stamp_of)"
if [ -f "$stamp" ]; then
  exit 0
fi

PY=$(find_python)
echo "Creating .venv with $("$PY" --version) ($PY)"
rm -rf .venv
"$PY" -m venv .venv
# (This machine kind's pip config lists local index folders that may not exist: drop that noise.)
quiet_pip() { .venv/bin/python -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
quiet_pip install --quiet --upgrade "pip>=24.3" "uv==${UV_VERSION}"
packages=(-c constraints.txt "apache-airflow==${AIRFLOW_VERSION}" -r requirements.txt -r requirements-dev.txt)
if ! .venv/bin/uv pip install --quiet --python .venv/bin/python "${packages[@]}"; then
  echo "uv could not install the packages; trying pip" >&2
  quiet_pip install --quiet "${packages[@]}"
fi
touch "$stamp"
echo ".venv ready: $(.venv/bin/airflow version 2>/dev/null | tail -1) on $(.venv/bin/python --version)"
