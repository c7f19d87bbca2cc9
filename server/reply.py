"""An answer as one plain text with its sources listed, for chat windows (OpenAI-compatible clients) and WeChat."""

from __future__ import annotations


def reply_text(answer: dict) -> str:
    """The answer object (as the API returns it) → text with a 参考依据 list of its citations and their dates."""
    if not answer["citations"]:
        return answer["answer"]
    sources = [f"[{c['n']}] {c['citation']}" + (f"（{c['doc_date']}）" if c["doc_date"] else "")
               for c in answer["citations"]]
    return answer["answer"] + "\n\n参考依据：\n" + "\n".join(sources)
