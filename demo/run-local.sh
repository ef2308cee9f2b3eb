#!/usr/bin/env bash
# Set up .venv (once) and run the README's ingest and export examples against a local
# emulated AWS (moto on 127.0.0.1). No AWS account is used; no tiledbvcf runs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
exec .venv/bin/python demo/local_aws.py
