"""Roster validation: each rejection reason on its own, several at once, duplicates and
one-person-one-card across rows, file formats, the registry check, and the 公示 listing."""

from __future__ import annotations

import json
from datetime import date

import pytest

from gateway.registry import DEFAULT_FIRST_SEQUENCE, SqliteCardRegistry
from gateway.subsidy.catalogue import Catalogue, CatalogueError, load_catalogue
from gateway.subsidy.publication import publication_csv, publication_rows
from gateway.subsidy.roster import (
    RosterFormatError,
    decode_roster,
    parse_roster,
    registry_lookup,
    validate_roster,
)
from terminal.roles.registry import Applicant
from tests.issuance_kit import SHANGHAI

TODAY = date(2026, 11, 28)
HEADER = "name,id_number,card_number,item,amount_fen,period"
ZHANG = "张三,11010519491231002X,3100029000010000001"
LI = "李四,110101199003074514,3100029000010000002"
CATALOGUE = load_catalogue()


def check(*rows: str, **kw):  # type: ignore[no-untyped-def]
    text = "\n".join([HEADER, *rows]) + "\n"
    return validate_roster(parse_roster(text), CATALOGUE, today=TODAY, **kw)


def reasons(*rows: str, **kw) -> list[str]:  # type: ignore[no-untyped-def]
    report = check(*rows, **kw)
    assert len(report.rejected) == 1, report.to_json()
    return list(report.rejected[0].reasons)


def test_a_clean_roster_is_accepted_with_totals() -> None:
    report = check(f"{ZHANG},H18,20000,2026-10", f"{LI},粮食直补资金,123456,2026")
    assert report.rejected == [] and report.rows == 2
    assert [(line.row, line.item.code, line.amount_fen) for line in report.lines] == [
        (2, "H18", 20_000),
        (3, "H02", 123_456),
    ]
    assert report.total_fen == 143_456
    assert report.by_item()["H18"] == {
        "name": "农村分散供养五保户补助资金",
        "lines": 1,
        "amount_fen": 20_000,
    }
    json.dumps(report.to_json(), ensure_ascii=False)


@pytest.mark.parametrize(
    ("id_number", "reason"),
    [
        ("110105194912310021", "check character is 1, should be X"),
        ("11010519491231002", "18 characters"),
        ("11010519490230002X", "does not exist"),
        ("1101051949123100AX", "17 digits"),
        ("110105202701010016", "out of range"),  # born after today
    ],
)
def test_bad_id_numbers_are_rejected(id_number: str, reason: str) -> None:
    (why,) = reasons(f"张三,{id_number},3100029000010000001,H18,100,2026-10")
    assert why.startswith("ID number:") and reason in why


@pytest.mark.parametrize(
    ("item", "amount", "period", "reason"),
    [
        ("X99", "100", "2026-10", "unknown subsidy item 'X99'"),
        ("H18", "0", "2026-10", "amount is zero"),
        ("H18", "", "2026-10", "amount is empty"),
        ("H18", "100001", "2026-10", "above the 100000 fen cap of item H18"),
        ("H18", "100", "2026-13", "must look like YYYY-MM"),
        ("H18", "100", "2026", "must look like YYYY-MM"),
        ("H31", "100", "2026-10-32", "is no date"),
        ("H31", "100", "2026-Q1", "must look like YYYY-MM-DD or YYYY-MM or YYYY"),
        ("H02", "100", "2026-Q1", "must look like YYYY"),
        ("H02", "100", "1999", "out of range"),
        ("H18", "100", "2028-01", "out of range"),
    ],
)
def test_each_bad_field_is_rejected_with_its_reason(
    item: str, amount: str, period: str, reason: str
) -> None:
    (why,) = reasons(f"{ZHANG},{item},{amount},{period}")
    assert reason in why


def test_card_number_format_and_empty_name() -> None:
    assert reasons("张三,11010519491231002X,31000290000100000,H18,100,2026-10") == [
        "card number must be 19 digits"
    ]
    assert reasons(" ,11010519491231002X,3100029000010000001,H18,100,2026-10") == ["name is empty"]


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("-100", "amount '-100' is negative"),
        ("12.50", "amount '12.50' has a fraction"),
        ("1e3", "is not a whole number of fen"),
        ("１００", "full-width or other non-ASCII"),
    ],
)
def test_a_hostile_amount_refuses_the_whole_file_naming_the_line(amount: str, reason: str) -> None:
    with pytest.raises(RosterFormatError, match=f"line 3: .*{reason}"):
        check(f"{ZHANG},H18,100,2026-10", f"{LI},H18,{amount},2026-10")


def test_a_row_lists_every_reason_and_short_rows_are_rejected() -> None:
    why = reasons("张三,110105194912310021,123,X99,5,10/2026")
    assert len(why) == 4
    (short,) = reasons("张三,11010519491231002X,3100029000010000001,H18,100")
    assert short == "row has 5 fields, expected 6"


def test_duplicates_are_rejected_after_the_first_and_name_it() -> None:
    report = check(
        f"{ZHANG},H18,20000,2026-10",
        f"{LI},H18,20000,2026-10",
        f"{ZHANG},农村分散供养五保户补助资金,15000,2026-10",  # same item by name, same period
        f"{ZHANG},H18,20000,2026-11",  # another month: fine
    )
    assert [line.row for line in report.lines] == [2, 3, 5]
    (dup,) = report.rejected
    assert dup.row == 4 and dup.reasons == ("duplicate of row 2 (same ID number, item and period)",)


def test_one_person_one_card_within_the_roster() -> None:
    report = check(
        f"{ZHANG},H18,100,2026-10",
        "张三,11010519491231002X,3100029000010000009,H18,100,2026-11",
        "李四,110101199003074514,3100029000010000001,H18,100,2026-10",
    )
    assert [line.row for line in report.lines] == [2]
    assert report.rejected[0].reasons == (
        "ID number is listed with card 3100029000010000001 in row 2",
    )
    assert report.rejected[1].reasons == (
        "card 3100029000010000001 is listed for another ID number in row 2",
    )


def test_cards_are_checked_against_the_registry(clock) -> None:  # type: ignore[no-untyped-def]
    registry = SqliteCardRegistry(clock=clock, first_sequence=DEFAULT_FIRST_SEQUENCE)
    zhang = Applicant("张三", "11010519491231002X")
    number = registry.begin_issue(SHANGHAI, zhang, bytes(8)).card_number
    registry.activate(number)
    other = registry.begin_issue(
        SHANGHAI, Applicant("李四", "110101199003074514"), bytes(7) + b"\1"
    )
    lookup = registry_lookup(registry.get)
    ok = check(f"张三,11010519491231002X,{number},H18,100,2026-10", cards=lookup)
    assert ok.rejected == []
    assert reasons(
        f"张三,11010519491231002X,{other.card_number},H18,100,2026-10", cards=lookup
    ) == [f"card {other.card_number} is pending, not active"]
    assert reasons("张三,11010519491231002X,3100029099999999999,H18,100,2026-10", cards=lookup) == [
        "card 3100029099999999999 is not in the card registry"
    ]
    registry.activate(other.card_number)
    (why,) = reasons(f"张三,11010519491231002X,{other.card_number},H18,100,2026-10", cards=lookup)
    assert why == f"card {other.card_number} belongs to another ID number than the payee's"


def test_header_and_encoding() -> None:
    with pytest.raises(RosterFormatError, match="header"):
        parse_roster("name,id,card\n")
    with pytest.raises(RosterFormatError, match="empty"):
        parse_roster("")
    text = f"{HEADER}\n{ZHANG},H18,100,2026-10\n"
    for raw in (text.encode("gb18030"), b"\xef\xbb\xbf" + text.encode("utf-8")):
        (row,) = parse_roster(decode_roster(raw))
        assert row.row == 2 and row.amount_fen == 100
        assert row.fields == {
            "name": "张三",
            "id_number": "11010519491231002X",
            "card_number": "3100029000010000001",
            "item": "H18",
            "amount": "100",
            "period": "2026-10",
        }
    assert parse_roster(f"{HEADER}\n\n , \n{ZHANG},H18,1,2026-10\n")[0].row == 4  # blanks


def test_the_publication_listing_masks_names_and_id_numbers() -> None:
    report = check(f"{ZHANG},H18,20000,2026-10", f"{LI},H02,123456,2026")
    rows = publication_rows(report)
    assert rows[0] == {
        "no": 1,
        "row": 2,
        "township": "",
        "village": "",
        "name": "张*",
        "id_number": "110105********002X",
        "item": "农村分散供养五保户补助资金",
        "amount_fen": 20_000,
        "period": "2026-10",
    }
    text = publication_csv(report)
    assert (
        text.splitlines()[0] == "序号,行,乡镇(街道),村(社区),姓名,身份证号,补贴项目,金额(元),期间"
    )
    assert "110101********4514" in text and "1234.56" in text and "200.00" in text
    assert "11010519491231002X" not in text and "3100029000010000001" not in text
    assert "张三" not in text and "李四" not in text


def test_catalogues_load_from_toml_and_json_and_refuse_nonsense(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert CATALOGUE.lookup("H31").period == "once"  # type: ignore[union-attr]
    assert CATALOGUE.lookup("城镇廉租住房保障租赁补贴").code == "H01"  # type: ignore[union-attr]
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "categories": [
                    {
                        "code": "t",
                        "name": "交通",
                        "items": [
                            {"code": "T1", "name": "乘车补贴", "period": "month", "max_fen": 100}
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    assert load_catalogue(path).items["T1"].max_fen == 100
    for bad in (
        {"categories": []},
        {
            "categories": [
                {"code": "t", "name": "x", "items": [{"code": "A", "name": "a", "period": "week"}]}
            ]
        },
        {
            "categories": [
                {
                    "code": "t",
                    "name": "x",
                    "items": [{"code": "A", "name": "a", "period": "year", "max_fen": -1}],
                }
            ]
        },
        {
            "categories": [
                {
                    "code": "t",
                    "name": "x",
                    "items": [
                        {"code": "A", "name": "a", "period": "year"},
                        {"code": "A", "name": "b", "period": "year"},
                    ],
                }
            ]
        },
    ):
        with pytest.raises(CatalogueError):
            Catalogue.from_dict(bad)


CN = (
    "姓名,身份证号码,一卡通卡号,补贴项目,金额(元),发放期间,"
    "户主姓名,户主身份证号码,乡镇(街道),村(社区),主管部门"
)


def test_the_chinese_header_takes_yuan_households_and_places_in_gbk_and_xlsx() -> None:
    import io

    import openpyxl

    from gateway.subsidy.roster import load_roster

    text = (
        f"{CN}\n"
        f"{ZHANG},城市居民最低生活保障资金,580.5,2026-10,,,城关镇,东街社区,民政局\n"
        f"王五,110101199003074514,3100029000010000001,粮食直补资金,120,2026,"
        "张三,11010519491231002X,城关镇,东街社区,财政局\n"
    )
    book = openpyxl.Workbook()
    for line in text.splitlines():
        cells: list = line.split(",")
        if cells[4] == "580.5":
            cells[4] = 580.5  # a number cell, as Excel keeps it
        book.active.append(cells)
    out = io.BytesIO()
    book.save(out)
    for raw in (text.encode("gbk"), text.encode("utf-8"), out.getvalue()):
        report = validate_roster(load_roster(raw), CATALOGUE, today=TODAY)
        assert report.rejected == [], report.to_json()
        low, grain = report.lines
        assert (low.item.code, low.amount_fen, low.township, low.department) == (
            "H21",
            58_050,
            "城关镇",
            "民政局",
        )
        # a production item is paid to the head of household, on the head's card
        assert (grain.name, grain.id_number, grain.member_name) == (
            "张三",
            "11010519491231002X",
            "王五",
        )
        assert grain.amount_fen == 12_000 and grain.item.per_household


def test_exclusive_items_in_one_roster_are_refused() -> None:
    report = check(f"{ZHANG},H20,30000,2026-10", f"{ZHANG},H21,30000,2026-10")
    assert report.rejected[0].reasons == (
        "excluded by row 2: H20 and H21 are never paid to one person in one period",
    )


def test_the_default_catalogue_is_henans_31_items() -> None:
    assert len(CATALOGUE.items) == 31
    assert CATALOGUE.items["H20"].excludes == {"H21"}
    assert CATALOGUE.items["H21"].excludes == {"H20"}
    assert CATALOGUE.items["H02"].per_household and CATALOGUE.items["H31"].period == "once"
    assert CATALOGUE.items["H14"].payee == "institution"
