"""Personal details in a citizen's question: masked before the question is logged, left out before it is answered.

One grammar finds the numbers (_personal_numbers) for both uses. A number is a run of digits with at most three
separators between two digits; the characters it may be written in are one table (_NUMBER_FORMS):

    digits       0-9, full-width ０-９, Chinese numerals 〇零一幺二两三四五六七八九 and capitals 壹贰叁肆伍陆柒捌玖
    separators   space, ideographic and no-break space, - — – ‐ ‑ − ﹣ －, * ＊, / ／, · ・ ･, 、, _ ＿,
                 and the dot . ．
    check digit  X x Ｘ ｘ, at the end of an 18-character 身份证号

Its digits are then read by what they can be, the longest reading first, and of one length in this order:

    身份证号      18 characters (last may be X) or the old 15 digits, with a valid birth date  ->  [身份证号]
    mobile       11 digits 1[3-9]…, after an optional +86/0086/86  ->  138****8000
                 (first three and last four digits: staff can still tell numbers apart; no prefix kept)
    bank card    16-19 digits, in one group, in fours (6222 0212 3456 7890 123) or 6-13 (622202 1234567890123);
                 in any other grouping only when the Luhn check digit is right  ->  [银行卡号]
    landline     area code 0xx/0xxx then a separator or in brackets, 7-8 digits (3-4 and 4), optional extension
                 (-123, 转123, ext123): 010-12345678, 0755 8601 3388, (0755)86013388; or 11-12 digits run together
                 starting 0[1-9] (075586013388)  ->  [电话]
    email        anyone@example.com, also with 。 for a dot (anyone@example。com)  ->  [邮箱]

Rules that keep the numbers of government texts:
- Groups are written digit by digit (1 3 8 0 0 1 3 8 0 0 0) or at least three digits long (138-0013-8000; the last
  group of a card may be shorter): so lists of articles (第1、3、5、7、9、11、13条) are not read as one number.
- Chinese numerals read only as a mobile, 身份证号 or card, so at least eleven of them: 三四个人, 一二年,
  二〇二四年 and 第一千零七十九条 (千/百/十 are no digits) stay. A numeral may end a number and begin a word
  (一三八零零一三八零零零一直打不通).
- A dot is a decimal point when it is the only one (135.12345678, 0.13800138000), unless the number is too long
  for a decimal (16+ digits) or the part before it has a leading zero (an area code); a number is never cut
  next to a dot, so dates (2024.01.15) and version numbers (158.1234.5678.9) stay whole.
- A run of plain digits is never cut: twenty digits are no number of any kind. A run that reads as nothing is
  searched for a number inside it between its separators (2024-01-15 13800138000).
- A number followed by 元/万/亿 is kept only if it ends in 0000: a round sum (13500000000元) is not a phone, but
  15912345678元旦 is, and an odd sum lost from a log costs less than a number leaked.
- Commas and colons separate nothing: 1,380,013,800 is a sum, 10:30 a time.
Full-width forms (１３８…, ｚｓ＠ｑｑ．ｃｏｍ), as Chinese input methods type them, are matched like ASCII.

Who asks does not change what the law says, so retrieval and the answer/no-answer decision see the question
without the asker's details (without_personal_details): those numbers with their labels (电话：…, 身份证号…), a
self-introduction with a name (我叫王建国, 我是王建国, 本人王建国, 姓名：王建国, 我姓王，叫王建国) and a home
address (家住雁石坪镇东风村三组). A name needs a surname (or Tibetan name syllables), and after the weak 我是/本人
also a person's name as the dictionary tags it, so 「我是农民工」 and 「我叫不来人」 keep their words.
"""

from __future__ import annotations

import datetime
import itertools
import re
from collections.abc import Iterator

import jieba
import jieba.posseg

#: Full-width ASCII (U+FF01-U+FF5E), the ideographic space and the no-break space (pasted from web pages) folded to
#: ASCII for matching only; one character to one, so positions in the folded text are positions in the original.
_FOLD: dict[int, str | int] = {0x3000: " ", 0xA0: " ", **{code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}}

#: Chinese numerals as a number is read out (幺 for 1, 两 for 2) and the capitals of cheques and bank forms.
_NUMERALS = "〇零一幺二两三四五六七八九壹贰叁肆伍陆柒捌玖"
#: How a number may be written: each character, and what it reads as. A digit reads as its ASCII digit, a
#: separator as a space, a dot (which may also be a decimal point) as ".", a check digit as "X".
_NUMBER_FORMS: dict[str, str] = {
    **dict(zip("0123456789", "0123456789", strict=True)),
    **dict(zip("０１２３４５６７８９", "0123456789", strict=True)),
    **dict(zip(_NUMERALS, "0011223456789123456789", strict=True)),
    **dict.fromkeys(" \u3000\u00a0-—–‐‑−﹣－*＊/／·・･、_＿", " "),
    **dict.fromkeys(".．", "."),
    **dict.fromkeys("XxＸｘ", "X"),
}
#: Text as the number grammar reads it: one character to one, so positions are those of the original.
_READ: dict[int, str | int] = {**_FOLD, **{ord(char): read for char, read in _NUMBER_FORMS.items()}}

#: A run of digits with at most three separators between two, in the text as read (_READ); a bracketed area code
#: before it, and a check digit after it.
_RUN = re.compile(
    r"(?:\((?P<area>0[1-9][0-9]{1,2})\) ?)?(?P<digits>[0-9](?:[ .]{0,3}[0-9])*)"
    r"(?:(?P<check_gap>[ .]{0,3})X(?![A-Za-z]))?"
)
_DIGIT_GROUP = re.compile(r"[0-9]+")
_EXTENSION = re.compile(r" ?(?:转|ext\.?) ?[0-9]{1,5}(?![0-9])", re.IGNORECASE)
_SUM = re.compile(r"\s*[元万亿]")

_BIRTH_DATE = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
_ID_CARD = re.compile(rf"[1-9][0-9]{{5}}(?:(?P<year>(?:18|19|20)[0-9]{{2}})(?P<date>{_BIRTH_DATE})[0-9]{{3}}[0-9X]"
                      rf"|(?P<old_year>[0-9]{{2}})(?P<old_date>{_BIRTH_DATE})[0-9]{{3}})")
_YEAR = re.compile(r"(?:19|20)[0-9]{2}")
_MOBILE = re.compile(r"(?:0086|86)?1[3-9][0-9]{9}")
_LANDLINE = re.compile(r"0[1-9][0-9]{1,2} (?:[1-9][0-9]{6,7}|[1-9][0-9]{2,3} [0-9]{4})(?: [0-9]{1,5})?"
                       r"|0[1-9][0-9]{9,10}")  # area code and number run together: 11 or 12 digits
#: The domain's dots may all be 。 instead (example。com); never a mix, so a 。 ending the sentence after an address
#: written with . is not taken as part of it.
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:(?:\.[A-Za-z0-9-]+)*\.|(?:。[A-Za-z0-9-]+)*。)[A-Za-z]{2,}")

_PLACEHOLDERS = {"id_card": "[身份证号]", "bank_card": "[银行卡号]", "landline": "[电话]", "email": "[邮箱]"}


def _is_date(year: int, month_day: str) -> bool:
    try:
        datetime.date(year, int(month_day[:2]), int(month_day[2:]))
    except ValueError:
        return False
    return True


def _is_id_card(digits: str) -> bool:
    """18 characters with a real birth date (the check digit is not checked: a typo in it still identifies
    someone), or the old 15 digits born in 19xx."""
    match = _ID_CARD.fullmatch(digits)
    if match is None:
        return False
    if match["year"]:
        return _is_date(int(match["year"]), match["date"])
    return _is_date(1900 + int(match["old_year"]), match["old_date"])


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _is_bank_card(groups: list[str], *, whole_run: bool, numerals: bool) -> bool:
    """16-19 digits with a right Luhn check digit, or, as a whole run of digits, written as cards are (in one group,
    in fours, 6-13) in case of a typo. A list of years (2018、2019、2020、2021) is no card."""
    digits = "".join(groups)
    if not 16 <= len(digits) <= 19 or not digits.isdigit() or all(_YEAR.fullmatch(group) for group in groups):
        return False
    sizes = [len(group) for group in groups]
    card_like = (len(sizes) == 1 or (len(sizes) >= 4 and set(sizes[:-1]) == {4} and sizes[-1] <= 4)
                 or (len(sizes) == 2 and sizes[0] == 6))
    return (whole_run and card_like and not numerals) or _luhn(digits)


def _written_as_number(groups: list[str], shorter_last: bool = False) -> bool:
    """Digit by digit, or in groups of at least three (the last may be shorter where `shorter_last`)."""
    sizes = [len(group) for group in groups]
    return set(sizes) == {1} or all(size >= 3 for size in (sizes[:-1] if shorter_last else sizes))


def _kind(groups: list[str], *, decimal: bool = False, numerals: bool = False, whole_run: bool = True) -> str | None:
    """What a number written in these groups (split where the writer put a separator) is, if it is personal:
    `decimal` if it has one decimal point, `numerals` if written in Chinese numerals, `whole_run` unless it is
    only part of a run of digits."""
    digits = "".join(groups)
    if decimal and len(digits) < 16:
        return None
    if _is_id_card(digits) and _written_as_number(groups):
        return "id_card"
    without_prefix = groups[1:] if len(groups) > 1 and groups[0] in ("86", "0086") else groups
    if _MOBILE.fullmatch(digits) and _written_as_number(without_prefix):
        return "mobile"
    if _is_bank_card(groups, whole_run=whole_run, numerals=numerals) and _written_as_number(groups, shorter_last=True):
        return "bank_card"
    if not numerals and _LANDLINE.fullmatch(" ".join(groups)):
        return "landline"
    return None


def _pieces(text: str, read: str, run: re.Match[str]) -> list[tuple[int, int]]:
    """Where a number in a run may start and end: around each group of plain digits (never inside one, so a
    twenty-digit run is not cut into a card) and around each Chinese numeral (which may begin the next word)."""
    pieces: list[tuple[int, int]] = []
    for group in _DIGIT_GROUP.finditer(read, run.start("digits"), run.end("digits")):
        start = group.start()
        for cut in range(start + 1, group.end() + 1):
            if cut == group.end() or text[cut] in _NUMERALS or text[cut - 1] in _NUMERALS:
                pieces.append((start, cut))
                start = cut
    return pieces


def _is_decimal(read: str, pieces: list[tuple[int, int]], gaps: list[str]) -> bool:
    """One dot, after a whole number (0, or no leading zero: 010.12345678 is an area code and a number)."""
    dots = [index for index, gap in enumerate(gaps) if "." in gap]
    if len(dots) != 1:
        return False
    whole = "".join(read[start:end] for start, end in pieces[:dots[0] + 1])
    return whole == "0" or not whole.startswith("0")


def _run_numbers(text: str, read: str, run: re.Match[str]) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, kind, digits) of the personal numbers in one run, leftmost first, the longest reading at
    each place: a mobile followed by more numerals (一三八零零一三八零零零一直) is a mobile, a card holding an
    old 身份证号's digits (六二一七〇〇五〇〇二一三四九四五三八〇) a card."""
    pieces = _pieces(text, read, run)
    gaps = [read[end:start] for (_, end), (start, _) in itertools.pairwise(pieces)]
    first = 0
    while first < len(pieces):
        best: tuple[int, tuple[int, int, str, str]] | None = None  # the longest reading here
        length = 0
        for last in range(first, len(pieces)):
            length += pieces[last][1] - pieces[last][0]
            if length > 19:  # longer than any number
                break
            if (first and "." in gaps[first - 1]) or (last < len(gaps) and "." in gaps[last]):
                continue  # never cut next to a dot: a decimal part, a date or a version number goes on
            reading = _reading(text, read, run, pieces[first:last + 1], gaps[first:last],
                               at_start=first == 0, at_end=last == len(pieces) - 1)
            if reading:
                best = (last, reading)
        if best is None:
            first += 1
        else:
            yield best[1]
            first = best[0] + 1


def _reading(text: str, read: str, run: re.Match[str], pieces: list[tuple[int, int]], gaps: list[str], *,
             at_start: bool, at_end: bool) -> tuple[int, int, str, str] | None:
    """(start, end, kind, digits) if these pieces of a run are a personal number, with what goes with it: a
    +86, a bracketed area code, an extension, the check digit X."""
    groups = [read[pieces[0][0]:pieces[0][1]]]
    for gap, (start, end) in zip(gaps, pieces[1:]):
        if gap:
            groups.append(read[start:end])
        else:
            groups[-1] += read[start:end]
    start, end = pieces[0][0], pieces[-1][1]
    decimal = _is_decimal(read, pieces, gaps)
    numerals = any(char in _NUMERALS for char in text[start:end])
    with_check = [*groups, "X"] if run["check_gap"] else [*groups[:-1], groups[-1] + "X"]
    if at_end and run["check_gap"] is not None and _kind(with_check, decimal=decimal, numerals=numerals) == "id_card":
        kind: str | None = "id_card"
        groups, end = with_check, run.end()
    else:
        kind = _kind(groups, decimal=decimal, numerals=numerals, whole_run=at_start and at_end)
    if kind is None and at_start and run["area"] and _kind([run["area"], *groups], numerals=numerals) == "landline":
        kind, start = "landline", run.start()
    digits = "".join(groups)
    if kind is None or (at_end and digits.endswith("0000") and _SUM.match(read, end)):
        return None
    if kind == "mobile" and read[start - 1:start] == "+":
        start -= 1
    if kind == "landline" and at_end and (extension := _EXTENSION.match(read, end)):
        end = extension.end()
    return start, end, kind, digits


def _personal_numbers(text: str) -> list[tuple[int, int, str]]:
    """(start, end, replacement) of every email and personal number in `text`, in order, not overlapping."""
    folded = text.translate(_FOLD)
    found = [(m.start(), m.end(), _PLACEHOLDERS["email"]) for m in _EMAIL.finditer(folded)]
    read = text.translate(_READ)
    for start, end, _ in found:  # digits inside an email are the email's
        read = read[:start] + "@" * (end - start) + read[end:]
    taken_to = 0  # an extension (转123) may take the run after a landline's
    for run in _RUN.finditer(read):
        for start, end, kind, digits in _run_numbers(text, read, run):
            if start >= taken_to:
                found.append((start, end, _mask_mobile(digits) if kind == "mobile" else _PLACEHOLDERS[kind]))
                taken_to = end
    return sorted(found)


def _mask_mobile(digits: str) -> str:
    return f"{digits[-11:-8]}****{digits[-4:]}"


def mask_personal_data(text: str) -> str:
    """`text` with every mobile, 身份证号, bank card, landline and email replaced as the module docstring says."""
    parts: list[str] = []
    end = 0
    for start, stop, replacement in _personal_numbers(text):
        parts += [text[end:start], replacement]
        end = stop
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

#: What says a number is the asker's (电话：…, 我的身份证号是…), left out with it: matched against the text just
#: before the number.
_LABEL = re.compile(
    r"(?:我的|本人的?|我)?(?:身份证号码|身份证号|公民身份号码|身份证|联系电话|电话号码|电话|手机号码|手机号|手机|"
    r"联系方式|银行卡号|银行卡|卡号|账号|电子邮箱|邮箱|E-?mail)(?:是|为)?:?\s*$",
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
    for start, end, _ in _personal_numbers(folded):
        label = _LABEL.search(folded, 0, start)
        spans.append((label.start() if label else start, end))
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
