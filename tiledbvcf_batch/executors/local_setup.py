"""What the local executor is made with: its command-line options (``LocalOptions``), a tiledbvcf that is there and
works, and how many jobs fit at a time."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from ..inputs import InputError
from ..options import flag

INSTALL_HINT = (
    "install it with conda (conda install -c conda-forge -c tiledb libtiledbvcf), or pass --tiledbvcf PATH "
    "or set TILEDBVCF"
)
VERSION_RE = re.compile(r"TileDB-VCF version (\d+)\.(\d+)(?:\.(\d+))?")
FIRST_CURRENT_RELEASE = (0, 7)  # v4 datasets, store --resume; earlier releases need --register
VERSION_TIMEOUT = 30.0  # seconds --version may take; a working tiledbvcf answers in well under one


@dataclass(frozen=True)
class LocalOptions:
    """--executor local's options."""

    max_parallel: int | None = flag(
        None,
        metavar="N",
        low=1,
        help="With --executor local: jobs at a time (default: the cores divided by the jobs' --vcpus, at least 1).",
    )
    tiledbvcf: str | None = flag(
        None,
        metavar="PATH",
        help="With --executor local: the tiledbvcf to run (default: $TILEDBVCF, else tiledbvcf on PATH).",
    )


def find_tiledbvcf(given: str | None) -> tuple[str | None, str]:
    """The tiledbvcf to run (--tiledbvcf, else $TILEDBVCF, else PATH) and its version, or why there is none."""
    candidate = given or os.environ.get("TILEDBVCF") or shutil.which("tiledbvcf")
    if not candidate:
        return None, f"tiledbvcf is not installed (not on PATH, TILEDBVCF not set): {INSTALL_HINT}"
    path = shutil.which(candidate) or candidate
    try:
        result = subprocess.run(
            [path, "--version"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=VERSION_TIMEOUT,
        )
    except OSError as error:
        return None, f"tiledbvcf {path} cannot be run ({error.strerror}): {INSTALL_HINT}"
    except subprocess.TimeoutExpired:
        return None, (
            f"{path} is not a working tiledbvcf (--version did not answer in {VERSION_TIMEOUT:g} seconds): "
            f"{INSTALL_HINT}"
        )
    output = (result.stdout or result.stderr).decode("utf-8", errors="replace")
    first = output.strip().splitlines()[:1]
    if result.returncode != 0 or not first or not VERSION_RE.search(first[0]):
        printed = repr(first[0][:200]) if first else "nothing"
        return None, f"{path} is not a working tiledbvcf (--version printed {printed}): {INSTALL_HINT}"
    return path, first[0]


def is_legacy(version: str) -> bool:
    match = VERSION_RE.search(version)
    return match is not None and (int(match.group(1)), int(match.group(2))) < FIRST_CURRENT_RELEASE


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share), not all the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def default_parallel(vcpus: int) -> int:
    """As many jobs as the cores allow for each job's vCPUs, at least one."""
    return max(1, usable_cores() // max(1, vcpus))


def checked_tiledbvcf(given: str | None, register: bool | None) -> tuple[str, str]:
    """The tiledbvcf to run and its version, one that fits the run; else bad input.

    ``register`` is None for a command without --register (export): a legacy release cannot run it at all.
    """
    path, version = find_tiledbvcf(given)
    if path is None:
        raise InputError(version)
    if is_legacy(version) and not register:
        fix = "pass --register, or use" if register is not None else "use"
        raise InputError(
            f"{path} is {version}, a legacy release (v2/v3 datasets): {fix} tiledbvcf 0.7 or later "
            "(conda install -c conda-forge -c tiledb libtiledbvcf)"
        )
    return path, version


def scratch_problems(path: str) -> list[str]:
    """--scratch-path with the local executor: the jobs run here, so it must exist and be writable, or every job
    would fail (after the dataset was created)."""
    if not os.path.isdir(path):
        return [f"--scratch-path {path} does not exist (or is not a directory): create it (mkdir -p) or give "
                "another, or leave it out for a temporary directory"]  # fmt: skip
    try:  # as each job will: a directory of its own in it (access() is no proof for root, or a read-only mount)
        os.rmdir(tempfile.mkdtemp(prefix=".write-check-", dir=path))
    except OSError as error:
        return [f"--scratch-path {path} is not writable ({error.strerror}): make it writable (chmod u+w) or give "
                "another, or leave it out for a temporary directory"]  # fmt: skip
    return []
