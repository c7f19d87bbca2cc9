"""The benchmark and training scripts: each one imports (a stage of `make bench` or `make train` that cannot even
start is found here, not after an hour of another stage), and the load generator's requests are well formed."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from bench.latency import ENDPOINTS, requests_for

BENCH = Path(__file__).resolve().parent.parent / "bench"
MODULES = sorted(f"bench.{p.stem}" for p in BENCH.glob("*.py") if p.stem not in ("__init__", "__main__")) + sorted(
    f"bench.experiments.{p.stem}" for p in (BENCH / "experiments").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", MODULES)
def test_every_bench_script_imports(module: str) -> None:
    assert callable(getattr(importlib.import_module(module), "main", None)) or module in (
        "bench.common", "bench.crossfit", "bench.services"), f"{module} (a script, not a helper) has no main()"


def test_the_load_generator_sends_each_endpoint_what_it_expects() -> None:
    items = ["信访事项多长时间内办结？", "法律援助可以向哪里申请"]
    assert requests_for("/api/search", items) == [{"q": q, "top_k": 5} for q in items]
    assert requests_for("/api/ask", items) == [{"question": q} for q in items]
    conversations = requests_for("/api/ask with history", items)
    assert conversations and all(c["question"] and c["history"] and all(isinstance(h, str) for h in c["history"])
                                 for c in conversations)
    assert set(ENDPOINTS) == {"/api/search", "/api/ask", "/api/ask with history"}


def test_cross_fitting_folds_are_fixed_and_balanced() -> None:
    """Every training question keeps its fold from run to run (the fold tunings, the ranker and the handle stage
    must agree on who saw what), and the folds are of about the same size."""
    from bench.crossfit import FOLDS, fold

    questions = [f"第{i}个问题：邻居家的树倒了砸坏我家的车，谁来赔？" for i in range(2000)]
    folds = [fold(q) for q in questions]
    assert folds == [fold(q) for q in questions] and set(folds) == set(range(FOLDS))
    sizes = [folds.count(k) for k in range(FOLDS)]
    assert max(sizes) - min(sizes) < 0.25 * len(questions) / FOLDS, sizes
