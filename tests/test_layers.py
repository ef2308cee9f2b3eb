"""The rules that make the layers real (see tiledbvcf_batch/__init__.py), checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "tiledbvcf_batch"
MODULES = {path.relative_to(PACKAGE).with_suffix("").as_posix(): path for path in PACKAGE.rglob("*.py")}
BATCH_REQUEST_KEYS = {
    "containerOverrides",
    "retryStrategy",
    "dependsOn",
    "arrayProperties",
    "resourceRequirements",
    "tags",
}
TILEDBVCF_FLAGS = {
    "--remove-sample-file",
    "--sample-partition",
    "--upload-dir",
    "-u",
    "-f",
    "-d",
    "-s",
    "-t",
    "-e",
    "-R",
    "--tiledb-config",
}
TILEDB_KEYS = ("sm.compute_concurrency_level", "sm.io_concurrency_level")  # the settings commands.py gives jobs


def imports(path: Path) -> set[str]:
    """Modules imported, package-relative imports resolved to their module path (e.g. ``executors/base``).

    ``from .executors import base`` imports ``executors/__init__`` and ``executors/base``; ``from . import
    executors`` imports the package's ``__init__`` and ``executors/__init__`` (the registry).
    """
    found = set()
    here = path.relative_to(PACKAGE).with_suffix("").as_posix().split("/")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.add(node.module or "")
                continue
            base = here[: len(here) - node.level + 1]
            target = "/".join([*base, *(node.module.split(".") if node.module else [])])
            if target in MODULES:
                found.add(target)
                continue
            found.add(f"{target}/__init__" if target else "__init__")
            for alias in node.names:  # names that are modules (or packages) of that package
                name = f"{target}/{alias.name}" if target else alias.name
                found.update(m for m in (name, f"{name}/__init__") if m in MODULES)
    return found


def test_imports_of_a_package_and_of_its_modules_are_seen():
    assert imports(MODULES["record"]) >= {"executors/__init__", "executors/jobs", "plan"}
    assert imports(MODULES["executors/__init__"]) >= {"executors/base", "executors/batch", "plan"}


def constants(path: Path) -> set[str]:
    return {
        n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant) and type(n.value) is str
    }


def texts(path: Path) -> set[str]:
    """The strings a module says (its docstrings left out: they may name what they are not about)."""
    tree = ast.parse(path.read_text())
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, documented) and node.body and isinstance(node.body[0], ast.Expr)
    }
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and type(n.value) is str
            and id(n) not in docstrings}  # fmt: skip


def test_the_domain_never_imports_click_or_the_cli_layer():
    for name, path in MODULES.items():
        assert not {"click", "common", "hints"} & {m.split(".")[0] for m in imports(path)}, name


def test_progress_is_display_only_and_the_report_needs_no_polling():
    assert not {m for m in imports(MODULES["progress"]) if m in ("watch", "report", "submit", "ledger", "prepare")}
    assert "watch" not in imports(MODULES["report"])


def test_plan_commands_and_inputs_do_no_io_and_know_no_executor():
    # arrays: the Batch executor's pure step; jobs: the seam's job types. They know the seam, no executor.
    seam = {"executors/base", "executors/jobs"}
    for name in (
        "plan",
        "commands",
        "arraytasks",
        "inputs",
        "options",
        "bed",
        "repair",
        "executors/arrays",
        "executors/jobs",
    ):
        used = imports(MODULES[name]) - seam
        assert not {m for m in used if m.split(".")[0] in ("boto3", "botocore", "subprocess", "socket")}, name
        assert not {m for m in used if m.startswith(("executors", "record", "aws", "submit", "preflight"))}, name
    for name in ("plan", "commands", "arraytasks", "bed", "repair"):
        calls = {n.func.id for n in ast.walk(ast.parse(MODULES[name].read_text())) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Name)}  # fmt: skip
        assert "open" not in calls, name


def test_batch_request_keys_only_in_the_batch_executor():
    for name, path in MODULES.items():
        if name != "executors/batch":
            assert not constants(path) & BATCH_REQUEST_KEYS, name
    assert constants(MODULES["executors/batch"]) >= BATCH_REQUEST_KEYS


def test_domain_modules_see_executors_only_through_the_seam():
    """The protocol, the job types and the registry: never an executor by name (a third is a module in executors/)."""
    for name in ("submit", "watch", "report", "ledger", "prepare", "prepare_export", "inventory", "record"):
        executor_imports = {m for m in imports(MODULES[name]) if m.startswith("executors")}
        assert executor_imports <= {"executors/base", "executors/jobs", "executors/__init__"}, name


def test_only_the_batch_executor_speaks_batch_meanings():
    """What Batch's reasons and hosts mean, and its name, are the Batch executor's words (``Words``, ``explain``,
    ``host_lost``): the neutral modules ask the executor."""
    meanings = ("AWS Batch", "Host EC2", "MISCONFIGURATION", "CAPACITY:", "terminate-job", "Spot")
    # options: --retries' help is the spec's text, and a Spot reclaim is what it is about.
    batch = {"executors/batch", "executors/batch_setup", "options"}
    for name, path in MODULES.items():
        said = [text for text in texts(path) for meaning in meanings if meaning in text]
        assert name in batch or not said, (name, said)
    assert {"AWS Batch", "Host EC2", "MISCONFIGURATION:", "CAPACITY:"} <= texts(MODULES["executors/batch"])


def test_the_cli_layer_makes_executors_through_the_registry_only():
    """common.py knows no executor by name: a third executor touches executors/ only."""
    tree = ast.parse((ROOT / "common.py").read_text())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in modules if m and m.startswith("tiledbvcf_batch.executors.") and m.count(".") == 2
                and m.rsplit(".", 1)[1] not in ("base", "jobs")}  # fmt: skip
    assert not {"local", "batch"} & {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}  # no kind


def test_only_commands_spells_tiledbvcf_flags():
    for name, path in MODULES.items():
        if name != "commands":
            assert not constants(path) & TILEDBVCF_FLAGS, name
            assert not [text for text in constants(path) for key in TILEDB_KEYS if key in text], name


def test_no_import_cycles():
    graph = {name: {m for m in imports(path) if m in MODULES} for name, path in MODULES.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, " -> ".join([*visiting, name])
        if name in done:
            return
        visiting.append(name)
        for target in graph[name]:
            visit(target)
        visiting.pop()
        done.add(name)

    for name in graph:
        visit(name)


# structure.md's bar: small modules, short functions (tests exempt).
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
MEASURED = [*MODULES.values(), *(ROOT / name for name in ("common.py", "flags.py", "hints.py", "image/entrypoint.py"))]


def test_no_package_module_over_450_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    long = {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES}
    assert not long, f"over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_over_60_lines():
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in MEASURED
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"over {MAX_FUNCTION_LINES} lines, from def to end: {long}"
