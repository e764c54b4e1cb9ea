#!/usr/bin/env bash
# Create .venv-tools/ at the repo root with the infrastructure linters, pinned. They live apart
# from .venv/ because their dependency pins clash with Airflow's constraints (checkov pins its
# own boto3, packaging, jsonschema...). Re-running is a no-op unless this script changed.
#
#   bash scripts/tools.sh                       # create/refresh .venv-tools
#   .venv-tools/bin/checkov -d terraform --quiet
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30

stamp=".venv-tools/.installed-$(sha256sum scripts/tools.sh | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.12 python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 12) else 1)' 2>/dev/null; then
      PY=$c
      break
    fi
  done
fi
[ -n "$PY" ] || { echo "no Python 3.9-3.12 found for checkov (set PYTHON=...)" >&2; exit 1; }

echo "Creating .venv-tools with $("$PY" --version) ($PY)"
rm -rf .venv-tools
"$PY" -m venv .venv-tools
# (This machine kind's pip config lists local index folders that may not exist: drop that noise.)
quiet_pip() { .venv-tools/bin/python -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
quiet_pip install --quiet --upgrade "pip>=24.3" "uv==0.9.30"  # uv: as in scripts/setup.sh
if ! .venv-tools/bin/uv pip install --quiet --python .venv-tools/bin/python "checkov==${CHECKOV_VERSION}"; then
  echo "uv could not install checkov; trying pip" >&2
  quiet_pip install --quiet "checkov==${CHECKOV_VERSION}"
fi
touch "$stamp"
echo ".venv-tools ready: checkov $(.venv-tools/bin/checkov --version)"
