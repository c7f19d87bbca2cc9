"""Personal data in Chinese text is masked; ordinary numbers of government texts are not."""

from __future__ import annotations

import pytest

from kb.text.personal import mask_personal_data


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # mobile numbers: first three and last four digits kept, in every common spelling
        ("我的手机号是13800138000，请回电。", "我的手机号是138****8000，请回电。"),
        ("联系电话：138 0013 8000", "联系电话：138****8000"),
        ("联系电话：138-0013-8000。", "联系电话：138****8000。"),
        ("请拨打+86 13912345678咨询", "请拨打139****5678咨询"),
        ("请拨打+8613912345678咨询", "请拨打139****5678咨询"),
        ("号码８６１９９１２３４５６７８", "号码199****5678"),
        ("全角号码１３８００１３８０００可以吗", "全角号码138****8000可以吗"),
        ("Tel.15012345678", "Tel.150****5678"),
        # 身份证号: 18 characters (X/x check digit), grouped 6-8-4, and the old 15-digit form
        ("身份证号11010519491231002X办理社保", "身份证号[身份证号]办理社保"),
        ("身份证号：11010519491231002x。", "身份证号：[身份证号]。"),
        ("我的身份证是440301199001011234", "我的身份证是[身份证号]"),
        ("身份证 440301 19900101 1234 丢了", "身份证 [身份证号] 丢了"),
        ("老身份证110105491231002还能用吗", "老身份证[身份证号]还能用吗"),
        # bank cards: 16-19 digits, contiguous or in groups of four
        ("工资卡6222021234567890没收到钱", "工资卡[银行卡号]没收到钱"),
        ("卡号6222021234567890123", "卡号[银行卡号]"),
        ("卡号6222 0212 3456 7890 123，开户行工商银行", "卡号[银行卡号]，开户行工商银行"),
        ("卡号 6217-0000-1234-5678", "卡号 [银行卡号]"),
        # landlines, with or without extension
        ("市民热线0755-86013388转123", "市民热线[电话]"),
        ("请致电010-12345678或(0571)87654321", "请致电[电话]或[电话]"),
        ("办公室电话 0755 8601 3388。", "办公室电话 [电话]。"),
        ("电话（０２１）６２３４５６７８", "电话[电话]"),
        # email addresses, including one whose name is a mobile number
        ("发到zhang.san@example.gov.cn即可", "发到[邮箱]即可"),
        ("邮箱13800138000@qq.com", "邮箱[邮箱]"),
        # several kinds at once
        ("张三，身份证11010519491231002X，手机13800138000，邮箱zs@163.com",
         "张三，身份证[身份证号]，手机138****8000，邮箱[邮箱]"),
    ],
)
def test_personal_data_is_masked(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "《中华人民共和国民法典》自2021年1月1日起施行。",
        "依照民法典第1260条的规定，2024年度预算已经公布。",
        "申请人应当在60日内提出，逾期不予受理。",
        "补贴标准为每人每月30000元。",
        "全市财政收入为13500000000元，增长5.2%。",
        "预算总额15000000000 元",
        "利率为1.3800138000",
        "比例为0.13800138000",
        "会议于2024-01-01召开，2023-12-31截止。",
        "请拨打12345政务服务便民热线。",
        "邮政编码518000，统一社会信用代码91440300MA5DC8XXXX。",
        "文号为国办发〔2024〕15号，共有1260条。",
        "2019-2024年累计新增就业人口120000人",
        "第一千二百六十条",
    ],
)
def test_ordinary_numbers_are_kept(text: str) -> None:
    assert mask_personal_data(text) == text


def test_masking_twice_changes_nothing_more() -> None:
    once = mask_personal_data("手机13800138000，卡号6222021234567890，邮箱a@b.cn")
    assert once == "手机138****8000，卡号[银行卡号]，邮箱[邮箱]"
    assert mask_personal_data(once) == once


def test_a_digit_run_too_long_for_any_kind_is_not_split_into_one() -> None:
    """Twenty digits are no mobile, 身份证号 or card: matching a part would corrupt the number and hide nothing."""
    assert mask_personal_data("编号12345678901234567890") == "编号12345678901234567890"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # a mobile before 元/万/亿 is still a mobile: 元旦 (New Year's Day) is not an amount
        ("15912345678元旦后联系我", "159****5678元旦后联系我"),
        ("打15912345678 元宵节前回复", "打159****5678 元宵节前回复"),
        ("号码13912345678万一打不通", "号码139****5678万一打不通"),
        ("158 1234 5678元旦后联系我", "158****5678元旦后联系我"),
        ("身份证11010519491231002X元旦前到期", "身份证[身份证号]元旦前到期"),
        # separators people type between the groups of a mobile number
        ("手机158.1234.5678", "手机158****5678"),
        ("手机158 1234 5678", "手机158****5678"),
        ("手机158-1234-5678", "手机158****5678"),
        ("手机+86 158 1234 5678", "手机158****5678"),
        ("手机+86-158-1234-5678", "手机158****5678"),
        ("手机+86 158.1234.5678", "手机158****5678"),
        ("手机１５８．１２３４．５６７８", "手机158****5678"),
        ("手机１５８　１２３４　５６７８", "手机158****5678"),
        ("手机＋８６　１５８１２３４５６７８", "手机158****5678"),
        ("手机（＋８６）１５８－１２３４－５６７８", "手机（＋８６）158****5678"),
        ("手机158\u00a01234\u00a05678", "手机158****5678"),  # no-break spaces, pasted from a web page
        # e-mail addresses typed fully or partly in full-width forms, or with 。 as a dot
        ("邮箱ｚｈａｎｇｓａｎ＠ｅｘａｍｐｌｅ．ｃｏｍ", "邮箱[邮箱]"),
        ("邮箱ＺＨＡＮＧＳＡＮ＠ＥＸＡＭＰＬＥ．ＣＯＭ。", "邮箱[邮箱]。"),
        ("邮箱zhangsan＠example.com", "邮箱[邮箱]"),
        ("邮箱ｚｈａｎｇｓａｎ@example．com，谢谢", "邮箱[邮箱]，谢谢"),
        ("邮箱１３８００１３８０００＠ｑｑ．ｃｏｍ", "邮箱[邮箱]"),
        ("邮箱zhangsan@example。com", "邮箱[邮箱]"),
        ("邮箱zhangsan@mail。example。com。", "邮箱[邮箱]。"),
        ("发到zs@qq.com。Thanks", "发到[邮箱]。Thanks"),  # the 。 ends the sentence
    ],
)
def test_evasive_spellings_are_masked(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        # amounts: 元/万/亿 after a sum that is no mobile, or a round one as long as a mobile
        "借了5000元还不上怎么办",
        "工资13000元要交多少税",
        "赔偿12万元合理吗",
        "项目总投资13500000000元",
        "总额15000000000 亿",
        # decimals, dates, article numbers and years next to dots, spaces and dashes
        "利率3.5%，期限2.5年",
        "2024.01.15提交，2024.1.5受理",
        "版本号158.1234.5678.9",
        "合计135.12345678元",
        "见民法典第1079条、第1260条",
        "1949年至2024年",
        "时间2024-01-15 13:00",
        "电话号码格式为1XX XXXX XXXX",
        "发送至＠官方微博",
    ],
)
def test_amounts_decimals_and_dates_near_evasive_spellings_are_kept(text: str) -> None:
    assert mask_personal_data(text) == text
