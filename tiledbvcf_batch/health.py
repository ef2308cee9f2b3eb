"""The dataset's health (``batch-runs.py dataset``): each array's fragments, size and consolidation, and advice.

A v4 dataset is a TileDB group: ``data``, ``allele_count``, ``variant_stats``, ``sample_stats`` and
``metadata/vcf_headers`` (tiledbvcf 0.40.3 creates these five). Every ``store`` writes fragments
into each (tiledbvcf 0.40.3: 3 data fragments for 1 sample), each with a commit file
(``__commits/*.wrt``). Opening an array reads every fragment's metadata and lists every commit: one
request each on S3, until ``utils consolidate fragment_meta`` (one ``__fragment_meta/*.meta``) and
``utils consolidate commits`` (one ``__commits/*.con``) fold them; ``utils vacuum`` then deletes what
they fold. All of it is read from listings (TileDB-Py's VFS), a few LIST requests per array: a file's
name is ``__<first>_<last>_<uuid>_<version>[.ext]``, the first and last write times (ms) it covers, so
a consolidated file tells up to which write the array was last consolidated (when it ran is not kept).
"""

from __future__ import annotations

import datetime
import re
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .commands import CONSOLIDATION_STEPS, utils_command
from .dataset import DatasetAccess, access_for, first_line
from .storage import LocalPath, Location

# Advice to consolidate: an array whose opening reads this many fragment metadata files or commit files one by
# one (one request each on S3). Both consolidations are cheap (they read footers and commit lists, not data), and
# batch-ingest.py runs them after each batch: 5 means a few stores with --no-consolidate, or by other means.
CONSOLIDATE_AT = 5
NAME_RE = re.compile(r"__(\d+)_(\d+)_[0-9a-f]+(?:_\d+)?(?:\.(\w+))?$")


@dataclass(frozen=True)
class ArrayHealth:
    name: str  # inside the dataset: data, metadata/vcf_headers...
    fragments: int  # listed in __fragments
    fragment_meta_files: int  # consolidated fragment metadata (__fragment_meta/*.meta)
    unconsolidated_meta: int  # fragments written after the last consolidated fragment metadata
    commits: int  # commit files (__commits/*.wrt)
    unconsolidated_commits: int  # commit files written after the last consolidated commits (*.con)
    to_vacuum: int  # files that a consolidation folded and a vacuum would delete
    size_bytes: int
    consolidated_through: str | None  # the last write a consolidation covers (ISO time); None: never consolidated


@dataclass(frozen=True)
class Health:
    uri: str
    arrays: tuple[ArrayHealth, ...]
    problem: str | None = None

    @property
    def advice(self) -> str:
        """``consolidate`` (and vacuum), ``vacuum``, or ``nothing``."""
        if any(max(a.unconsolidated_meta, a.unconsolidated_commits) >= CONSOLIDATE_AT for a in self.arrays):
            return "consolidate"
        return "vacuum" if any(a.to_vacuum for a in self.arrays) else "nothing"

    def commands(self) -> list[str]:
        steps = {"consolidate": CONSOLIDATION_STEPS, "vacuum": [s for s in CONSOLIDATION_STEPS if s[0] == "vacuum"]}
        return [shlex.join(["tiledbvcf", *utils_command(self.uri, action, what)])
                for action, what in steps.get(self.advice, [])]  # fmt: skip


def spans(names: list[str], ext: str | None = None) -> list[tuple[int, int]]:
    """The (first, last) write times of the files named ``names`` with extension ``ext`` (None: none)."""
    found = []
    for name in names:
        match = NAME_RE.search(name.rstrip("/"))
        if match and match[3] == ext:
            found.append((int(match[1]), int(match[2])))
    return found


def array_health(name: str, listing: Callable[[str], list[str]], size: int) -> ArrayHealth:
    """One array's health from the listings of its __fragments, __fragment_meta and __commits."""
    fragments = spans(listing("__fragments"))
    metas = spans(listing("__fragment_meta"), "meta")
    commit_names = listing("__commits")
    writes, folded = spans(commit_names, "wrt"), spans(commit_names, "con")
    meta_end = max((last for _, last in metas), default=-1)
    con_end = max((last for _, last in folded), default=-1)
    folded_writes = sum(1 for first, _ in writes if first <= con_end)
    through = max(meta_end, con_end)
    return ArrayHealth(
        name,
        len(fragments),
        len(metas),
        sum(1 for _, last in fragments if last > meta_end),
        len(writes),
        len(writes) - folded_writes,
        folded_writes + max(len(metas) - 1, 0) + max(len(folded) - 1, 0),
        size,
        iso(through) if through >= 0 else None,
    )


def iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(timespec="seconds")


def read_health(uri: str, access: DatasetAccess) -> Health:
    """The health of every array of the dataset at ``uri`` (a group), or why it cannot be read."""
    try:
        import tiledb
    except ImportError:
        return Health(uri, (), "TileDB-Py is not installed: pip install -r requirements.txt")
    root = uri.rstrip("/")
    try:
        ctx = tiledb.Ctx(tiledb.Config(access.config()))
        vfs = tiledb.VFS(ctx=ctx)
        found = []
        for name in array_names(tiledb, root, ctx):
            where = f"{root}/{name}"

            def listing(sub: str, where: str = where) -> list[str]:
                return [str(item) for item in vfs.ls(f"{where}/{sub}")] if vfs.is_dir(f"{where}/{sub}") else []

            found.append(array_health(name, listing, int(vfs.dir_size(where))))
    except tiledb.TileDBError as error:
        return Health(uri, (), f"TileDB: {first_line(str(error))}")
    return Health(uri, tuple(found))


def array_names(tiledb: Any, root: str, ctx: Any, prefix: str = "") -> list[str]:
    """The arrays of the group at ``root``, nested groups' too (``metadata/vcf_headers``), by name."""
    names = []
    with tiledb.Group(root, ctx=ctx) as group:
        members = [(member.name or member.uri.rstrip("/").split("/")[-1], member.type) for member in group]
    for name, kind in members:
        if kind is tiledb.Group:
            names += array_names(tiledb, f"{root}/{name}", ctx, f"{prefix}{name}/")
        elif kind is tiledb.Array:
            names.append(f"{prefix}{name}")
    return sorted(names)


HealthReader = Callable[[Location], "Health | None"]


def reader_for(s3: Any, profile: str | None, region: str, tiledb_config: str | None) -> HealthReader:
    """As dataset.reader_for: the access (and so AWS) is made only when a dataset on S3 is read."""

    def read(dataset: Location) -> Health | None:
        if isinstance(dataset, LocalPath):
            return read_health(str(dataset), DatasetAccess(region, tiledb_config=tiledb_config))
        return read_health(str(dataset), access_for(s3, profile, region, tiledb_config))

    return read


# -- Showing it ---------------------------------------------------------------------------------------------

ADVICE = {
    "consolidate": f"consolidate fragment metadata and commits, then vacuum (an array opens {CONSOLIDATE_AT} or "
    "more of them one by one; batch-ingest.py does this after each batch unless --no-consolidate):",
    "vacuum": "vacuum (consolidated fragment metadata or commits left the files they fold):",
    "nothing": "nothing to do",
}


def text_lines(health: Health | None) -> list[str]:
    if health is None:
        return []
    if health.problem is not None:
        return [f"Health: cannot be read ({health.problem})"]
    lines = ["Health (each array):"]
    for a in health.arrays:
        lines.append(
            f"  {a.name}: {a.fragments} fragments, {a.size_bytes} bytes; fragment metadata: {a.fragment_meta_files} "
            f"consolidated, {a.unconsolidated_meta} not; commits: {a.unconsolidated_commits} not consolidated; "
            f"{a.to_vacuum} to vacuum; last consolidated through {a.consolidated_through or 'never'}"
        )
    return [*lines, f"Advice: {ADVICE[health.advice]}", *(f"  {command}" for command in health.commands())]


def document(health: Health | None) -> dict[str, Any] | None:
    if health is None:
        return None
    return {"problem": health.problem, "arrays": [asdict(a) for a in health.arrays], "advice": health.advice,
            "commands": health.commands(), "consolidate_at": CONSOLIDATE_AT}  # fmt: skip
