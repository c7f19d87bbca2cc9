"""The number grammar of kb/text/personal.py against the corpus of spellings (bench/pii_variants.py) and random ones:
no personal number reaches the log or retrieval, however it is written, and the numbers of government texts
come through whole."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import pii_variants
from bench.pii_variants import GROUPINGS, NUMERALS, SEPARATORS, full_width, grouped, in_numerals, number
from kb.text.personal import mask_personal_data, without_personal_details

ROWS = [json.loads(line) for line in pii_variants.OUT.read_text(encoding="utf-8").splitlines()]
PERSONAL = [row for row in ROWS if row["kind"] != "none"]
MUST_STAY = [row["text"] for row in ROWS if row["kind"] == "none"]

#: The digits the corpus writes in full width or Chinese numerals, read back as ASCII; and the separators, dropped so
#: that digits left apart in the text are read as one run.
_DIGITS = {**{char: str(digit) for digit, char in enumerate(pii_variants.FULL_WIDTH_DIGITS)},
           **{char: str(digit) for numerals in NUMERALS for digit, char in enumerate(numerals)}}
_SEPARATOR_CHARS = set("".join(SEPARATORS)) | set("+＋")


def _digits_left(text: str) -> str:
    """`text` with digits in ASCII and separators removed."""
    return "".join(_DIGITS.get(char, char) for char in text if char not in _SEPARATOR_CHARS)


def leaked(text: str, digits: str) -> list[str]:
    """Each four consecutive digits of the number that `text` still shows, however written or separated."""
    left = _digits_left(text).upper()
    return [digits[start:start + 4] for start in range(len(digits) - 3) if digits[start:start + 4] in left]


def assert_masked(masked: str, digits: str) -> None:
    """No four consecutive digits of the number are left; of a mobile only its first three and last four, in the
    masked form 138****8000."""
    if len(digits) == 11 and digits.startswith("1"):
        shown = f"{digits[:3]}****{digits[-4:]}"
        assert shown in masked
        masked = masked.replace(shown, "[手机]")
    assert leaked(masked, digits) == [], masked


def test_the_corpus_is_as_the_script_writes_it() -> None:
    """Committed, and regenerated the same: the seed makes it deterministic."""
    assert [json.dumps(row, ensure_ascii=False) for row in pii_variants.variants(random.Random(pii_variants.SEED))] \
        == [json.dumps(row, ensure_ascii=False) for row in ROWS]


def test_the_corpus_covers_every_separator_with_every_kind() -> None:
    assert len(PERSONAL) >= 150 and len(MUST_STAY) >= 40
    for kind in GROUPINGS:
        forms = {row["form"] for row in PERSONAL if row["kind"] == kind}
        assert {f"separator {separator!r}" for separator in SEPARATORS} <= forms
        assert any(form.startswith("full-width") for form in forms)
        assert kind == "landline" or any(form.startswith("numerals") for form in forms)


@pytest.mark.parametrize("row", PERSONAL, ids=lambda row: f"{row['kind']}: {row['text']}")
def test_every_spelling_is_masked(row: dict[str, str]) -> None:
    masked = mask_personal_data(row["text"])
    assert masked != row["text"]
    assert_masked(masked, row["digits"])
    if row["kind"] == "email":
        assert "@" not in masked.replace("＠", "@")
    assert mask_personal_data(masked) == masked


@pytest.mark.parametrize("row", PERSONAL, ids=lambda row: f"{row['kind']}: {row['text']}")
def test_every_spelling_is_left_out_of_retrieval(row: dict[str, str]) -> None:
    question = f"{row['text']}，这种情况怎么办？"
    left = without_personal_details(question)
    assert left != question and left.endswith("这种情况怎么办？")
    assert leaked(left, row["digits"]) == [], left


@pytest.mark.parametrize("text", MUST_STAY)
def test_the_numbers_of_government_texts_are_kept(text: str) -> None:
    assert mask_personal_data(text) == text
    assert without_personal_details(text) == text


# --- random spellings ----------------------------------------------------------------------------------------

_KINDS = tuple(GROUPINGS)
_BEFORE = ("", "我的号码是", "请联系", "号码：", "卡号 ", "您好，", "编号为")
_AFTER = ("", "，请回电", "一直打不通", "两个月了", "。", " 谢谢", "是我的")


def _any_grouping(rng: random.Random, length: int) -> tuple[int, ...]:
    """Groups of three to seven digits."""
    sizes: list[int] = []
    while (left := length - sum(sizes)) > 7:
        sizes.append(rng.randint(3, min(7, left - 3)))
    return (*sizes, length - sum(sizes))


@st.composite
def spellings(draw: st.DrawFn) -> tuple[str, str]:
    """(text, digits): a random number of a random kind, grouped, separated and written in a random way."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    kind = draw(st.sampled_from(_KINDS))
    grouping = draw(st.sampled_from(GROUPINGS[kind]))
    if kind != "landline" and draw(st.booleans()):  # any grouping: groups of three digits or more
        grouping = _any_grouping(rng, sum(grouping))
    separator = draw(st.sampled_from(SEPARATORS))
    if kind == "mobile" and separator in ".．" and len(grouping) == 2:
        grouping = GROUPINGS["mobile"][0]  # one dot is a decimal point
    digits = number(rng, kind, grouping)
    written = grouped(digits, grouping, separator)
    form = draw(st.sampled_from(("ascii", "full-width", "numerals") if kind != "landline" else ("ascii", "full-width")))
    if form == "full-width":
        written = full_width(written)
    elif form == "numerals":
        written = in_numerals(written, draw(st.sampled_from(NUMERALS)))
    return draw(st.sampled_from(_BEFORE)) + written + draw(st.sampled_from(_AFTER)), digits


@settings(max_examples=700, derandomize=True, deadline=None)
@given(spellings())
def test_random_spellings_are_masked(spelling: tuple[str, str]) -> None:
    text, digits = spelling
    assert_masked(mask_personal_data(text), digits)
    left = without_personal_details(f"{text}，怎么办？")
    assert leaked(left, digits) == [], left


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.sampled_from(("{}年{}月{}日", "{}-{:02}-{:02}", "{}.{:02}.{:02}", "{}/{}/{}")), st.integers(1900, 2100),
       st.integers(1, 12), st.integers(1, 31), st.integers(0, 10**15), st.integers(1, 6), st.integers(1, 2000))
def test_random_dates_sums_decimals_and_articles_are_kept(date: str, year: int, month: int, day: int, amount: int,
                                                         decimals: int, article: int) -> None:
    texts = (f"于{date.format(year, month, day)}施行", f"共计{amount * 10000}元",
             f"增长{amount % 10**8}.{article:0{decimals}}%", f"依照第{article}条、第{article + 1}条",
             f"{year}年至{year + 5}年", f"上午{month}:{day:02}办公")
    for text in texts:
        assert mask_personal_data(text) == text
