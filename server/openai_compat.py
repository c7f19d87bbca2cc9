"""An OpenAI-compatible chat endpoint, so existing chat clients and bot frameworks can use the knowledge base.

The last user message is the question; the reply is the cited answer with its sources listed. With
`stream: true` the reply arrives as server-sent events in OpenAI's chunk format. The model `zhengwu-kb` is this
service's knowledge base; with KB_STORE=milvus, `zhengwu-kb/<name>` is the knowledge base of that name (one
deployment for many townships), and /v1/models lists them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import Field

from kb.search.conversation import MAX_HISTORY
from server.api import StrictModel, admitted, client_key, state
from server.errors import ApiError
from server.reply import reply_text
from server.service import ServiceState

MODEL_ID = "zhengwu-kb"
STREAM_PIECE_CHARS = 16


class ChatMessage(StrictModel):
    role: str = Field(..., max_length=32)
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(StrictModel):
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=200)
    stream: bool = False


def _text_of(message: ChatMessage) -> str:
    if isinstance(message.content, list):  # [{"type": "text", "text": "..."}, ...]
        # a part's text that is not a string (null, a number) is no text, not the word "None"
        return "".join(part["text"] for part in message.content
                       if part.get("type") == "text" and isinstance(part.get("text"), str))
    return message.content or ""


def _knowledge_base(model: str) -> str | None:
    """The knowledge base a model name selects (`zhengwu-kb/<name>`), or None for this service's own."""
    if model.startswith(MODEL_ID + "/"):
        return model[len(MODEL_ID) + 1:]
    return None


def _chunk(completion_id: str, created: int, model: str, delta: dict, finish: str | None = None) -> str:
    payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _stream(completion_id: str, created: int, model: str, text: str) -> Iterator[str]:
    yield _chunk(completion_id, created, model, {"role": "assistant"})
    for i in range(0, len(text), STREAM_PIECE_CHARS):
        yield _chunk(completion_id, created, model, {"content": text[i : i + STREAM_PIECE_CHARS]})
    yield _chunk(completion_id, created, model, {}, "stop")
    yield "data: [DONE]\n\n"


def create_openai_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai-compatible"])

    @router.get("/models")
    def models(service: ServiceState = Depends(state)) -> dict:
        """OpenAI-compatible: the model list, for chat clients (one per knowledge base of a Milvus store)"""
        names = [MODEL_ID] + [f"{MODEL_ID}/{name}" for name in service.knowledge_base_names()
                              if name != service.settings.kb_name]
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": MODEL_ID}
                                           for name in names]}

    @router.post("/chat/completions")
    async def chat(body: ChatRequest, request: Request, service: ServiceState = Depends(state)):
        """OpenAI-compatible chat (also `stream: true`), for chat clients and bot frameworks"""
        user_messages = [m for m in body.messages if m.role == "user"]
        if not user_messages:
            raise ApiError(400, "no_user_message", "消息中没有用户的问题")
        # The earlier user messages are the conversation: a follow-up is read with them.
        # Earlier messages too long to be questions are left out rather than refused.
        limit = service.config.max_question_chars
        history = [t for t in (_text_of(m) for m in user_messages[:-1]) if len(t.strip()) <= limit][-MAX_HISTORY:]
        kb_name = _knowledge_base(body.model)
        question = service.admit(_text_of(user_messages[-1]), client_key(request), history=history)
        answer = await admitted(request, lambda: service.answer(question, "openai", kb_name=kb_name))
        model = f"{MODEL_ID}/{kb_name}" if kb_name else MODEL_ID
        text = reply_text(answer)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            return StreamingResponse(_stream(completion_id, created, model, text),
                                     media_type="text/event-stream")
        return {
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }

    return router
