"""kb.search.fuse.fuse: each fusion method against values worked out here, and the properties a ranking needs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kb.config import RetrievalParams
from kb.search.fuse import fuse

DENSE = np.array([0.62, 0.80, 0.41, 0.75, 0.55])
LEXICAL = np.array([3.0, 0.0, 7.5, 1.5, 0.0])


def params(method: str, **changes: object) -> RetrievalParams:
    return replace(RetrievalParams(), method=method, **changes)


def descending_rank(values: list[float], i: int) -> int:
    """1 + how many values are strictly larger (the values used here are distinct)."""
    return 1 + sum(1 for v in values if v > values[i])


# --- weighted -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("w", [0.0, 0.3, 0.7, 1.0])
def test_weighted_is_the_weighted_sum_of_unit_scaled_scores(w: float) -> None:
    d_lo, d_hi = min(DENSE), max(DENSE)
    l_lo, l_hi = min(LEXICAL), max(LEXICAL)
    expected = [w * (d - d_lo) / (d_hi - d_lo) + (1 - w) * (lx - l_lo) / (l_hi - l_lo)
                for d, lx in zip(DENSE, LEXICAL)]
    np.testing.assert_allclose(fuse(DENSE, LEXICAL, params("weighted", dense_weight=w)), expected)


def test_weighted_scores_lie_in_0_1_and_the_best_of_both_scores_1() -> None:
    dense = np.array([0.9, 0.5, 0.3])
    lexical = np.array([4.0, 2.0, 1.0])
    fused = fuse(dense, lexical, params("weighted", dense_weight=0.6))
    assert fused[0] == pytest.approx(1.0) and fused[2] == pytest.approx(0.0)
    assert ((fused >= 0) & (fused <= 1)).all()


def test_weighted_with_constant_scores_contributes_nothing_from_that_side() -> None:
    """All lexical scores equal (e.g. no word matched anywhere): only the dense side ranks."""
    fused = fuse(DENSE, np.zeros(len(DENSE)), params("weighted", dense_weight=0.7))
    np.testing.assert_allclose(fused, 0.7 * (DENSE - DENSE.min()) / (DENSE.max() - DENSE.min()))
    assert not fuse(np.full(3, 0.5), np.full(3, 2.0), params("weighted")).any()


# --- reciprocal-rank fusion -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("w, k", [(0.7, 60), (0.5, 10), (0.2, 1)])
def test_rrf_against_ranks_worked_out_by_hand(w: float, k: int) -> None:
    dense, lexical = list(DENSE), list(LEXICAL)
    matched = [lx for lx in lexical if lx > 0]
    expected = []
    for i in range(len(dense)):
        score = w / (k + descending_rank(dense, i))
        if lexical[i] > 0:  # a candidate no query word matched gets no lexical vote at all
            score += (1 - w) / (k + descending_rank(matched, matched.index(lexical[i])))
        expected.append(score * (k + 1))
    np.testing.assert_allclose(fuse(DENSE, LEXICAL, params("rrf", dense_weight=w, rrf_k=k)), expected)


@pytest.mark.parametrize("w", [0.0, 0.4, 0.7, 1.0])
def test_rrf_best_possible_score_is_1(w: float) -> None:
    dense = np.array([0.3, 0.9, 0.5])
    lexical = np.array([1.0, 6.0, 2.0])  # candidate 1 is first on both sides
    fused = fuse(dense, lexical, params("rrf", dense_weight=w))
    assert fused[1] == pytest.approx(1.0)
    assert (fused <= 1.0 + 1e-12).all()


def test_rrf_without_lexical_matches_is_the_dense_ranking_scaled() -> None:
    fused = fuse(DENSE, np.zeros(len(DENSE)), params("rrf", dense_weight=0.7, rrf_k=60))
    expected = [0.7 * 61 / (60 + descending_rank(list(DENSE), i)) for i in range(len(DENSE))]
    np.testing.assert_allclose(fused, expected)
    assert fused.max() == pytest.approx(0.7)


def test_rrf_looks_only_at_ranks() -> None:
    """Any order-preserving change of either side's scores leaves RRF unchanged."""
    p = params("rrf")
    np.testing.assert_allclose(fuse(DENSE, LEXICAL, p), fuse(DENSE ** 3 - 5, LEXICAL * 100, p))


# --- passthrough and errors -------------------------------------------------------------------------------------------


def test_dense_and_lexical_pass_the_scores_through() -> None:
    dense32, lexical32 = DENSE.astype(np.float32), LEXICAL.astype(np.float32)
    for method, scores in (("dense", dense32), ("lexical", lexical32)):
        fused = fuse(dense32, lexical32, params(method))
        assert fused.dtype == np.float64
        np.testing.assert_array_equal(fused, scores.astype(np.float64))


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="bm25-only"):
        fuse(DENSE, LEXICAL, params("bm25-only"))


# --- properties -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["weighted", "rrf"])
@pytest.mark.parametrize("seed", range(5))
def test_a_candidate_better_on_both_sides_is_never_fused_lower(method: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dense = rng.uniform(-0.2, 0.9, 40)
    lexical = np.where(rng.random(40) < 0.3, 0.0, rng.uniform(0.1, 12.0, 40))  # some candidates match no word
    fused = fuse(dense, lexical, params(method, dense_weight=float(rng.uniform(0.1, 0.9))))
    assert fused.shape == (40,) and np.isfinite(fused).all()
    for a in range(40):
        for b in range(40):
            if dense[a] > dense[b] and lexical[a] >= lexical[b]:
                assert fused[a] > fused[b] - 1e-12, (a, b)


@pytest.mark.parametrize("method", ["weighted", "rrf"])
def test_raising_one_candidates_dense_score_never_lowers_it(method: str) -> None:
    p = params(method)
    before = fuse(DENSE, LEXICAL, p)
    raised = DENSE.copy()
    raised[2] = 0.79  # from fourth place to second
    after = fuse(raised, LEXICAL, p)
    assert after[2] > before[2]
    assert (after > after[2]).sum() <= (before > before[2]).sum()  # its place in the ranking is no worse


@pytest.mark.parametrize("method", ["weighted", "dense", "lexical"])
def test_identical_candidates_get_identical_scores(method: str) -> None:
    dense = np.array([0.7, 0.4, 0.7, 0.2])
    lexical = np.array([2.0, 5.0, 2.0, 0.0])
    fused = fuse(dense, lexical, params(method))
    assert fused[0] == fused[2]


def test_rrf_identical_candidates_get_identical_scores() -> None:
    dense = np.array([0.7, 0.4, 0.7, 0.2])
    lexical = np.array([2.0, 5.0, 2.0, 0.0])
    fused = fuse(dense, lexical, params("rrf"))
    assert fused[0] == fused[2]


def test_fusion_does_not_depend_on_candidate_order() -> None:
    rng = np.random.default_rng(7)
    dense, lexical = rng.uniform(0, 1, 12), rng.uniform(0, 5, 12)
    permutation = rng.permutation(12)
    for method in ("weighted", "rrf", "dense", "lexical"):
        p = params(method)
        np.testing.assert_allclose(fuse(dense[permutation], lexical[permutation], p), fuse(dense, lexical, p)[permutation])
