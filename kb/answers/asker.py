"""One question, from its reading to its answer: the sequence every channel's question goes through.

1. read the question in its conversation (kb/search/conversation.py): on its own, or as a follow-up of the
   question before it, each text searched once (Retrievals);
2. answer that reading — or the other reading, when only that one can be answered (a clear new question is
   never refused because of the one before it);
3. when the first citation may be wrong, the other candidates (related.py); the notice, with help lines when
   the question speaks of danger (notice.py, safety.py). The notice and the no-answer message speak for the
   knowledge base's township (its identity as it stands: an ingest elsewhere may have changed it).

The asker's name, address and numbers, in the question or in the history, change neither the passages nor the
decision (kb/text/personal.py); the answer's `question` is still the one typed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from kb.answers.answer import Answer, answer, confidence
from kb.answers.answerable import AnswerModel
from kb.answers.notice import no_answer, notice
from kb.answers.related import related_passages
from kb.answers.safety import SafetyCheck
from kb.config import AnswerParams, FollowUpParams, GeneratorConfig, Identity
from kb.schema import Hit
from kb.search.conversation import ConversationReader, InContext, earlier_questions, follow_up_gate, follow_up_ranker
from kb.search.retrieve import Retrieval, Retriever
from kb.stores.base import Filters
from kb.text.personal import without_personal_details


class Asker:
    """Owns the ask sequence for one store and model; holds no per-question state, so threads may share it."""

    def __init__(self, retriever: Retriever, answer_model: AnswerModel, params: AnswerParams,
                 generator: GeneratorConfig | None, default_identity: Identity, safety: SafetyCheck) -> None:
        self.retriever, self.store = retriever, retriever.store
        self.answer_model, self.params, self.generator = answer_model, params, generator
        self.default_identity, self.safety = default_identity, safety
        self.reader = ConversationReader(retriever, FollowUpParams(), follow_up_ranker(), follow_up_gate(),
                                         self.confidence)

    @property
    def identity(self) -> Identity:
        """The knowledge base's own identity (stored with it at ingest), the deployment's for what it does not set."""
        return self.default_identity.with_own(self.store.manifest.get("identity", {}))

    def ask(self, question: str, filters: Filters, passages: int | None = None,
            history: Sequence[str] = ()) -> Answer:
        started = time.perf_counter()
        identity = self.identity
        typed = question
        question = without_personal_details(question) if isinstance(question, str) else question
        history = [without_personal_details(earlier) for earlier in earlier_questions(history)]
        params = self.params
        cited = passages or params.passages
        found = self.reader.read(question, history, cited + params.related_passages, filters)
        result, hits = self.answer_reading(question, found, cited, no_answer(identity))
        result.question = typed.strip()
        result.related_passages = related_passages(
            result.answerable, found.retrieval.cited_article, [c.hit for c in result.citations], hits,
            result.follow_up_of is not None, params.related_margin, params.related_passages)
        result.notice = notice(result.mode, identity, self.safety.danger(question))
        result.took_ms = round((time.perf_counter() - started) * 1000, 1)
        return result

    def answer_reading(self, question: str, found: InContext, passages: int,
                       refusal: str) -> tuple[Answer, list[Hit]]:
        """The answer from the first `passages` hits of a reading (or of the other reading, when only that one
        can be answered), and all the hits of the reading it came from; `refusal` when neither answers."""
        result = answer(question, replace(found.retrieval, hits=found.retrieval.hits[:passages]), self.store.idf,
                        self.params, refusal, self.generator, found.follow_up_of, self.store.mentions,
                        self.answer_model)
        if not result.answerable and found.otherwise is not None:  # this reading failed: try the other
            other, hits = self.answer_reading(question, found.otherwise, passages, refusal)
            if other.answerable:
                return other, hits
        return result, found.retrieval.hits

    def confidence(self, question: str, retrieval: Retrieval) -> float:
        """As the answer stage would weigh `retrieval`: by the passages it answers from."""
        answering = replace(retrieval, hits=retrieval.hits[: self.params.passages])
        return confidence(question, answering, self.store.idf, self.answer_model)
