"""An answer as one plain text with its sources listed, for chat windows (OpenAI-compatible clients) and WeChat."""

from __future__ import annotations

from kb.search.conversation import FOLLOW_UP_NOTE


def reply_text(answer: dict) -> str:
    """The answer object (as the API returns it) → text (saying which earlier question a follow-up was read
    with) with a 参考依据 list of its citations and their dates, then the other articles that may be the right
    ones (when the answer is unsure, so the reader can look them up), and the notice (where the answer comes
    from, where a person can help) last, as on the chat page."""
    text = answer["answer"]
    if answer.get("follow_up_of") and answer["answerable"]:
        text = f"（{FOLLOW_UP_NOTE.format(answer['follow_up_of'])}）\n{text}"
    if answer["citations"]:
        sources = [f"[{c['n']}] {c['citation']}" + (f"（{c['doc_date']}）" if c["doc_date"] else "")
                   for c in answer["citations"]]
        heading = "参考依据" if answer.get("answerable", True) else "相关内容（不是对您问题的直接回答）"
        text += f"\n\n{heading}：\n" + "\n".join(sources)
    if answer.get("related_passages"):
        others = [f"{p['citation']}：{p['first_line']}" if p["first_line"] else p["citation"]
                  for p in answer["related_passages"]]
        text += "\n\n其他可能相关的条文：\n" + "\n".join(others)
    notice = answer.get("notice")
    return f"{text}\n\n【提示】{notice}" if notice else text
