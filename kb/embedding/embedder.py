"""Dense embeddings with a sentence-transformers model, loaded once and shared by ingest and search."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kb.config import DEFAULT_MODEL_ID, Settings
from kb.embedding.model.build import build_default_model, model_fingerprint
from kb.errors import KnowledgeBaseError

log = logging.getLogger(__name__)


class ModelNotFoundError(KnowledgeBaseError):
    """A configured model folder does not exist or is not a sentence-transformers model."""


def ensure_model(settings: Settings) -> None:
    """Build the default model on first use; check that a configured one exists."""
    if settings.embedding_model == DEFAULT_MODEL_ID:
        build_default_model(settings.model_dir, settings.cache_dir, settings.model_artefacts_dir)
    elif not (settings.model_dir / "modules.json").is_file() and not (settings.model_dir / "config.json").is_file():
        raise ModelNotFoundError(
            f"embedding model folder {settings.model_dir} not found or not a sentence-transformers model "
            "(KB_EMBEDDING_MODEL must be the default or a local folder)"
        )


BACKENDS = ("torch", "onnx-int8")
#: Questions whose vectors are kept (2 × 384 floats each: 0.8 MB in all).
RECENT_QUESTIONS = 256


class FairLock:
    """A first-come, first-served lock. A plain Lock lets the thread that releases it take it straight back, so a
    question asked during a re-ingest could wait for the whole ingest; in turn, it waits for one batch at most."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def waiting(self) -> int:
        """Callers holding or waiting for the lock."""
        with self._turn:
            return self._next_ticket - self._serving

    def __enter__(self) -> None:
        with self._turn:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._turn.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *_: object) -> None:
        with self._turn:
            self._serving += 1
            self._turn.notify_all()


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


class Embedder:
    """Turns questions and passages into L2-normalised float32 vectors (cosine = inner product).

    Backends: "torch" runs the sentence-transformers model as it is; "onnx-int8" runs an int8 copy built
    from it on first use (faster; cosine with the float model ≥ 0.995 for passages, ≥ 0.986 for questions).
    Each backend's vectors are kept apart: the model id names the backend, so an index is only searched with the
    backend that built it.
    """

    def __init__(self, settings: Settings) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if settings.embedding_backend not in BACKENDS:
            raise KnowledgeBaseError(f"KB_EMBEDDING_BACKEND must be one of {', '.join(BACKENDS)}, "
                                     f"not {settings.embedding_backend!r}")
        ensure_model(settings)
        model_dir = settings.model_dir
        self.backend = settings.embedding_backend
        self.fingerprint = model_fingerprint(model_dir)
        self.model_id = settings.embedding_model
        self.batch_size = settings.embed_batch_size
        prompts = _read_json(model_dir / "config_sentence_transformers.json").get("prompts") or {}
        self._query_prompt = prompts.get("query", "")
        self._passage_prompt = prompts.get("passage", prompts.get("document", ""))
        max_tokens = int(_read_json(model_dir / "sentence_bert_config.json").get("max_seq_length") or 512)
        tuning = self._question_tuning(settings)
        if self.backend == "torch":
            self._encode_batch = self._load_torch(model_dir, settings.torch_threads, max_tokens)
        else:
            from kb.embedding.model.onnx_int8 import VECTORS_ID, OnnxInt8Encoder, build_onnx_int8, onnx_dir_for

            self.model_id = f"{settings.embedding_model}+{VECTORS_ID}"
            onnx_dir = build_onnx_int8(model_dir, onnx_dir_for(model_dir, self.fingerprint))
            encoder = OnnxInt8Encoder(model_dir, onnx_dir, settings.torch_threads, max_tokens)
            tokenizer = encoder.tokenizer  # the tuned question graph, if any, has the same vocabulary
            self._encode_batch = encoder.encode
        self._encode_query_batch = self._encode_batch
        #: Whether questions have a tuned encoder of their own (kb/embedding/model/tuning.py).
        self.tuned = False
        #: Names the question encoder: the ranker learnt over its cosines is kept under this name.
        self.query_fingerprint = self.fingerprint
        if tuning is not None:
            from kb.embedding.model.tuning import build_query_model, tuned_fingerprint

            self.query_fingerprint = tuned_fingerprint(self.fingerprint, tuning)
            self.tuned = True
            if self.backend == "torch":
                self._encode_query_batch = self._tuned_torch_encoder(tuning)
            else:
                from kb.embedding.model.onnx_int8 import OnnxInt8Encoder, build_onnx_int8, onnx_dir_for

                query_dir = build_query_model(model_dir, tuning)
                onnx_dir = build_onnx_int8(query_dir, onnx_dir_for(query_dir, self.query_fingerprint))
                self._encode_query_batch = OnnxInt8Encoder(query_dir, onnx_dir, settings.torch_threads,
                                                           max_tokens, tokenizer).encode
        self._lock = FairLock()  # one forward pass at a time: 2 cores gain nothing from more
        #: The vectors of recent questions: a follow-up searches its question and the one before it twice each
        #: (kb/search/conversation.py), and the previous question was often embedded when it was asked.
        self._recent: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.dimension = int(self._encode_batch(["维度"], 1).shape[1])

    def _question_tuning(self, settings: Settings) -> Path | None:
        """The tuning file for questions, or None: tuning off, another model, or a tuning learnt on another build
        of the model."""
        from kb.embedding.model.tuning import QUERY_LORA, lora_meta

        choice = settings.query_tuning
        if choice == "off" or settings.embedding_model != DEFAULT_MODEL_ID:
            return None
        tuning = QUERY_LORA if choice == "on" else Path(choice).expanduser()
        if not tuning.is_file():
            if choice == "on":
                return None
            raise KnowledgeBaseError(f"KB_QUERY_TUNING must be on, off or a tuning file; {choice!r} is none")
        base = lora_meta(tuning).get("base_fingerprint")
        if base != self.fingerprint:
            log.warning("the question tuning %s was learnt on model %s, not %s: questions are embedded untuned",
                        tuning.name, base, self.fingerprint)
            return None
        return tuning

    def _load_torch(self, model_dir: Path, threads: int, max_tokens: int) -> Callable[[Sequence[str], int], np.ndarray]:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on every start
        torch.set_num_threads(max(1, threads))
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        model.max_seq_length = max_tokens
        self._torch_model = model
        return self._torch_encoder(model)

    def _tuned_torch_encoder(self, tuning: Path) -> Callable[[Sequence[str], int], np.ndarray]:
        """The question encoder: the passage model with copies of its tuned layers (updates merged) swapped in
        for the forward pass. The swap happens under the embedder's lock, like every forward pass; only the
        tuned layers are held twice (~30 MB), the embeddings and the other layers are the model's own."""
        import copy

        import torch

        from kb.embedding.model.tuning import merged, read_lora, tuned_layers

        # The transformer inside the first module (a BERT-like model): its encoder holds the stack of layers.
        encoder = self._torch_model.get_submodule("0.auto_model.encoder")
        plain = encoder.get_submodule("layer")
        if not isinstance(plain, torch.nn.ModuleList):  # sliced and copied below
            raise KnowledgeBaseError(f"the question tuning needs the model's layers as a list, not {type(plain)}")
        updates = read_lora(tuning)[0]
        first = tuned_layers(updates)[0]
        tuned = torch.nn.ModuleList([*plain[:first], *(copy.deepcopy(layer) for layer in plain[first:])])
        with torch.no_grad():
            for name, update in updates.items():
                layer, target = name.removeprefix("encoder.layer.").split(".", 1)
                weight = tuned[int(layer)].get_submodule(target).weight
                if not isinstance(weight, torch.Tensor):  # a tuning updates projections, which hold a weight
                    raise KnowledgeBaseError(f"the question tuning updates {name}, which has no weight")
                weight.copy_(torch.from_numpy(merged(weight.numpy(), update)))
        self._tuned_layers = tuned
        encode = self._torch_encoder(self._torch_model)

        def encode_tuned(texts: Sequence[str], batch_size: int) -> np.ndarray:
            encoder.layer = tuned
            try:
                return encode(texts, batch_size)
            finally:
                encoder.layer = plain

        return encode_tuned

    @staticmethod
    def _torch_encoder(model) -> Callable[[Sequence[str], int], np.ndarray]:
        def encode(texts: Sequence[str], batch_size: int) -> np.ndarray:
            return model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)

        return encode

    def _encode(self, texts: Sequence[str], prompt: str,
                encode_batch: Callable[[Sequence[str], int], np.ndarray]) -> np.ndarray:
        """The lock is taken per batch, not per call: a question asked during a re-ingest waits for one batch
        of passages (a fraction of a second), not for the whole block."""
        prompted = [prompt + t for t in texts]
        parts = []
        for start in range(0, len(prompted), self.batch_size):
            with self._lock:
                parts.append(encode_batch(prompted[start:start + self.batch_size], self.batch_size))
        if not parts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32).reshape(len(texts), -1)

    def encode_queries(self, queries: Sequence[str], tuned: bool = True) -> np.ndarray:
        """Questions, with the tuned question encoder where there is one (`tuned`), else with the model as built:
        its cosines keep their meaning across questions (how close the nearest passage is), the tuned ones
        rank better but are only comparable within one question."""
        encode = self._encode_query_batch if tuned else self._encode_batch
        return self._encode(queries, self._query_prompt, encode)

    def encode_question(self, question: str) -> tuple[np.ndarray, np.ndarray]:
        """One question's vector with the model as built and with the tuned encoder (the same vector where there
        is none), in one turn of the lock: a question waits for at most one batch of a re-ingest. Read-only
        arrays: recent questions' vectors are kept and shared."""
        prompted = [self._query_prompt + question]
        with self._lock:
            if (recent := self._recent.get(question)) is not None:
                self._recent.move_to_end(question)
                return recent
            plain = self._encode_batch(prompted, 1)
            tuned = self._encode_query_batch(prompted, 1) if self.tuned else plain
            vectors = (np.array(plain[0], dtype=np.float32), np.array(tuned[0], dtype=np.float32))
            for vector in vectors:
                vector.flags.writeable = False
            self._recent[question] = vectors
            if len(self._recent) > RECENT_QUESTIONS:
                self._recent.popitem(last=False)
        return vectors

    def forget_recent_questions(self) -> None:
        """Drop the kept vectors of recent questions, so that the next search of any question embeds it again
        (a benchmark timing whole searches of questions it has asked before)."""
        with self._lock:
            self._recent.clear()

    def encode_passages(self, passages: Sequence[str]) -> np.ndarray:
        return self._encode(passages, self._passage_prompt, self._encode_batch)
