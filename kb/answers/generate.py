"""Generative answers (optional): an OpenAI-compatible chat model rewrites the retrieved passages in plain words.

Off unless an endpoint is configured. The model sees only the numbered passages and must cite them [n]; an
answer that cites nothing, or cites a passage it was not given, is refused with GenerationFailed so the caller
falls back to the extractive answer rather than show an unsupported claim.
"""

from __future__ import annotations

import re

import httpx

from kb.config import GeneratorConfig
from kb.schema import Hit

#: One marker group as models write it: [1], ［1］, [1,2], [1，2], [1、2] (digits half- or full-width).
_MARKER_RE = re.compile(r"[\[［]\s*([0-9０-９]+(?:\s*[,，、]\s*[0-9０-９]+)*)\s*[\]］]")
_SEPARATOR_RE = re.compile(r"\s*[,，、]\s*")

SYSTEM_PROMPT = (
    "你是镇政府政务知识库的问答助手，为群众解答问题。"
    "只能依据用户给出的编号资料回答，不得使用资料以外的知识，不得编造。"
    "每一句陈述后都要用 [n] 标注依据的资料编号，n 是资料前面的编号，例如 [1] 或 [1][2]。"
    "如果资料不能回答这个问题，只回答：资料中没有相关规定。"
    "回答要简短、通俗，让群众一看就懂。"
)


class GenerationFailed(Exception):
    """Why the generated answer was not used (the caller falls back to extractive)."""


def build_messages(question: str, hits: list[Hit]) -> list[dict]:
    """The chat: rules in the system prompt; the passages numbered [1]..[k] with their citations, then the question."""
    passages = "\n\n".join(f"[{n}] {hit.citation}\n{hit.text.strip()}" for n, hit in enumerate(hits, 1))
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"资料：\n\n{passages}\n\n问题：{question.strip()}"},
    ]


def _normalise_markers(text: str) -> tuple[str, list[int]]:
    """Every marker group rewritten as [1][2]; the numbers cited, in order of first use."""
    cited: list[int] = []

    def expand(match: re.Match[str]) -> str:
        numbers = [int(n) for n in _SEPARATOR_RE.split(match.group(1))]  # int() reads full-width digits too
        cited.extend(n for n in numbers if n not in cited)
        return "".join(f"[{n}]" for n in numbers)

    return _MARKER_RE.sub(expand, text), cited


def _content(response: httpx.Response) -> str:
    """The first choice's message text, or GenerationFailed saying what was wrong with the reply."""
    if response.status_code != 200:
        raise GenerationFailed(f"HTTP {response.status_code} from the chat endpoint: {response.text[:200]}")
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except ValueError as exc:
        raise GenerationFailed(f"the chat endpoint did not return JSON: {response.text[:200]!r}") from exc
    except (KeyError, IndexError, TypeError) as exc:
        raise GenerationFailed(f"unexpected reply shape (no choices[0].message.content): {exc!r}") from exc
    if not isinstance(content, str) or not content.strip():
        raise GenerationFailed("the model returned an empty answer")
    return content.strip()


def chat_completion(messages: list[dict], config: GeneratorConfig, temperature: float = 0.0) -> str:
    """POST {base_url}/chat/completions (non-streaming) and return the reply's text, or GenerationFailed on a
    timeout, a connection error, a non-200 reply, a malformed one, or empty content."""
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    payload = {"model": config.model, "messages": messages, "max_tokens": config.max_tokens,
               "temperature": temperature, "stream": False}
    url = f"{config.base_url.rstrip('/')}/chat/completions"
    try:
        response = httpx.post(url, json=payload, headers=headers, timeout=config.timeout_s)
    except httpx.TimeoutException as exc:
        raise GenerationFailed(f"the chat endpoint did not answer within {config.timeout_s} s") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise GenerationFailed(f"cannot reach the chat endpoint {url}: {exc}") from exc
    return _content(response)


def generate_answer(question: str, hits: list[Hit], config: GeneratorConfig) -> tuple[str, list[int]]:
    """The answer's text and the cited passage numbers in order of first use. Raise GenerationFailed as
    chat_completion does, and when no [n] marker cites a passage or one cites a number outside 1..len(hits)."""
    if not hits:
        raise GenerationFailed("no passages to answer from")
    # temperature 0: restating the law, not writing prose: the most likely wording is the safest
    text, cited = _normalise_markers(chat_completion(build_messages(question, hits), config))
    if not cited:
        raise GenerationFailed(f"the answer cites no passage: {text[:80]!r}")
    unknown = [n for n in cited if not 1 <= n <= len(hits)]
    if unknown:
        raise GenerationFailed(f"the answer cites passage(s) {unknown} but only 1..{len(hits)} were given")
    return text, cited
