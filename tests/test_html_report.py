"""The HTML report of a run: --report FILE.html with --wait, batch-runs.py report RUN --html FILE.

A run with known timings (the stub executor's timeline) makes the page; headless Chromium loads it and
the test counts what its script drew. The command lines are tested on the emulated AWS.
"""

from __future__ import annotations

import html.parser
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from unittest.mock import ANY

import pytest
from test_trace import ingest, retried_once

from conftest import DATASET, invoke, load_script
from tiledbvcf_batch import htmlreport

RUNS = load_script("batch-runs.py")
INGEST = load_script("batch-ingest.py")
LOG = [f"[tiledbvcf] step {i}" for i in range(5)] + ["[critical] Error: <TileDB::S3> Access Denied & gone"]
ESTIMATE = {"instance_hours": 1.5, "wall_seconds": 3000.0, "cost": 1.5, "source": "estimate from 2 earlier runs"}


def stub_run(tmp_path: Path):
    """A run through the stub executor: creation (1 attempt), one ingestion job whose first host was lost and
    whose retry succeeded, one that failed with a log. The Finished report and the executor."""
    from conftest import local_ingest_plan
    from stub_executor import StubExecutor, Timeline, known_run
    from tiledbvcf_batch.htmlreport import set_beside
    from tiledbvcf_batch.report import finish_report
    from tiledbvcf_batch.storage import Storage
    from tiledbvcf_batch.submit import jobs_for, submit_plan
    from tiledbvcf_batch.watch import watch_run

    plan = local_ingest_plan(tmp_path, samples=2)
    timeline = Timeline()
    executor = StubExecutor(timeline, logs={"id-ingest-1-2": LOG})
    uris = [uri for task in plan.tasks for uri in task.samples]
    sizes = {uri: 1000 * number for number, uri in enumerate(uris, start=1)}
    record = submit_plan(plan, jobs_for(plan, executor), executor, Storage(None), {"estimate": ESTIMATE},
                         region="us-east-1", sizes=sizes)  # fmt: skip

    known_run(timeline)
    latest = watch_run(record, executor, stream=io.StringIO(), now=timeline.now, tty=False)
    finished = finish_report(record, latest, Storage(None), executor, instance_price=1.0, log_lines=3)
    set_beside(record, finished)
    return finished, executor


class Page(html.parser.HTMLParser):
    """The page's tables (rows of cell texts), its run data, and what it would fetch from elsewhere."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.fetches: list[str] = []
        self.data: dict = {}
        self._table = self._cell = None
        self._script = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.fetches += [f"{tag} {name}={attrs[name]}" for name in ("src", "href") if name in attrs]
        if tag == "table":
            self._table = self.tables.setdefault(attrs["class"], [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = ""
        self._script = tag == "script" and attrs.get("id") == "run-data"

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self._table[-1].append(self._cell)
            self._cell = None
        elif tag == "table":
            self._table = None
        self._script = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._script:
            self.data = json.loads(data)


def test_page_holds_every_attempt_bytes_costs_estimate_and_failures(tmp_path):
    finished, executor = stub_run(tmp_path)
    text = htmlreport.html_page(finished, executor.words, executor.host_lost)
    page = Page(text)
    assert page.fetches == []  # self-contained: nothing to fetch, no network needed to view it
    stages = {stage["stage"]: stage for stage in page.data["stages"]}
    outcomes = [[a["outcome"] for a in job["attempts"]] for stage in stages.values() for job in stage["jobs"]]
    assert outcomes == [["succeeded"], ["host-lost", "succeeded"], ["failed"]]
    lost, retry = stages["ingest-1"]["jobs"][0]["attempts"]
    assert (retry["number"], retry["queued"], retry["instance"]) == (2, lost["stop"], "i-3")
    assert page.tables["jobs"][1:] == [
        ["array creation", "tiledbvcf-create", "SUCCEEDED", "1", "0", "", "1m00s"],
        ["ingestion 1", "tiledbvcf-ingest-b1-j1", "SUCCEEDED", "2", "1", "1000 B", "1h00m00s"],
        ["ingestion 1", "tiledbvcf-ingest-b1-j2", "FAILED", "1", "1", "2.0 KiB", "10m00s"],
    ]
    # $1.18 in all (instances), shared by the seconds attempts ran: creation 60 s of 4,260, ingestion 4,200.
    assert page.tables["costs"][1:] == [
        ["array creation", "1 / 1", "1", "1m00s", "$0.02"],
        ["ingestion 1", "1 / 2", "3", "1h10m00s", "$1.17"],
    ]
    assert page.tables["estimate"][1:] == [
        ["Instance-hours", "1.50", "1.18"],
        ["Wall time", "50m00s", "1h01m00s"],
        ["Cost", "$1.50", "$1.18"],
    ]
    assert "<p>Estimated before the run (estimate from 2 earlier runs).</p>" in text
    assert "<h3>1 job(s): name-id-ingest-1-2</h3>" in text
    assert "step 4\n[critical] Error: &lt;TileDB::S3&gt; Access Denied &amp; gone</pre>" in text  # the log's tail


def test_names_and_logs_cannot_break_out_of_the_page(tmp_path):
    finished, executor = stub_run(tmp_path)
    assert finished.record is not None
    finished.record.jobs[1].name = "</script><script>alert(1)</script>"
    text = htmlreport.html_page(finished, executor.words, executor.host_lost)
    assert "<script>alert(1)" not in text
    assert Page(text).data["stages"][1]["jobs"][0]["name"] == "</script><script>alert(1)</script>"


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(chromium() is None, reason="no Chromium (.ci/run installs Debian's chromium)")
def test_chromium_draws_one_bar_per_attempt_and_marks_retries_and_host_losses(tmp_path):
    finished, executor = stub_run(tmp_path)
    path = tmp_path / "report.html"
    htmlreport.write_page(str(path), htmlreport.html_page(finished, executor.words, executor.host_lost))
    browser = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run([*browser, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120).stdout
    bars = re.findall(r'<rect [^>]*class="attempt ([a-z -]+)"', dom)
    assert sorted(bars) == sorted(["succeeded", "host-lost", "succeeded retry", "failed"])
    assert re.findall(r'class="stage-label">([^<]+)<', dom) == ["array creation (1 jobs)", "ingestion 1 (2 jobs)"]
    assert len(re.findall(r'class="mark retry-mark"[^>]*>2<', dom)) == 1
    assert len(re.findall(r'class="mark host-lost-mark"', dom)) == 1
    assert "The timeline is drawn by the page's script" not in dom  # the script ran
    shot = tmp_path / "report.png"
    subprocess.run([*browser, "--window-size=1300,900", f"--screenshot={shot}", path.as_uri()],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_report_html_of_a_retried_run_and_report_with_wait(aws, samples_file, run_ingest, tmp_path):
    retried_once(aws)
    uri = ingest(run_ingest, samples_file)
    path = tmp_path / "run.html"
    result = invoke(RUNS.main, ["report", uri, "--html", str(path)])
    assert result.exit_code == 0, result.stderr
    assert f"HTML report written to {path}" in result.stderr
    data = Page(path.read_text()).data
    attempts = [a["outcome"] for stage in data["stages"] for job in stage["jobs"] for a in job["attempts"]]
    assert attempts == ["host-lost", "succeeded"] * 3
    first = data["stages"][0]["jobs"][0]["attempts"][0]
    assert first["queued"] <= first["start"] < first["stop"]  # queued from its submission, then running
    assert [job["bytes"] for stage in data["stages"] for job in stage["jobs"]] == [None, 5, 5]
    later = invoke(RUNS.main, ["wait", uri, "--html", str(tmp_path / "later.html")])
    assert later.exit_code == 0 and Page((tmp_path / "later.html").read_text()).data == data | {"now": ANY}

    waited = tmp_path / "waited.html"
    again = run_ingest(
        "--dataset-uri", DATASET + "-2", "--samples", str(samples_file(2, "more.txt")), "--metadata-s3",
        "bucket2-name", "--no-consolidate", "--wait", "--report", str(waited),
    )  # fmt: skip
    assert again.exit_code == 0, again.stderr
    assert f"HTML report written to {waited}" in again.stderr
    assert "Finished waiting on" in again.stdout and len(Page(waited.read_text()).data["stages"]) == 2


def test_report_is_refused_without_wait_or_with_a_missing_directory(aws, samples_file, run_ingest, tmp_path):
    samples = str(samples_file(2))
    common = ["--dataset-uri", DATASET, "--samples", samples, "--metadata-s3", "bucket2-name"]
    no_wait = run_ingest(*common, "--report", str(tmp_path / "r.html"))
    assert no_wait.exit_code == 2
    assert "--report needs --wait" in no_wait.stderr and "batch-runs.py report RUN --html FILE.html" in no_wait.stderr
    nowhere = run_ingest(*common, "--wait", "--report", str(tmp_path / "no" / "r.html"))
    assert nowhere.exit_code == 2
    assert f"--report {tmp_path / 'no' / 'r.html'}: there is no directory {tmp_path / 'no'}" in nowhere.stderr
    dry = run_ingest(*common, "--dry-run", "--report", str(tmp_path / "r.html"))
    assert dry.exit_code == 2 and "drop it with --dry-run" in dry.stderr
    assert aws.submitted == [] and not (tmp_path / "r.html").exists()
