"""The runs of one dataset, registered beside it: every client of a dataset sees its runs, whatever their --metadata-s3.

The registry (``<dataset>.tiledbvcf-batch/``, see ``dataset.registry_of``) is a log of create-only
entries numbered 1, 2, 3...: ``runs/000000001.json``. A run claims its samples by creating the
number after the last one it read (``If-None-Match: *`` on S3, a hard link locally, both of which
fail if the name is taken). A client that finds its number taken reads the entries that took it and
tries the next: so every entry was written by a client that had read all the entries before it,
and two clients starting together cannot both claim a sample. A run that gives up (a rolled back
submission) is marked ``withdrawn/<run id>``; entries are never deleted (a gap would let two
clients take the same number after it).

Whether a registered run still holds its samples is the ledger's judgement (its record and its
jobs); an entry whose record does not exist yet is a run being submitted, for CLAIM_GRACE seconds.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from .aws import AwsSetupError, aws_message
from .inputs import InputError
from .storage import Location, Storage

ENTRIES = "runs/"
WITHDRAWN = "withdrawn/"
DIGITS = 9
CLAIM_GRACE = 3600  # seconds a registered run without a record counts as being submitted
MAX_TRIES = 50  # entries taken by others before giving up (each try reads the new ones)


@dataclass(frozen=True)
class Entry:
    """One registered run: its id, where its record is, and the samples (URIs) and names it claimed."""

    number: int
    run_id: str
    record: str
    created_at: str
    samples: tuple[str, ...] = ()
    names: dict[str, str] = field(default_factory=dict)  # sample URI -> name, where known
    replaces: tuple[str, ...] = ()  # names the run deletes before storing them again (--replace)

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "number": self.number, "run_id": self.run_id, "record": self.record,
                "created_at": self.created_at, "samples": list(self.samples), "names": self.names,
                "replaces": list(self.replaces)}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        claimed = (tuple(data.get("samples", ())), dict(data.get("names", {})), tuple(data.get("replaces", ())))
        return cls(int(data["number"]), str(data["run_id"]), str(data["record"]), str(data["created_at"]), *claimed)

    def age(self, now: datetime.datetime | None = None) -> float:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return (now - datetime.datetime.fromisoformat(self.created_at)).total_seconds()


@dataclass(frozen=True)
class Claim:
    """What a run will register before it uploads anything: its samples, and the entries its plan has seen."""

    registry: Location
    run_id: str
    record: str
    samples: tuple[str, ...]
    names: dict[str, str]
    seen: int  # the last entry number the plan took into account
    replaces: tuple[str, ...] = ()


def entry_location(registry: Location, number: int) -> Location:
    return registry.child(f"{ENTRIES}{number:0{DIGITS}d}.json")


def entry_numbers(storage: Storage, registry: Location) -> list[int]:
    numbers = []
    for key in storage.list_sizes(registry.child(ENTRIES)):
        name = key.rpartition("/")[2]
        if name.endswith(".json") and name[:-5].isdigit():
            numbers.append(int(name[:-5]))
    return sorted(numbers)


def read_entries(storage: Storage, registry: Location, after: int = 0) -> list[Entry]:
    """The entries numbered after ``after``, in order; a damaged one is named (InputError), never skipped."""
    numbers = [number for number in entry_numbers(storage, registry) if number > after]

    def read(number: int) -> Entry:
        uri = entry_location(registry, number)
        try:
            return Entry.from_json(json.loads(storage.read_bytes(uri)))
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(
                f"the dataset's run registry entry {uri} is damaged ({type(error).__name__}: {error}): restore it "
                "from a copy or S3 versioning"
            ) from None

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(read, numbers))


def withdrawn_runs(storage: Storage, registry: Location) -> set[str]:
    return {key.rpartition("/")[2].removesuffix(".json") for key in storage.list_sizes(registry.child(WITHDRAWN))}


class ClaimConflict(InputError):
    """Another run registered some of this run's samples between its plan and its registration."""


def overlap(claim: Claim, entries: Sequence[Entry], withdrawn: set[str]) -> list[str]:
    """One problem per run registered since the plan that claims some of the same samples."""
    problems = []
    for entry in entries:
        if entry.run_id in withdrawn or entry.number <= claim.seen:
            continue
        theirs, their_names = set(entry.samples), set(entry.names.values())
        shared = [uri for uri in claim.samples if uri in theirs or claim.names.get(uri) in their_names]
        if shared:
            problems.append(
                f"run {entry.run_id} (record {entry.record}) registered {len(shared)} of these samples a moment "
                f"ago ({', '.join(shared[:5])}{', ...' if len(shared) > 5 else ''}): nothing was submitted; run "
                "the same command again, it skips the samples that run is ingesting"
            )
    return problems


def register(storage: Storage, claim: Claim, now: Callable[[], datetime.datetime] | None = None) -> Entry:
    """Create the claim's entry after every entry it has read; ClaimConflict if a newer one holds its samples."""
    with answered(claim.registry, "register the run in"):
        return claimed(storage, claim, now)


def claimed(storage: Storage, claim: Claim, now: Callable[[], datetime.datetime] | None) -> Entry:
    """Try the number after the last entry seen first: if it is free, no entry came after the plan (the numbers
    have no gaps), so one create is all a run costs. Only when it is taken are the newer entries read, and the
    withdrawn runs only when one of them shares a sample."""
    seen: list[Entry] = []
    last = claim.seen
    for _ in range(MAX_TRIES):
        created = (now or utc_now)().isoformat(timespec="seconds")
        entry = Entry(last + 1, claim.run_id, claim.record, created, claim.samples, claim.names, claim.replaces)
        body = json.dumps(entry.to_json(), separators=(",", ":")).encode("utf-8")
        if storage.create(entry_location(claim.registry, entry.number), body):
            return entry
        newer = read_entries(storage, claim.registry, after=last)
        seen += newer
        last = max([last, *(entry.number for entry in newer)])
        problems = overlap(claim, seen, set())
        if problems:
            problems = overlap(claim, seen, withdrawn_runs(storage, claim.registry))
        if problems:
            raise ClaimConflict(problems)
    raise InputError(f"the dataset's run registry {claim.registry} is too busy ({MAX_TRIES} tries): try again")


@contextlib.contextmanager
def answered(registry: Location, doing: str) -> Iterator[None]:
    """An AWS refusal of the registry as one line that names it and the permissions it needs (exit 4)."""
    try:
        yield
    except ClientError as error:
        raise AwsSetupError(
            f"cannot {doing} the dataset's run registry {registry} ({aws_message(error)}): the scripts need "
            "s3:ListBucket, s3:GetObject and s3:PutObject there (README: Least-privilege IAM)"
        ) from None


def withdraw(storage: Storage, registry: Location, run_id: str) -> None:
    """The run gave up before running anything: its claim no longer holds."""
    storage.create(registry.child(f"{WITHDRAWN}{run_id}.json"), b"{}")


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
