"""What every answer says about itself: where it comes from, what this service is not, and where a person helps.

A citizen reading an answer on a phone must know that it was selected automatically (or, in the optional
generative mode, written by a language model) from the knowledge base, that the original text prevails, that
the service does not accept 信访 or complaints, and whom to call: 12348 always, the township's own public legal
service as configured (kb.config.ContactSettings), and 110 / 12338 when the question speaks of violence or danger.
"""

from __future__ import annotations

import re

from kb.config import ContactSettings

#: Words of a question that speak of violence or danger to the asker.
DANGER_RE = re.compile(r"打我|打人|被打|殴打|家暴|家庭暴力|虐待|威胁|恐吓|跟踪我|自杀|轻生|想死|不想活|跳楼|杀人|杀了我|要杀|"
                       r"伤害我|性侵|强奸|拐卖")
EXTRACTIVE = "以上内容由系统从知识库原文中自动摘录，仅供参考，以法律法规原文为准。"
GENERATIVE = "以上回答由人工智能（大语言模型）根据知识库原文生成，可能有误，仅供参考，以所引法律法规原文为准。"
NOT_A_CHANNEL = "本服务不受理信访和投诉。"
EMERGENCY = "如正面临暴力或人身危险，请立即拨打110报警；妇女儿童维权可拨打12338妇联热线。"


def in_danger(question: str) -> bool:
    return bool(DANGER_RE.search(question))


def help_line(contacts: ContactSettings) -> str:
    """「如需帮助：12348 公共法律服务热线 / 镇公共法律服务站（电话…，地址…，时间…）」"""
    details = "，".join(part for part in (
        f"电话 {contacts.service_phone}" if contacts.service_phone else "",
        f"地址 {contacts.service_address}" if contacts.service_address else "",
        contacts.service_hours) if part)
    name = contacts.service_name.removeprefix("镇")  # 「镇公共法律服务站」 → 「雁石坪镇公共法律服务站」
    if not name.startswith(contacts.township):
        name = contacts.township + name
    return f"如需帮助：12348 公共法律服务热线 / {name}" + (f"（{details}）" if details else "") + "。"


def notice(question: str, mode: str, contacts: ContactSettings) -> str:
    """The notice shown with an answer on every channel."""
    source = GENERATIVE if mode == "generative" else EXTRACTIVE
    text = source + NOT_A_CHANNEL + help_line(contacts)
    return EMERGENCY + text if in_danger(question) else text
