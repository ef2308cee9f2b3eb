"""Polling, the report and the submit pacer, with a scripted Batch and a fake clock."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

import common


class ScriptedBatch:
    """describe_jobs answers from a script: job i succeeds at poll round finish_round[i]."""

    def __init__(self, finish_round: dict[str, int], throttle_rounds: frozenset[int] = frozenset()):
        self.finish_round = finish_round
        self.throttle_rounds = throttle_rounds
        self.round = 0
        self.calls: list[list[str]] = []
        self._seen_in_round: set[str] = set()

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        if set(jobs) & self._seen_in_round:
            self.round += 1
            self._seen_in_round = set()
        self._seen_in_round |= set(jobs)
        self.calls.append(list(jobs))
        if self.round in self.throttle_rounds:
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow"}}, "DescribeJobs")
        return {
            "jobs": [
                {"jobId": j, "status": "SUCCEEDED" if self.round >= self.finish_round[j] else "RUNNING"} for j in jobs
            ]
        }


def test_polling_uses_at_most_100_ids_and_never_polls_finished_jobs():
    finish = {f"j{i}": (0 if i < 200 else 3) for i in range(250)}
    batch = ScriptedBatch(finish)
    sleeps: list[float] = []
    latest = common.wait_for_jobs(batch, list(finish), sleep=sleeps.append, interval=10, max_interval=60)
    assert all(len(call) <= common.DESCRIBE_JOBS_MAX_IDS for call in batch.calls)
    assert [len(call) for call in batch.calls] == [100, 100, 50, 50, 50, 50]
    assert all(d["status"] == "SUCCEEDED" for d in latest.values()) and len(latest) == 250
    # Backs off while nothing changes: 10 after the first change, then 20, 40.
    assert sleeps == [10, 20, 40]


def test_throttling_slows_polling_down_but_never_ends_the_wait():
    batch = ScriptedBatch({"a": 2}, throttle_rounds=frozenset({1}))
    sleeps: list[float] = []
    latest = common.wait_for_jobs(batch, ["a"], sleep=sleeps.append, interval=5, max_interval=60)
    assert latest["a"]["status"] == "SUCCEEDED"
    assert sleeps == [5, 10]


def test_report_figures_and_cost():
    hour = 3_600_000
    jobs = [
        {
            "jobId": "a",
            "jobName": "one",
            "status": "SUCCEEDED",
            "attempts": [
                {"startedAt": 0, "stoppedAt": hour // 2, "container": {"containerInstanceArn": "i-1"}},
                {"startedAt": hour, "stoppedAt": 2 * hour, "container": {"containerInstanceArn": "i-2"}},
            ],
        },
        {
            "jobId": "b",
            "jobName": "two",
            "status": "SUCCEEDED",
            "attempts": [{"startedAt": 0, "stoppedAt": hour, "container": {"containerInstanceArn": "i-1"}}],
        },
        {"jobId": "c", "jobName": "three", "status": "FAILED", "statusReason": "Dependent Job failed", "attempts": []},
    ]
    report = common.build_report(jobs, instance_price=2.0)
    assert (report.total, report.succeeded, report.retried, report.instances) == (3, 2, 1, 2)
    assert report.longest_seconds == 5400.0
    assert report.instance_hours == 2.0 and report.cost == 4.0
    assert common.format_report(report) == [
        "Finished waiting on 3 jobs:",
        "- 2 / 3 jobs succeeded",
        "- 1 jobs had more than 1 attempt.",
        "- 2 instances used.",
        "- Longest job took 5400.000 seconds (includes retries).",
        "- Total cost estimate $4.00 (2.00 hours @ $2.0000 / hr)",
        "FAILED job c (three): Dependent Job failed",
    ]


def test_pacer_keeps_submissions_under_the_account_limit():
    now = [0.0]
    pacer = common.Pacer(
        common.SUBMITS_PER_SECOND, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    stamps = []
    for _ in range(200):
        pacer.wait()
        stamps.append(now[0])
    # No one-second window holds more than 50 submissions (the account-wide SubmitJob limit).
    assert max(sum(1 for t in stamps if start <= t < start + 1) for start in stamps) <= 50
    assert stamps[-1] >= 199 / common.SUBMITS_PER_SECOND - 1e-9
