"""Peak memory of a real `kb serve` while it answers under load and, meanwhile, staff reload the index every few
seconds and add a document (a background re-ingest in the same process): the worst case a township server sees.

    python -m bench.memory [--backend torch] [--concurrency 8] [--requests 600] [--index DIR]

Runs on a copy of the corpus and of the index bench.ingest built, so nothing of the repository changes. Reports
the server's resident memory before and after (current and peak, from /proc), the requests that failed, and
how long the re-ingest took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.common import WORK, write_result
from bench.latency import REQUESTS, load, memory_mb, questions, requests_for
from bench.services import free_port, wait_ready
from kb.config import PROJECT_ROOT

ADMIN_KEY = "bench-admin-key"
NEW_DOCUMENT = "村规民约（示例）.txt", "某村村规民约\n\n一、村民应当爱护公共设施，不得在村道上晾晒农作物。\n二、红白喜事从简办理。\n"


def staff_activity(base: str, stop: threading.Event, reload_every_s: float) -> dict:
    """Reload every few seconds; add one document once the load has started; wait for its re-ingest."""
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    reloads, job, ingest_s = 0, None, None
    with httpx.Client(base_url=base, timeout=120, headers=auth) as http:
        time.sleep(reload_every_s)
        name, text = NEW_DOCUMENT
        started = time.perf_counter()
        job = http.post("/api/admin/documents", params={"filename": name}, content=text.encode()).json()
        while not stop.wait(reload_every_s):
            reloads += http.post("/api/admin/reload").status_code == 200
            state = http.get(f"/api/admin/jobs/{job['job_id']}").json()
            if ingest_s is None and state["status"] in ("done", "failed"):
                ingest_s, job = round(time.perf_counter() - started, 1), state
    return {"reloads": reloads, "reingest": job["status"], "reingest_s": ingest_s}


def copied_index(index: Path, into: Path) -> Path:
    """A copy of the published index `index` under `into`: its build folder, and a link to it as the store
    publishes one (staff reloads then swap the copy, never the original)."""
    build = index.resolve()
    copy = shutil.copytree(build, into / build.parent.name / build.name)
    link = into / index.name
    link.symlink_to(copy.relative_to(into))
    return link


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--reload-every", type=float, default=3.0)
    parser.add_argument("--index", help="default: the index bench.ingest built for this backend")
    args = parser.parse_args()
    built = Path(args.index) if args.index else WORK / "indexes" / f"default-{args.backend}"
    if not (built / "manifest.json").is_file():
        print(f"skipped: no index at {built} (run python -m bench.ingest first)")
        return 0
    REQUESTS[args.concurrency] = args.requests
    with tempfile.TemporaryDirectory(prefix="kb-memory-") as tmp:
        corpus = shutil.copytree(PROJECT_ROOT / "corpus", Path(tmp) / "corpus")
        index = copied_index(built, Path(tmp) / "indexes")
        env = {**os.environ, "KB_EMBEDDING_BACKEND": args.backend, "KB_RATE_PER_MINUTE": "1000000",
               "KB_RATE_BURST": "1000000", "KB_QUERY_LOG": str(Path(tmp) / "log.sqlite"), "KB_ADMIN_KEY": ADMIN_KEY,
               "KB_CORPUS": str(corpus)}
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--index", str(index), "--port", str(port)],
                                  env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, server)
            figures = {"backend": args.backend, "concurrency": args.concurrency, "idle": memory_mb(server.pid)}
            stop = threading.Event()
            staff: dict = {}
            worker = threading.Thread(target=lambda: staff.update(staff_activity(base, stop, args.reload_every)))
            worker.start()
            figures["load"] = asyncio.run(load([base], "/api/ask", requests_for("/api/ask", questions()),
                                               args.concurrency))
            stop.set()
            worker.join()
            figures.update(staff=staff, after=memory_mb(server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)
    write_result(f"memory_{args.backend}_c{args.concurrency}", figures)
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
