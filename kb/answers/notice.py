"""What every answer says about itself: where it comes from, what this service is not, and where a person helps.

A citizen reading an answer on a phone must know that it was selected automatically (or, in the optional
generative mode, written by a language model) from the knowledge base, that the original text prevails, that
the service does not accept 信访 or complaints, and whom to call: 12348 always, the township's own public legal
service (its knowledge base's identity, kb.config.Identity), and, first, 110 and the help line for the kind of
danger when the question speaks of one (kb/answers/safety.py decides which, from the question's meaning).

A question the knowledge base cannot answer gets `no_answer`, in the same township's words: what its knowledge
base holds, and where else to ask.
"""

from __future__ import annotations

from kb.answers.safety import Danger
from kb.config import Identity

EXTRACTIVE = "以上内容由系统从知识库原文中自动摘录，仅供参考，以法律法规原文为准。"
GENERATIVE = "以上回答由人工智能（大语言模型）根据知识库原文生成，可能有误，仅供参考，以所引法律法规原文为准。"
NOT_A_CHANNEL = "本服务不受理信访和投诉。"
#: First whenever a question speaks of danger: it is the whole line for violence and threats, and the chat page
#: marks a notice that starts with it as urgent (server/web/app.js).
DANGER_NOW = "如正面临暴力或人身危险，请立即拨打110报警。"
#: Who else helps, by kind of danger, after DANGER_NOW.
HELP_LINES: dict[Danger, str] = {
    Danger.DOMESTIC: "遭受家庭暴力，可拨打12338妇联热线求助。",
    Danger.CHILD: "孩子被打、被虐待或被欺负，可拨打12355青少年服务台求助。",
    Danger.SELF_HARM: "心里难受、想不开时，请拨打12356心理援助热线，有人听您说；有人受伤请拨打120。",
    Danger.ELDER: "老人被打骂、虐待或没人照管，可找村委会，或拨打12345热线反映。",
}


def danger_lines(danger: Danger | None) -> str:
    """What to call, for the kind of danger a question speaks of ('' for none)."""
    if danger is None:
        return ""
    return DANGER_NOW + HELP_LINES.get(danger, "")


def help_line(identity: Identity) -> str:
    """「如需帮助：12348 公共法律服务热线 / 镇公共法律服务站（电话…，地址…，时间…）」"""
    details = "，".join(part for part in (
        f"电话 {identity.help_phone}" if identity.help_phone else "",
        f"地址 {identity.help_address}" if identity.help_address else "",
        identity.help_hours) if part)
    return f"如需帮助：12348 公共法律服务热线 / {station_name(identity)}" + (f"（{details}）" if details else "") + "。"


def station_name(identity: Identity) -> str:
    """The station's name with its township: 「镇公共法律服务站」 → 「雁石坪镇公共法律服务站」."""
    name = identity.help_name.removeprefix("镇")
    return name if name.startswith(identity.township) else identity.township + name


def notice(mode: str, identity: Identity, danger: Danger | None = None) -> str:
    """The notice shown with an answer on every channel; where to call first when the question speaks of danger."""
    source = GENERATIVE if mode == "generative" else EXTRACTIVE
    return danger_lines(danger) + source + NOT_A_CHANNEL + help_line(identity)


def no_answer(identity: Identity) -> str:
    """The refusal: what this township's knowledge base holds, and where else its citizens can ask."""
    return (f"抱歉，知识库中没有找到能回答这个问题的内容。本知识库收录{identity.collection}；其他问题请咨询"
            f"{station_name(identity)}、拨打12348公共法律服务热线，或向{identity.township}有关部门咨询。")
