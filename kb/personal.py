"""Personal details in a citizen's question: masked before the question is logged, left out before it is answered.

One set of patterns finds the numbers (_CONTACTS) for both uses:

    mobile number   13800138000, 138 0013 8000, 138-0013-8000, 138.0013.8000, +86 138…  ->  138****8000
                    (first three and last four digits: staff can still tell numbers apart; no prefix kept)
    身份证号         18 characters (last may be X/x) or the old 15 digits, with a valid birth date  ->  [身份证号]
    bank card       16-19 digits, contiguous or grouped in fours by spaces or dashes  ->  [银行卡号]
    landline        010-12345678, 0755 8601 3388, (0755)86013388, with optional extension  ->  [电话]
    email           anyone@example.com, also with 。 for a dot (anyone@example。com)  ->  [邮箱]

Digit runs are matched whole: a number that runs on into more digits or into a decimal part is left alone, so
years, article numbers, decimals and dates (2024.01.15) survive. A run followed by 元/万/亿 is kept only if it ends
in 0000: a round sum (13500000000元) is not a phone, but 15912345678元旦 is, and an odd sum lost from a log costs
less than a number leaked. Full-width forms (１３８…, ｚｓ＠ｑｑ．ｃｏｍ, the ideographic space), as Chinese input
methods type them, and no-break spaces are matched like their ASCII counterparts.

Who asks does not change what the law says, so retrieval and the answer/no-answer decision see the question
without the asker's details (without_personal_details): those numbers with their labels (电话：…, 身份证号…), a
self-introduction with a name (我叫王建国, 我是王建国, 本人王建国, 姓名：王建国, 我姓王，叫王建国) and a home
address (家住雁石坪镇东风村三组). A name needs a surname (or Tibetan name syllables), and after the weak 我是/本人
also a person's name as the dictionary tags it, so 「我是农民工」 and 「我叫不来人」 keep their words.
"""

from __future__ import annotations

import re

import jieba
import jieba.posseg

#: Full-width ASCII (U+FF01-U+FF5E), the ideographic space and the no-break space (pasted from web pages) folded to
#: ASCII for matching only; one character to one, so positions in the folded text are positions in the original.
_FOLD = {0x3000: " ", 0xA0: " ", **{code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}}

_START = r"(?<![0-9])(?<![0-9]\.)"
#: Not followed by more digits or a decimal part, and not a round sum: ending in 0000 and followed by 元/万/亿.
_END = r"(?![0-9])(?!\.[0-9])(?:(?<!0000)|(?!\s*[元万亿]))"
_BIRTH_DATE = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"

#: The domain's dots may all be 。 instead (example。com); never a mix, so a 。 ending the sentence after an address
#: written with . is not taken as part of it.
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:(?:\.[A-Za-z0-9-]+)*\.|(?:。[A-Za-z0-9-]+)*。)[A-Za-z]{2,}"
#: Digit patterns, each matched only as a whole run (_START, _END).
_NUMBERS = {
    "id_card": rf"[1-9][0-9]{{5}} ?(?:18|19|20)[0-9]{{2}}{_BIRTH_DATE} ?[0-9]{{3}}[0-9Xx]"  # 18 characters
               rf"|[1-9][0-9]{{7}}{_BIRTH_DATE}[0-9]{{3}}",  # the old 15-digit form: two-digit year, no check digit
    "bank_card": r"[0-9]{16,19}|[0-9]{4}(?:[ -][0-9]{4}){3}(?:[ -]?[0-9]{1,3})?",
    # dots only as 3.4.4 (158.1234.5678): a single dot is a decimal point (135.12345678)
    "mobile": r"(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}[ -]?|\.[0-9]{4}\.)[0-9]{4}",
    # area code in brackets or followed by a dash or space, 7-8 digit number, optional extension
    "landline": r"(?:\(0[1-9][0-9]{1,2}\) ?|0[1-9][0-9]{1,2}[ -])[1-9][0-9]{2,3} ?[0-9]{4}"
                r"(?:(?:-|转|ext\.?)[0-9]{1,5})?",
}
#: Each kind of contact detail, in the order they are tried at one position: an email holding a mobile number is
#: an email, an 18-digit 身份证号 is not read as a bank card.
_CONTACTS = {"email": _EMAIL, **{kind: f"{_START}(?:{regex}){_END}" for kind, regex in _NUMBERS.items()}}
# One alternation, so spans never overlap.
_PERSONAL = re.compile("|".join(f"(?P<{kind}>{regex})" for kind, regex in _CONTACTS.items()))

_PLACEHOLDERS = {"id_card": "[身份证号]", "bank_card": "[银行卡号]", "landline": "[电话]", "email": "[邮箱]"}


def _mask_mobile(number: str) -> str:
    digits = re.sub(r"[^0-9]", "", number)[-11:]
    return f"{digits[:3]}****{digits[-4:]}"


def mask_personal_data(text: str) -> str:
    """`text` with every mobile, 身份证号, bank card, landline and email replaced as the module docstring says."""
    folded = text.translate(_FOLD)
    parts: list[str] = []
    end = 0
    for match in _PERSONAL.finditer(folded):
        kind = match.lastgroup
        parts.append(text[end:match.start()])
        parts.append(_mask_mobile(match.group()) if kind == "mobile" else _PLACEHOLDERS[kind])
        end = match.end()
    parts.append(text[end:])
    return "".join(parts)


# --- what retrieval leaves out (matched on the folded text, so ，：？ are already ASCII) --------------------------

#: Between clauses (removed with a detail) and at the end of a sentence (kept, unless the detail was the sentence).
_SEPARATORS = ",;、 \t\n"
_TERMINATORS = "。.!?"
_CLAUSE_END = r"(?=[\s,;:、。.!?]|$)"
#: After 我叫/姓名, a name may also run straight on into the question: 「我叫王建国想问一下……」.
_NAME_END = r"(?=[\s,;:、。.!?]|$|想|要|请问|问一下|咨询|今年|家住|住在|电话|手机|身份证|联系|是)"

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔"
    "钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊"
    "葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆"
    "蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿"
    "桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝封谈匡鞠惠荆乐冀郁胥南班储原栗燕"
    "楚鄢劳谌奚皮粟冼蔺楼满闻厉伊仝郜阚权帅屠朴练廉禹井祖漆巴丰卿狄索宣晋扈晁芮阙浦戈伏鹿薄邸雍辜羊裘亓修邰赫杭"
    "况宿鲜逯隆茹慕危亢嵇湛宾戎茅揭尉冶檀衣展阴昝智幸奉植衡尧"
)
_COMPOUND_SURNAMES = "欧阳|司马|上官|诸葛|东方|皇甫|尉迟|公孙|慕容|长孙|宇文|司徒|夏侯|令狐|端木|独孤|南宫|西门|轩辕"
#: Syllables of Tibetan names, which have no surname (扎西多吉, 次仁卓玛); the township is on the Tibetan plateau.
_TIBETAN = (
    "扎西|次仁|才让|多吉|多杰|卓玛|拉姆|达瓦|尼玛|格桑|索南|旦增|丹增|平措|德吉|白玛|普布|边巴|巴桑|洛桑|措姆|仁青|顿珠|"
    "才旦|卓嘎|桑杰|桑吉|贡布|央金|曲珍|旺堆|罗布|次旦|央宗|拉巴|更登|强巴|占堆|益西|加措|嘉措|公保|完玛|万玛|南加|德庆|"
    "琼达|欧珠|土登|泽仁|泽旺|久美|晋美|吉太|才仁|索朗|群培|拉毛|卓尕|仁增"
)
_CJK = r"[\u4e00-\u9fff]"
_NAME = rf"(?:(?:{_COMPOUND_SURNAMES}|[{_SURNAMES}]){_CJK}{{1,2}}|(?:{_TIBETAN}){{1,2}})"
#: Last characters of words for what someone is (农民工, 申请人, 高中生, 苗族) that the dictionary may tag as names.
_ROLE_ENDINGS = "人工生儿员户领民农族者"
#: The dictionary tags many ordinary words as names (陈述, 明白, 许可); one this frequent is an ordinary word.
_ORDINARY_WORD_FREQUENCY = 200

#: 我叫/我的名字是/姓名：/我姓王，叫…: a name surely follows. 我是/本人: one may (我是王建国 / 我是农民工).
_NAMED = re.compile(
    rf"(?:(?:我的|本人的?)(?:姓名|名字)(?:是|叫|为)?:?|(?<!{_CJK})姓名:|我名?叫)\s*{_NAME}{_NAME_END}"
    rf"|我姓(?:{_COMPOUND_SURNAMES}|[{_SURNAMES}])(?:,?\s*名?叫(?:{_NAME}|{_CJK}{{1,2}}))?{_NAME_END}"
)
_INTRODUCED = re.compile(rf"(?:我是|本人(?:是)?)\s*(?P<name>{_NAME}){_CLAUSE_END}")

#: Contact details, with the label that says what they are (电话：…, 我的身份证号是…) when there is one.
_CONTACT = re.compile(
    r"(?:(?:我的|本人的?|我)?(?:身份证号码|身份证号|公民身份号码|身份证|联系电话|电话号码|电话|手机号码|手机号|手机|"
    r"联系方式|银行卡号|银行卡|卡号|账号|电子邮箱|邮箱|E-?mail)(?:是|为)?:?\s*)?"
    + "(?:" + "|".join(f"(?:{regex})" for regex in _CONTACTS.values()) + ")",
    re.IGNORECASE,
)

#: Where one lives: 家住/住在/住址：/地址： then places down to the house (雁石坪镇东风村三组5号), to the clause's end.
_PLACE_UNIT = "省市州盟县旗区镇乡村组社屯队路街巷弄号栋幢座楼室层苑"
_PLACE = rf"(?:(?![{_PLACE_UNIT}])[\u4e00-\u9fff0-9A-Za-z#-])"
_UNITS = rf"(?:街道|社区|小区|单元|胡同|大道|居委会|村委会|[{_PLACE_UNIT}])+"
_ADDRESS = re.compile(
    rf"(?:我|本人)?(?:家住在|家住|现住在|现住|居住在|住在|家庭住址|现住址|住址|地址)(?:是|为|在)?:?\s*"
    rf"(?P<address>(?:{_PLACE}{{1,12}}{_UNITS}){{1,8}}){_CLAUSE_END}"
)
_ADDRESS_PART = re.compile(rf"{_PLACE}+{_UNITS}")
#: One place alone is an address only when it is named (东风村, 雁石坪镇), not a kind of place (农村, 城中村).
_NAMED_PLACE = re.compile(rf"{_PLACE}{{2,}}[镇乡村]")
_KINDS_OF_PLACE = ("城中村", "行政村", "自然村", "贫困村", "山村", "渔村", "乡村", "城郊村", "乡镇", "集镇", "小镇")


def _is_person_name(name: str) -> bool:
    """Whether a word after 我是/本人 is someone's name, as the dictionary tags it: 王建国 is, 农民工 is not."""
    if re.fullmatch(f"(?:{_TIBETAN})+", name):
        return True
    jieba.dt.check_initialized()  # the frequencies are loaded with the dictionary
    if name[-1] in _ROLE_ENDINGS or (jieba.get_FREQ(name) or 0) >= _ORDINARY_WORD_FREQUENCY:
        return False
    words = jieba.posseg.lcut(name)
    return len(words) == 1 and words[0].flag.startswith("nr")


def _is_address(address: str) -> bool:
    """Places down to a village group or a house (东风村三组), or one named town or village (雁石坪镇, 东风村)."""
    if len(_ADDRESS_PART.findall(address)) > 1:
        return True
    return _NAMED_PLACE.fullmatch(address) is not None and not address.endswith(_KINDS_OF_PLACE)


def _detail_spans(folded: str) -> list[tuple[int, int]]:
    """Where the personal details of a (folded) question are, in order, not overlapping."""
    spans = [m.span() for m in _NAMED.finditer(folded)]
    spans += [m.span() for m in _INTRODUCED.finditer(folded) if _is_person_name(m["name"])]
    spans += [m.span() for m in _ADDRESS.finditer(folded) if _is_address(m["address"])]
    spans += [m.span() for m in _CONTACT.finditer(folded)]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        # details one after another (我叫王建国，电话…，家住…) go as one, with the separators between them
        if merged and (start <= merged[-1][1] or not folded[merged[-1][1]:start].strip(_SEPARATORS)):
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _with_punctuation(folded: str, start: int, end: int) -> tuple[int, int]:
    """A detail's span with the punctuation that goes with it, so that what remains reads as it would have been
    typed without it: the separator after it; at the end of a sentence the separator before it, or the sentence's
    end when the detail was the whole sentence."""
    if end < len(folded) and folded[end] in _SEPARATORS:
        return start, len(folded) - len(folded[end:].lstrip(_SEPARATORS))
    if end < len(folded) and folded[end] not in _TERMINATORS:
        return start, end  # the question runs straight on: 「我叫王建国想问……」
    if start > 0 and folded[start - 1] in _SEPARATORS:
        return len(folded[:start].rstrip(_SEPARATORS)), end
    if (start == 0 or folded[start - 1] in _TERMINATORS) and end < len(folded):
        return start, end + 1
    return start, end


def without_personal_details(question: str) -> str:
    """`question` without the asker's name, address and contact numbers, for retrieval and the answer/no-answer
    decision: 「我叫王建国，电话13912345678，家住雁石坪镇东风村三组，信访事项多久办结？」 →
    「信访事项多久办结？」. A question that is nothing but details is kept whole: something must be asked."""
    folded = question.translate(_FOLD)
    spans = _detail_spans(folded)
    if not spans:
        return question
    parts: list[str] = []
    kept_from = 0
    for start, end in spans:
        start, end = _with_punctuation(folded, start, end)
        parts.append(question[kept_from:start])
        kept_from = end
    parts.append(question[kept_from:])
    remaining = "".join(parts).strip()
    return remaining if any(ch.isalnum() for ch in remaining) else question
