"""Everyday words → the legal terms statutes use, so 「老公借的钱」 also looks for 夫妻 and 债务.

Citizens ask in plain words; laws are written in terms of art. The lexical retriever cannot bridge that gap
on its own, so the question is expanded with the terms below before BM25 scoring. The list is general
legal vocabulary, not tuned to particular questions.
"""

from __future__ import annotations

EVERYDAY_TO_LEGAL: dict[str, str] = {
    # family
    "老公": "丈夫 夫妻", "老婆": "妻子 夫妻", "媳妇": "妻子 夫妻", "两口子": "夫妻", "丈夫": "夫妻", "妻子": "夫妻",
    "孩子": "子女 未成年人", "小孩": "子女 未成年人", "儿子": "子女", "女儿": "子女", "娃": "子女",
    "爸妈": "父母", "爸爸": "父母", "妈妈": "父母", "爷爷": "祖父母", "奶奶": "祖父母",
    "老人": "老年人 赡养", "养老": "赡养", "分家产": "遗产 继承", "家产": "遗产", "去世": "死亡 继承",
    "死了": "死亡", "亲手写": "自书 亲笔书写", "自己写": "自书 亲笔书写", "打老婆": "家庭暴力", "家暴": "家庭暴力",
    "离婚": "离婚 婚姻", "结婚": "结婚 婚姻", "生孩子": "生育",
    # money and property
    "借钱": "借款 债务", "借的钱": "借款 债务", "欠钱": "债务 借款", "还钱": "偿还 债务", "赔钱": "赔偿",
    "房子": "房屋", "买房": "购买 房屋", "租给": "出租 租赁 流转", "租出去": "出租 租赁 流转", "租房": "租赁 房屋",
    "工资": "劳动报酬 工资", "老板": "用人单位", "打工": "劳动者", "开除": "解除 劳动合同", "辞退": "解除 劳动合同",
    # consumers
    "买东西": "消费者 购买 商品", "商家": "经营者", "卖家": "经营者", "店家": "经营者", "假货": "假冒 欺诈",
    # wrongdoing and penalties
    "打人": "殴打 伤害", "打架": "斗殴 殴打", "骂人": "侮辱", "偷东西": "盗窃", "偷": "盗窃", "骗钱": "诈骗",
    "喝醉": "醉酒", "闹事": "扰乱 秩序", "罚钱": "罚款", "坐牢": "拘留 刑罚", "抓起来": "拘留",
    # authorities and remedies
    "警察": "公安机关", "派出所": "公安机关", "法院": "人民法院", "打官司": "诉讼 起诉", "告状": "起诉 控告",
    "告他": "起诉", "政府": "行政机关 人民政府", "当官的": "国家工作人员", "村里": "村民委员会 村",
    "村委会": "村民委员会", "居委会": "居民委员会", "上访": "信访", "反映问题": "信访", "举报": "检举 控告",
    "请不起律师": "法律援助", "没钱请律师": "法律援助", "网上": "互联网 网络", "不服": "复议 诉讼",
    "查信息": "政府信息公开", "公开信息": "政府信息公开",
}

_BY_LENGTH = sorted(EVERYDAY_TO_LEGAL, key=len, reverse=True)


def legal_terms(question: str) -> list[str]:
    """The legal terms the question's everyday words stand for (longest phrase first, no repeats)."""
    remaining, terms = question, []
    for phrase in _BY_LENGTH:
        if phrase in remaining:
            remaining = remaining.replace(phrase, "\0")
            terms += [t for t in EVERYDAY_TO_LEGAL[phrase].split() if t not in terms]
    return terms


def expand_query(question: str) -> str:
    """The question followed by its legal terms, for the lexical retriever."""
    terms = legal_terms(question)
    return f"{question} {' '.join(terms)}" if terms else question
