#!/usr/bin/env bash
# The main job on this machine: sets up .venv (once), then ingests a generated cohort with the
# local executor and the real tiledbvcf, prints `tiledbvcf stat`, exports it back and checks
# every record. Without a tiledbvcf, it says how to get one and shows the emulated AWS Batch
# walkthrough instead. tiledbvcf is found by $TILEDBVCF, else on PATH, else (in a development
# checkout) unpacked from ../shared/tools.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
echo "Installing requirements-dev.txt into .venv (log: .venv/pip.log)..."
if ! .venv/bin/python -m pip install --disable-pip-version-check -r requirements-dev.txt > .venv/pip.log 2>&1; then
    tail -n 20 .venv/pip.log
    exit 1
fi
archive=../shared/tools/tiledbvcf-0.40.3-linux-x86_64.tar.xz
if [ -z "${TILEDBVCF:-}" ] && ! command -v tiledbvcf > /dev/null && [ -f "$archive" ]; then
    [ -x .tools/tiledbvcf-0.40.3/bin/tiledbvcf ] || { mkdir -p .tools && tar -xJf "$archive" -C .tools; }
    export TILEDBVCF="$PWD/.tools/tiledbvcf-0.40.3/bin/tiledbvcf"
fi
# Export jobs index and count their files with bcftools; without one, the bcftools inside pysam.
if [ -z "${BCFTOOLS:-}" ] && ! command -v bcftools > /dev/null; then
    export BCFTOOLS="$PWD/demo/bcftools-pysam" PATH="$PWD/.venv/bin:$PATH"  # its python3: the one with pysam
fi
exec .venv/bin/python demo/local_run.py "$@"
