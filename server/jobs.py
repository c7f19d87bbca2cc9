"""Background jobs (re-ingesting after a document is added or removed): one at a time, remembered briefly."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)
REMEMBERED_JOBS = 100


@dataclass
class Job:
    job_id: str
    kind: str
    status: str = "queued"  # queued | running | done | failed
    message: str = ""
    created_at: float = 0.0
    finished_at: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class JobRunner:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-job")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._done: dict[str, Future] = {}
        self._lock = threading.Lock()

    def submit(self, kind: str, work: Callable[[], str]) -> Job:
        """Queue `work`; its return value becomes the job's message, an exception marks it failed."""
        job = Job(uuid.uuid4().hex, kind, created_at=time.time())
        with self._lock:  # held while submitting, so a job runs only once it is listed, and a refused one never is
            self._done[job.job_id] = self._executor.submit(self._run, job, work)
            self._jobs[job.job_id] = job
            while len(self._jobs) > REMEMBERED_JOBS:
                self._done.pop(self._jobs.popitem(last=False)[0], None)
        return job

    def wait(self, job_id: str, timeout_s: float | None = None) -> Job | None:
        """The job once it has finished (None if unknown); raises TimeoutError if it takes longer."""
        with self._lock:
            job, done = self._jobs.get(job_id), self._done.get(job_id)
        if done is not None:
            done.result(timeout_s)
        return job

    def _run(self, job: Job, work: Callable[[], str]) -> None:
        job.status = "running"
        try:
            job.message = work()
            job.status = "done"
        except Exception as exc:  # a failed job must be reported, not lost in a thread
            log.exception("job %s failed", job.kind)
            job.status, job.message = "failed", str(exc)
        job.finished_at = time.time()

    def close(self) -> None:
        """Finish the running job, drop queued ones; jobs submitted afterwards are refused."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)
