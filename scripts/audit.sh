#!/usr/bin/env bash
# pip-audit of what MWAA installs (requirements.txt) and of the whole lock (constraints.txt).
# pip-audit asks PyPI's per-release JSON API (https://pypi.org/pypi/<name>/<version>/json) for
# known vulnerabilities. Where that API does not answer (the package mirrors of the development
# machines serve the index and files only), the audit cannot run: this says so loudly and skips,
# instead of passing with "could not be audited" lines. GitHub Actions runs it for real (--strict).
set -euo pipefail
cd "$(dirname "$0")/.."
probe="https://pypi.org/pypi/pip/24.0/json"
if ! curl -fsS -m 15 -o /dev/null "$probe" 2>/dev/null; then
  echo "pip-audit: SKIPPED - PyPI's vulnerability API ($probe) is unreachable from this machine." >&2
  echo "pip-audit: the GitHub Actions CI (.github/workflows/ci.yml) runs it with --strict." >&2
  exit 0
fi
# requirements.txt alone, then the full lock: every pinned package of the environment.
.venv/bin/pip-audit --strict --progress-spinner off -r requirements.txt
grep -v '^#' constraints.txt | grep -v '^-e' > /tmp/totes-audit-lock.txt
.venv/bin/pip-audit --strict --progress-spinner off --no-deps --disable-pip -r /tmp/totes-audit-lock.txt
