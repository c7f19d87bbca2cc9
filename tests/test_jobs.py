"""server.jobs.JobRunner: background jobs run one at a time, in order, and are remembered briefly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from server.jobs import REMEMBERED_JOBS, Job, JobRunner

TIMEOUT = 10.0


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def finished(job: Job) -> bool:
    return job.status in ("done", "failed")


@pytest.fixture
def runner() -> Iterator[JobRunner]:
    runner = JobRunner()
    yield runner
    runner.close()


def test_a_job_runs_and_its_result_becomes_the_message(runner: JobRunner) -> None:
    before = time.time()
    job = runner.submit("reingest", lambda: "已重建索引")
    assert job.kind == "reingest" and job.job_id and job.created_at >= before
    wait_until(lambda: finished(job))
    assert (job.status, job.message) == ("done", "已重建索引")
    assert job.finished_at is not None and job.finished_at >= job.created_at
    assert runner.get(job.job_id) is job
    assert job.to_dict()["status"] == "done"


def test_jobs_run_one_at_a_time_in_submission_order(runner: JobRunner) -> None:
    events: list[str] = []
    running = 0
    most_at_once = 0
    lock = threading.Lock()

    def work(name: str) -> Callable[[], str]:
        def run() -> str:
            nonlocal running, most_at_once
            with lock:
                running += 1
                most_at_once = max(most_at_once, running)
                events.append(f"start {name}")
            time.sleep(0.02)
            with lock:
                events.append(f"end {name}")
                running -= 1
            return name
        return run

    jobs = [runner.submit("work", work(str(n))) for n in range(5)]
    wait_until(lambda: all(finished(job) for job in jobs))
    assert most_at_once == 1
    assert events == [f"{step} {n}" for n in range(5) for step in ("start", "end")]
    assert [job.message for job in jobs] == [str(n) for n in range(5)]


def test_a_queued_job_waits_for_the_running_one(runner: JobRunner) -> None:
    release = threading.Event()
    first = runner.submit("slow", lambda: "first" if release.wait(TIMEOUT) else "not released")
    second = runner.submit("quick", lambda: "second")
    wait_until(lambda: first.status == "running")
    time.sleep(0.05)
    assert second.status == "queued"
    release.set()
    wait_until(lambda: finished(second))
    assert (first.status, second.status) == ("done", "done")
    assert first.finished_at <= second.finished_at


def test_a_failing_job_is_marked_failed_with_its_message_and_the_next_still_runs(runner: JobRunner) -> None:
    def broken() -> str:
        raise OSError("磁盘已满")

    failing = runner.submit("reingest", broken)
    after = runner.submit("reingest", lambda: "ok")
    wait_until(lambda: finished(after))
    assert (failing.status, failing.message) == ("failed", "磁盘已满")
    assert failing.finished_at is not None
    assert (after.status, after.message) == ("done", "ok")


def test_unknown_job_id_is_none(runner: JobRunner) -> None:
    runner.submit("x", lambda: "")
    assert runner.get("no-such-job") is None
    assert runner.get("") is None


def test_job_ids_are_unique(runner: JobRunner) -> None:
    jobs = [runner.submit("x", lambda: "") for _ in range(50)]
    assert len({job.job_id for job in jobs}) == 50


def test_only_the_latest_jobs_are_remembered(runner: JobRunner) -> None:
    jobs = [runner.submit("x", lambda: "") for _ in range(REMEMBERED_JOBS + 7)]
    wait_until(lambda: finished(jobs[-1]))
    assert all(runner.get(job.job_id) is None for job in jobs[:7])
    assert all(runner.get(job.job_id) is job for job in jobs[7:])


def test_close_finishes_the_running_job_drops_queued_ones_and_refuses_new_ones() -> None:
    runner = JobRunner()
    release = threading.Event()
    ran: list[str] = []
    holding = runner.submit("holding", lambda: "held" if release.wait(TIMEOUT) else "not released")
    behind = runner.submit("behind", lambda: ran.append("behind") or "should not run")
    wait_until(lambda: holding.status == "running")

    closer = threading.Thread(target=runner.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive(), "close() returned while a job was still running"
    release.set()
    closer.join(TIMEOUT)
    assert not closer.is_alive()

    assert (holding.status, holding.message) == ("done", "held")
    time.sleep(0.05)
    assert ran == [] and behind.status == "queued", "a job queued behind close() must not run"
    with pytest.raises(RuntimeError):
        runner.submit("late", lambda: "too late")
