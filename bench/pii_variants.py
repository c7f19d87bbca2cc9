"""The personal numbers the question log must never hold, in every spelling a citizen may type, and the numbers of
government texts that must come through untouched: the corpus tests/test_masking.py checks kb/text/personal.py on.

    python -m bench.pii_variants

Writes bench/data/pii/pii_variants.jsonl (deterministic: seeded), one line per text:
{"text": a sentence, "kind": mobile | id_card | bank_card | landline | email | none, "digits": the number's digits
as ASCII (with X for a 身份证号's check digit; "" for emails and "none"), "form": how it is written}.
Each of mobile, 身份证号, bank card and landline with every separator, in full-width forms, and (all but the
landline, which grammar reads only in digits) in Chinese numerals, at the start, in the middle and at the end of a
sentence, next to Chinese characters. It is kept out of bench/data/*.jsonl, whose questions hold no personal data.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from kb.config import PROJECT_ROOT

OUT = PROJECT_ROOT / "bench" / "data" / "pii" / "pii_variants.jsonl"
SEED = 20240515

#: Every separator someone may type between the groups of a number, as it is typed (some twice, or around a dash).
SEPARATORS = (" ", "\u3000", "\u00a0", "-", "—", "–", "‐", "‑", "−", "﹣", "－", "*", "＊", "/", "／", "·", "・", "･",
              "、", ".", "．", "_", "＿", " - ", "——", "  ")
FULL_WIDTH_DIGITS = "０１２３４５６７８９"
NUMERALS = ("〇一二三四五六七八九", "零一二三四五六七八九", "零幺二三四五六七八九", "零壹贰叁肆伍陆柒捌玖")

#: How each kind is grouped when written with separators: the usual ways, and digit by digit.
GROUPINGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "mobile": ((3, 4, 4), (3, 8), (1,) * 11),
    "id_card": ((6, 8, 4), (6, 4, 4, 4), (18,)),
    "bank_card": ((4, 4, 4, 4), (4, 4, 4, 4, 3), (6, 13), (4, 4, 4, 4, 2), (4, 4, 4, 5)),
    "landline": ((4, 8), (3, 8), (4, 4, 4), (4, 7)),
}
#: Sentences with the number at the start, inside and at the end, next to Chinese characters or punctuation.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "mobile": ("我的电话是{}，请回电", "{}是我的手机号", "有事请打{}", "手机{}一直打不通怎么办", "请联系我：{}",
               "号码{}两个月没人接"),
    "id_card": ("身份证号{}丢了怎么补办", "{}是我的身份证号码", "我的身份证是{}", "本人身份证{}一直办不了社保",
                "公民身份号码：{}。"),
    "bank_card": ("工资卡{}没收到钱", "{}这张卡被冻结了", "请把补贴打到{}", "银行卡号：{}，开户行农业银行",
                  "卡号{}一直转不进钱"),
    "landline": ("办公室电话{}", "{}是村委会的电话", "请致电{}咨询", "联系方式：{}。"),
}
EMAILS = ("我的邮箱是wangjg@163.com，请回复", "zhang_san@example.gov.cn是我的邮箱", "发到ｌｉｓｉ＠ｑｑ．ｃｏｍ就行",
          "邮箱zhangsan@example。com", "材料发13800138000@qq.com了")

#: Numbers of government texts and ordinary speech, each beside separators or numerals the grammar reads.
MUST_STAY = (
    "会议于2024-01-15召开，2023-12-31截止。", "2024.01.15提交，2024.1.5受理", "2024/01/15到期", "见民法典第1079条",
    "依照第1079条、第1260条的规定", "第一千零七十九条", "第一百二十三条规定的期限", "全市财政收入为13500000000元",
    "预算总额15000000000 元", "项目总投资13500000000元", "利率为1.3800138000", "比例为0.13800138000",
    "合计135.12345678元", "利率3.5%，期限2.5年", "圆周率约为3.1415926", "1949年至2024年", "二〇二四年一月十五日",
    "一九四九年十月一日", "三四个人一起去", "一二年就办完了", "我们一两个人去不了", "十一二岁的孩子",
    "一五一十地说清楚", "三三两两地来了", "赔偿8万元合理吗", "借了5000元还不上", "工资13000元要交多少税",
    "每人每月30000元", "上午10:30到下午5:00办公", "时间2024-01-15 13:00", "版本号158.1234.5678.9",
    "服务器地址192.168.1.100", "内网172.16.100.12不通", "软件升级到v2.3.15", "请拨打12345政务服务便民热线",
    "请拨打12348咨询", "邮政编码518000", "文号为国办发〔2024〕15号", "2019-2024年累计新增就业人口120000人",
    "第1、3、5、7、9、11、13、15条", "2018、2019、2020、2021年的账", "宪法修正案 1988/1993/1999/2004/2018",
    "编号12345678901234567890", "统一社会信用代码91440300MA5DC8XXXX", "电话号码格式为1XX XXXX XXXX",
    "全年1,380,013,800元", "第13、14、15、16、17、18条", "2024年1月1日起施行", "面积120.5平方米",
    "一、二、三、四、五、六、七、八、九项", "138****8000", "共计3 000 000元",
)


def luhn_completed(body: str) -> str:
    """`body` with the Luhn check digit a bank card ends in."""
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char) * (1 if position % 2 else 2)
        total += value - 9 if value > 9 else value
    return body + str(-total % 10)


def id_check_digit(body: str) -> str:
    """The check digit of a 身份证号's first 17 digits (ISO 7064 MOD 11-2)."""
    total = sum(int(char) * (2 ** (17 - position) % 11) for position, char in enumerate(body))
    return "10X98765432"[total % 11]


def mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}" + "".join(rng.choices("0123456789", k=9))


def id_card(rng: random.Random, old: bool = False) -> str:
    region = rng.choice(("110105", "440301", "310104", "632801", "510107", "630102"))
    birth = f"{rng.randint(1930, 2012)}{rng.randint(1, 12):02}{rng.randint(1, 28):02}"
    sequence = f"{rng.randint(0, 999):03}"
    if old:
        return region + birth[2:] + sequence
    return region + birth + sequence + id_check_digit(region + birth + sequence)


def bank_card(rng: random.Random, length: int) -> str:
    bin_ = rng.choice(("622202", "621700", "622848", "436742", "625965", "622588"))
    return luhn_completed(bin_ + "".join(rng.choices("0123456789", k=length - 7)))


def landline(rng: random.Random, grouping: tuple[int, ...]) -> str:
    area = {3: rng.choice(("010", "021", "022", "023")), 4: rng.choice(("0755", "0979", "0571", "0851"))}
    number_length = sum(grouping[1:])
    return area[grouping[0]] + str(rng.randint(2, 9)) + "".join(rng.choices("0123456789", k=number_length - 1))


def number(rng: random.Random, kind: str, grouping: tuple[int, ...]) -> str:
    """A number of this kind as long as the grouping."""
    if kind == "landline":
        return landline(rng, grouping)
    if kind == "bank_card":
        return bank_card(rng, sum(grouping))
    return mobile(rng) if kind == "mobile" else id_card(rng)


def grouped(digits: str, grouping: tuple[int, ...], separator: str) -> str:
    """`digits` in groups of these sizes, joined by `separator`."""
    starts = [sum(grouping[:index]) for index in range(len(grouping) + 1)]
    return separator.join(digits[start:end] for start, end in zip(starts, starts[1:]))


def in_numerals(text: str, numerals: str) -> str:
    return "".join(numerals[int(char)] if char.isdigit() else char for char in text)


def full_width(text: str) -> str:
    return "".join(FULL_WIDTH_DIGITS[int(char)] if char.isdigit() else char for char in text)


def variants(rng: random.Random) -> Iterator[dict[str, str]]:
    """Every kind with every separator, then full-width, Chinese-numeral, prefixed and contiguous forms."""
    for kind, groupings in GROUPINGS.items():
        templates = TEMPLATES[kind]
        for index, separator in enumerate(SEPARATORS):
            grouping = groupings[index % len(groupings)]
            if len(grouping) == 1 or (kind == "mobile" and separator in ".．"):
                grouping = groupings[0]  # one group has no separator; one dot in a mobile is a decimal point
            digits = number(rng, kind, grouping)
            yield {"text": templates[index % len(templates)].format(grouped(digits, grouping, separator)),
                   "kind": kind, "digits": digits, "form": f"separator {separator!r}"}
        for separator in ("", "－", "\u3000", "．", "＊", "／", "＿"):
            grouping = groupings[1] if kind == "landline" else groupings[0]
            digits = number(rng, kind, grouping)
            written = full_width(grouped(digits, grouping, separator))
            yield {"text": rng.choice(templates).format(written), "kind": kind, "digits": digits,
                   "form": f"full-width {separator!r}"}
        for grouping in groupings:
            digits = number(rng, kind, grouping)
            yield {"text": rng.choice(templates).format(grouped(digits, grouping, "")), "kind": kind,
                   "digits": digits, "form": "contiguous"}
        if kind == "landline":
            continue  # read only in digits
        for numerals in NUMERALS:
            for separator in ("", " ", "、", "-"):
                grouping = groupings[0]
                digits = number(rng, kind, grouping)
                written = in_numerals(grouped(digits, grouping, separator), numerals)
                yield {"text": rng.choice(templates).format(written), "kind": kind, "digits": digits,
                       "form": f"numerals {numerals[:2]} {separator!r}"}
    for prefix in ("+86", "+86 ", "86", "0086 ", "+86-", "＋８６　"):
        digits = mobile(rng)
        yield {"text": rng.choice(TEMPLATES["mobile"]).format(prefix + grouped(digits, (3, 4, 4), " ")),
               "kind": "mobile", "digits": digits, "form": f"prefix {prefix!r}"}
    for extension in ("转123", "-8021", "ext.12"):
        digits = landline(rng, (4, 8))
        yield {"text": f"办公室电话{grouped(digits, (4, 8), '-')}{extension}，工作日接听", "kind": "landline",
               "digits": digits, "form": f"extension {extension!r}"}
    for area in ("(0755)", "（0979）", "（０２１）"):
        digits = landline(rng, (4, 8))[4:]
        yield {"text": f"请致电{area}{digits}咨询", "kind": "landline", "digits": digits, "form": "bracketed area"}
    for digits, grouping in ((id_card(rng, old=True), (6, 6, 3)), (id_card(rng, old=True), (15,))):
        yield {"text": f"老身份证{grouped(digits, grouping, ' ')}还能用吗", "kind": "id_card", "digits": digits,
               "form": "15-digit"}
    for text in EMAILS:
        yield {"text": text, "kind": "email", "digits": "", "form": "email"}
    for text in MUST_STAY:
        yield {"text": text, "kind": "none", "digits": "", "form": "must stay"}


def main() -> None:
    rows = list(variants(random.Random(SEED)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
    print(f"{OUT.relative_to(PROJECT_ROOT)}: {len(rows)} texts, {counts}")


if __name__ == "__main__":
    main()
