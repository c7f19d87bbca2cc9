"""BM25 over jieba tokens, stored as plain arrays: per-term posting lists of precomputed BM25 weights.

Scoring a query is then a sum of a few posting lists, which stays fast at 60k chunks without any
external search engine.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kb.text.tokenize import tokenize

K1 = 1.2
B = 0.75
_FILES = ("lexical_term_ptr.npy", "lexical_docs.npy", "lexical_weights.npy", "lexical_vocab.json")
_VOCAB_SHAPE = {"n_docs": int, "terms": [str]}

#: What a JSON file of an index build must look like, for check_shape: a type (or a tuple of types); {key: shape},
#: an object with at least these keys; {str: shape}, an object whose every value has that shape; [shape], an
#: array whose every item has it. It lives here, in the module kb.stores.handles and kb.stores.index_dir both
#: import, so that every JSON file of an index is checked the same way.
Shape = type | tuple[type, ...] | dict | list
_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number",
               bool: "true or false", type(None): "null"}


def _shape_problem(value: object, shape: Shape) -> tuple[str, str] | None:
    """Where inside `value` it differs from `shape` (".key", "[3]", "" for itself) and how, or None."""
    if isinstance(shape, (dict, list)):
        if isinstance(shape, list) and isinstance(value, list):
            children = ((f"[{i}]", item, shape[0]) for i, item in enumerate(value))
        elif isinstance(shape, dict) and isinstance(value, dict):
            if str in shape:
                children = ((f"[{key!r}]", item, shape[str]) for key, item in value.items())
            elif missing := [key for key in shape if key not in value]:
                return f".{missing[0]}", "is missing"
            else:
                children = ((f".{key}", value[key], inner) for key, inner in shape.items())
        else:
            return "", f"should be {_JSON_NAMES[type(shape)]}, not {_JSON_NAMES.get(type(value))}"
        for where, item, inner in children:
            if type(item) is not inner and (problem := _shape_problem(item, inner)):  # plain match: no call
                return where + problem[0], problem[1]
        return None
    types = shape if isinstance(shape, tuple) else (shape,)
    if isinstance(value, types) and (bool in types or not isinstance(value, bool)):  # JSON's true is no integer
        return None
    return "", f"should be {' or '.join(_JSON_NAMES[t] for t in types)}, not {_JSON_NAMES.get(type(value))}"


def check_shape(value: object, shape: Shape, name: str) -> None:
    """Refuse (ValueError naming the file `name`) a decoded JSON value of another shape than the code reads:
    a damaged or hand-edited file is reported by name, not met later as a KeyError or TypeError."""
    if (problem := _shape_problem(value, shape)) is not None:
        where, how = problem
        raise ValueError(f"{name}: {where.removeprefix('.') or 'the file'} {how}")


def read_json(path: Path, shape: Shape) -> Any:
    """A JSON file of an index build, decoded and checked against `shape` (ValueError naming the file if not)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path.name} is unreadable ({exc})") from exc
    check_shape(value, shape, path.name)
    return value


# The formulas, shared with the Milvus store (kb/stores/milvus.py), which keeps the same scores as sparse vectors.

def bm25_idf(n_docs: int, df: int) -> float:
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))


def saturated_tf(tf: int, length: float, avg_length: float) -> float:
    """A term's weight in a passage before idf: tf·(k1+1) / (tf + k1·(1−b+b·length/avg_length))."""
    return tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avg_length))


def coverage_idf(n_docs: int, df: int) -> float:
    """The idf that kb.answers.answer and the ranker's coverage weigh words by (a word no passage holds weighs most)."""
    return math.log((n_docs + 1) / (df + 0.5))


def average_length(lengths: Sequence[float] | np.ndarray) -> float:
    mean = float(np.mean(lengths)) if len(lengths) else 0.0
    return mean if mean > 0 else 1.0


class LexicalIndex:
    def __init__(self, vocab: dict[str, int], term_ptr: np.ndarray, docs: np.ndarray, weights: np.ndarray,
                 n_docs: int) -> None:
        self.vocab = vocab
        self.term_ptr = term_ptr
        self.docs = docs
        self.weights = weights
        self.n_docs = n_docs

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        counts = [Counter(tokenize(t)) for t in texts]
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)
        avg_length = average_length(lengths)
        postings: dict[str, list[tuple[int, int]]] = {}
        for doc, counter in enumerate(counts):
            for term, tf in counter.items():
                postings.setdefault(term, []).append((doc, tf))
        terms = sorted(postings)
        vocab = {term: i for i, term in enumerate(terms)}
        term_ptr = np.zeros(len(terms) + 1, dtype=np.int64)
        docs_list: list[int] = []
        weights_list: list[float] = []
        n = len(texts)
        for i, term in enumerate(terms):
            plist = postings[term]
            idf = bm25_idf(n, len(plist))
            for doc, tf in plist:
                docs_list.append(doc)
                weights_list.append(idf * saturated_tf(tf, lengths[doc], avg_length))
            term_ptr[i + 1] = len(docs_list)
        return cls(vocab, term_ptr, np.array(docs_list, dtype=np.int32), np.array(weights_list, dtype=np.float32), n)

    def save(self, directory: Path, prefix: str = "") -> None:
        """Four plain files; `prefix` keeps a second index (kb.stores.handles) beside the passages' own."""
        np.save(directory / f"{prefix}{_FILES[0]}", self.term_ptr)
        np.save(directory / f"{prefix}{_FILES[1]}", self.docs)
        np.save(directory / f"{prefix}{_FILES[2]}", self.weights)
        (directory / f"{prefix}{_FILES[3]}").write_text(
            json.dumps({"n_docs": self.n_docs, "terms": list(self.vocab)}, ensure_ascii=False), encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path, prefix: str = "") -> LexicalIndex:
        meta = read_json(directory / f"{prefix}{_FILES[3]}", _VOCAB_SHAPE)
        vocab = {term: i for i, term in enumerate(meta["terms"])}
        term_ptr = np.load(directory / f"{prefix}{_FILES[0]}", allow_pickle=False)
        docs = np.load(directory / f"{prefix}{_FILES[1]}", allow_pickle=False)
        weights = np.load(directory / f"{prefix}{_FILES[2]}", allow_pickle=False)
        n_docs = meta["n_docs"]
        if (term_ptr.ndim != 1 or len(term_ptr) != len(vocab) + 1 or docs.ndim != 1 or docs.shape != weights.shape
                or term_ptr[-1] != len(docs)):
            raise ValueError("lexical index arrays do not agree with each other")
        # A query adds weights[term_ptr[i]:term_ptr[i + 1]] at rows docs[...] of n_docs scores: anything else
        # would fail there, or rank by garbage.
        ordered = term_ptr[0] == 0 and not np.any(np.diff(term_ptr) < 0)
        in_range = n_docs >= 0 and (not len(docs) or 0 <= docs.min() <= docs.max() < n_docs)
        if ((term_ptr.dtype.kind, docs.dtype.kind, weights.dtype.kind) != ("i", "i", "f")
                or not (ordered and in_range and np.isfinite(weights).all())):
            raise ValueError(f"{prefix}lexical_*.npy: postings out of order, outside the {n_docs} rows, or not finite")
        return cls(vocab, term_ptr, docs, weights, n_docs)

    def query_terms(self, query: str) -> list[str]:
        """The query's tokens that occur in the index (unique, in order)."""
        return [t for t in dict.fromkeys(tokenize(query)) if t in self.vocab]

    def idf(self, term: str) -> float:
        """How much a word says about what a text is about: rarer is more; a word the index lacks, the most."""
        i = self.vocab.get(term)
        df = 0 if i is None else int(self.term_ptr[i + 1] - self.term_ptr[i])
        return coverage_idf(self.n_docs, df)

    def coverage(self, terms: Sequence[str]) -> np.ndarray:
        """Per chunk, the idf-weighted share of `terms` it contains (0 to 1): BM25 without its saturation."""
        share = np.zeros(self.n_docs, dtype=np.float32)
        weights = {t: self.idf(t) for t in dict.fromkeys(terms)}
        total = sum(weights.values())
        if total <= 0:
            return share
        for term, weight in weights.items():
            i = self.vocab.get(term)
            if i is not None:
                share[self.docs[self.term_ptr[i]:self.term_ptr[i + 1]]] += weight / total
        return share

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for the query (zeros where no term matches)."""
        return self.term_scores(self.query_terms(query))

    def term_scores(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every chunk for a query already cut into the index's words (query_terms)."""
        scores = np.zeros(self.n_docs, dtype=np.float32)
        for term in terms:
            i = self.vocab[term]
            lo, hi = self.term_ptr[i], self.term_ptr[i + 1]
            scores[self.docs[lo:hi]] += self.weights[lo:hi]
        return scores
