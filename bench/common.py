"""What every benchmark shares: where the shared data and the results live, and how figures are recorded."""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kb.config import PROJECT_ROOT

SHARED = PROJECT_ROOT.parent / "shared"
#: The indexes benchmarks build (not committed) and their results (JSON, one small file per benchmark; committed,
#: so every figure the README and docs quote has its source in git).
WORK = PROJECT_ROOT / "var" / "bench"
RESULTS = PROJECT_ROOT / "bench" / "results"
#: The frozen experiments' results (bench/experiments/README.md): kept beside the scripts that wrote them.
EXPERIMENT_RESULTS = PROJECT_ROOT / "bench" / "experiments" / "results"


def write_result(name: str, figures: dict, directory: Path | None = None) -> Path:
    """bench/results/<name>.json (or <directory>/<name>.json), pretty-printed UTF-8."""
    directory = directory or RESULTS
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def read_result(name: str, directory: Path | None = None) -> dict | None:
    path = (directory or RESULTS) / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def peak_rss_mb() -> float:
    """This process's peak resident memory (ru_maxrss is in KiB on Linux)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def timed(fn: Callable, *args: object) -> tuple[float, object]:
    """(seconds taken, result) of one call."""
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def timed_ms(fn: Callable, *args: object) -> float:
    return timed(fn, *args)[0] * 1000


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50/p95/p99 of latencies in milliseconds."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": round(statistics.median(ordered), 1), "p95": at(0.95), "p99": at(0.99)}
