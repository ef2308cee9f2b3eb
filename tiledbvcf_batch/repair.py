"""PURE: the repair stage of an ingestion (``--repair-to``): what each input needs, where its repaired files go,
and the one place that spells the repair tools' command lines (the job runs them: ``repairjob``).

An input is repaired when it has no index (``index``), is not BGZF (plain gzip or uncompressed VCF:
``recompress``, then index), or holds several samples (``split`` into one file a sample, each indexed). The
repaired files go under ``<repair-to>/<run id>/``, named by sample: never over the user's inputs. The ingestion
tasks name the repaired files, which exist once the repair stage succeeded; their names are known up front
(the headers were read), so the ingestion is planned before anything is repaired.

An index repair writes the index only (``<repair-to>/<run id>/<sample><suffix>.csi``) and the manifest names it
after a TAB beside the original data file, unless tiledbvcf would download that index over the sample's own
scratch copy (an S3 sample with scratch space, see ``prepare.named_index_with_scratch``): then the data file is
copied beside its new index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .inputs import Resources, Sample
from .storage import Location

REPAIR = "repair"  # the stage, and the job's first argument (the image's entrypoint runs it, not tiledbvcf)
INDEX, RECOMPRESS, SPLIT = "index", "recompress", "split"
REPAIR_RESOURCES = Resources(vcpus=2, memory=4096)  # bcftools streams: a file of any size needs little memory
REPAIR_TOOLS = {"bcftools": "BCFTOOLS"}  # the repair jobs' one tool, and the variable naming it (as export's)
THREADS = "2"  # bcftools --threads: the repair job's vCPUs
REPAIRED_SUFFIX = ".vcf.gz"  # a recompressed or split sample: BGZF VCF
INDEX_SUFFIX = ".csi"
DATA_SUFFIXES = (".vcf.gz", ".vcf.bgz", ".bcf", ".vcf")


@dataclass(frozen=True)
class Output:
    """One repaired sample: its name, its data file (empty: the original's, not copied) and its index."""

    name: str
    data: str
    index: str


@dataclass(frozen=True)
class Repair:
    """One input's repair: what is done to ``source`` and the files it makes (a manifest line of a repair job)."""

    kind: str
    source: str
    outputs: tuple[Output, ...]

    def line(self) -> str:
        outputs = [[output.name, output.data, output.index] for output in self.outputs]
        return json.dumps({"kind": self.kind, "source": self.source, "outputs": outputs}, separators=(",", ":"))

    @classmethod
    def from_line(cls, line: str) -> Repair:
        data = json.loads(line)
        outputs = tuple(Output(str(name), str(path), str(index)) for name, path, index in data["outputs"])
        return cls(str(data["kind"]), str(data["source"]), outputs)

    def samples(self) -> list[Sample]:
        """The samples the ingestion reads instead of ``source``: the repaired files."""
        return [Sample(o.data) if o.data else Sample(self.source, o.index) for o in self.outputs]


def data_suffix(uri: str) -> str:
    """The original's suffix (kept by an index repair), ``.vcf.gz`` when it has none of the usual ones."""
    return next((suffix for suffix in DATA_SUFFIXES if uri.endswith(suffix)), REPAIRED_SUFFIX)


def repair_of(kind: str, source: str, names: Sequence[str], root: Location, copy: bool) -> Repair:
    """The repair of input ``source`` of sample(s) ``names``, its files under ``root`` (<repair-to>/<run id>/)."""
    if kind == INDEX:
        data = str(root.child(names[0] + data_suffix(source)))
        output = Output(names[0], data if copy else "", data + INDEX_SUFFIX)
        return Repair(kind, source, (output,))
    outputs = []
    for name in names:
        data = str(root.child(name + REPAIRED_SUFFIX))
        outputs.append(Output(name, data, data + INDEX_SUFFIX))
    return Repair(kind, source, tuple(outputs))


def repairs_note(repairs: Sequence[Repair]) -> str:
    """What the repair stage does, in one line of the run's notes."""
    if not repairs:
        return "--repair-to: no input needs a repair: no repair job"
    kinds = [sum(repair.kind == kind for repair in repairs) for kind in (INDEX, RECOMPRESS, SPLIT)]
    made = sum(len(repair.outputs) for repair in repairs if repair.kind == SPLIT)
    return (
        f"--repair-to: {len(repairs)} inputs repaired first (a repair job each): {kinds[0]} indexed, "
        f"{kinds[1]} recompressed with BGZF and indexed, {kinds[2]} split into {made} single-sample files"
    )


def split_problem(uri: str, names: Sequence[str]) -> str | None:
    """Why bcftools +split cannot split ``uri`` by these names (its samples file is whitespace-separated)."""
    spaced = [name for name in names if name != name.strip() or any(char.isspace() for char in name)]
    if not spaced:
        return None
    return (
        f"sample {uri} holds samples named with whitespace ({spaced[0]!r}), which bcftools +split cannot split by: "
        "rename them (bcftools reheader -s) or split the file yourself"
    )


# -- The tools' command lines (bcftools; the job finds it as export jobs do: BCFTOOLS, else on PATH) ----------


def index_command(bcftools: str, data: str, index: str) -> list[str]:
    return [bcftools, "index", "--csi", "--force", "--threads", THREADS, "-o", index, data]


def recompress_command(bcftools: str, source: str, target: str) -> list[str]:
    """A plain-gzip or uncompressed VCF written again as BGZF (htslib reads both); the records as they were."""
    return [bcftools, "view", "--no-version", "--threads", THREADS, "-Oz", "-o", target, source]


def split_command(bcftools: str, source: str, samples_file: str, directory: str) -> list[str]:
    """One BGZF VCF a sample in ``directory``, each named as ``samples_file``'s third column says."""
    return [bcftools, "+split", "-S", samples_file, "-Oz", "-o", directory, source]


def split_samples_file(names: Sequence[str]) -> str:
    """+split's samples file: each sample kept under its name, written to ``s<N>.vcf.gz`` (a name may not make a
    file name +split keeps: it replaces some characters)."""
    return "".join(f"{name}\t-\t{split_file(number)}\n" for number, name in enumerate(names))


def split_file(number: int) -> str:
    return f"s{number:06d}"
