"""Executors run a plan's jobs: ``batch`` on AWS Batch, ``local`` on this machine. One registry makes them.

Each executor module declares its ``Kind`` (executors/base.py): its own command-line options, how
those (typed) and a run record's settings make the executor, which settings a record must hold, its
scratch default and the stages it may add. The command line
offers the registered names (--executor); a record names the kind that ran it. A third executor
is a module here and one ``register`` line below: nothing outside ``executors/`` changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..aws import Clients
from ..plan import add_stage
from .base import Asked, Executor, Kind
from .batch import KIND as BATCH
from .local import KIND as LOCAL

DEFAULT = "batch"  # --executor's default, and the kind of the records written before the executor key
KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    KINDS[kind.name] = kind
    for stage, label in kind.stages.items():
        add_stage(stage, label)


register(BATCH)
register(LOCAL)


def names() -> tuple[str, ...]:
    """The kinds an executor can be asked for, in the order they were registered."""
    return tuple(KINDS)


def for_request(kind: str, given: Any, asked: Asked, clients: Clients) -> Executor:
    """The executor ``kind`` made from its options as the command line ``given`` them (an instance of its
    ``Kind.options``) and what the run ``asked``; InputError if it cannot be."""
    return KINDS[kind].from_request(given, asked, clients)


def options_of(kind: str) -> type | None:
    """The options of ``kind`` (``Kind.options``), None if it has none or is not registered."""
    return KINDS[kind].options if kind in KINDS else None


def option_classes() -> tuple[type, ...]:
    """Every registered kind's options, in the order the kinds were registered."""
    return tuple(kind.options for kind in KINDS.values() if kind.options is not None)


def for_record(settings: Mapping[str, Any], clients: Clients) -> Executor:
    """The executor that ran a recorded run (``RunRecord.executor``, checked when the record was read)."""
    kind = settings.get("kind", DEFAULT)
    if kind not in KINDS:
        raise ValueError(f"the run was made by a {kind!r} executor, which this version does not know")
    return KINDS[kind].from_settings(settings, clients)


def recorded_settings(kind: str) -> Mapping[str, bool] | None:
    """The texts a record of ``kind`` may hold (True: must), or None for a kind this version does not know."""
    return KINDS[kind].settings if kind in KINDS else None


def takes_local_paths(kind: str) -> bool:
    """Whether the jobs of ``kind`` can use paths on this machine (the command line then accepts them)."""
    return kind in KINDS and KINDS[kind].local_paths


def always_waits(kind: str) -> bool:
    """Whether a run of ``kind`` is always watched to its end (its executor blocks: --wait is implied)."""
    return kind in KINDS and KINDS[kind].blocks


def scratch_defaults() -> str:
    """Each kind's default scratch directory, as --scratch-path's help says them."""
    return "; ".join(f"{name}: {kind.scratch}" for name, kind in KINDS.items() if kind.scratch)


def command_line(settings: Mapping[str, Any]) -> list[str]:
    """The options that ask for the executor of a recorded run again (``RunRecord.executor``)."""
    kind = KINDS.get(settings.get("kind", DEFAULT))
    return kind.command_line(settings) if kind is not None else []
