"""Mask personal data in free text before it is stored, so logs of citizens' questions hold no one's identity.

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
"""

from __future__ import annotations

import re

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
# One alternation, so spans never overlap; at a given position the earlier kind wins (an email holding a
# mobile number is an email, an 18-digit 身份证号 is not read as a bank card).
_PERSONAL = re.compile("|".join(
    [f"(?P<email>{_EMAIL})", *(f"(?P<{kind}>{_START}(?:{regex}){_END})" for kind, regex in _NUMBERS.items())]
))

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
