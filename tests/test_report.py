"""The campaign report (SPEC §10): every figure equals the recorded decisions it stands
for, to the fen — recomputed here independently from the store's raw log lines — under
every filter, with voids reversed on the void's day; the page loads nothing and escapes
everything; the command line's mistakes fail early with one sentence."""

from __future__ import annotations

import json
import re
import shutil
import tracemalloc
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from click.testing import CliRunner, Result
from report_support import (
    NO_CAMPAIGN_KEY,
    beijing_day,
    build_campaign_store,
    expected_figures,
    export_rows,
    exported_key_figures,
    nonzero,
    raw_records,
    synthetic_store,
)

import audit
from pricecalc import Calculator
from pricecalc.books.report import (
    CampaignFigures,
    Cut,
    ReportHeader,
    aggregate,
    collect,
    render_report,
)
from pricecalc.books.report.aggregate import NET_SUBSIDY_OUTLAY, NO_CAMPAIGN
from pricecalc.books.report.page import key_figure, key_figure_names, report_tables
from pricecalc.books.selection import Filters, period_bound
from pricecalc.books.statement import build_statement
from pricecalc.cli import cli
from pricecalc.plugins import load_registry
from pricecalc.policy import Policy


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """The example campaign over six Beijing days, with five voids on the last one."""
    path = tmp_path_factory.mktemp("campaign") / "audit.jsonl"
    voided = build_campaign_store(path)
    return path, voided


@pytest.fixture
def store(campaign: tuple[Path, dict[str, int]]) -> Iterator[audit.AuditStore]:
    opened = audit.open_store(str(campaign[0]))
    yield opened
    opened.close()


def figures_of(store: audit.AuditStore, **filters: Any) -> CampaignFigures:
    return collect(store, Cut(Filters(**filters), store.tree_size()))


def as_plain(figures: CampaignFigures) -> dict[str, Any]:
    """The aggregates in the shape :func:`expected_figures` gives."""
    return {
        "records": figures.records,
        "counts": dict(figures.counts),
        "rejections": dict(figures.rejections),
        "split_by_category": nonzero(figures.split_by_category),
        "split_by_day": nonzero(figures.split_by_day),
        "settled_by_day": nonzero(figures.settled_by_day),
        "compensation": nonzero(figures.compensation),
        "clawback_by_category": nonzero(figures.clawback_by_category),
        "merchants": nonzero({m: dict(t.sums) for m, t in figures.merchants.items()}),
    }


def recomputed(path: Path, **kw: Any) -> dict[str, Any]:
    """:func:`expected_figures` of the store's raw log lines, zeros left out."""
    expected = expected_figures(raw_records(path), **kw)
    return {
        name: value if isinstance(value, int) else dict(value)
        if name in ("counts", "rejections") else nonzero(value)
        for name, value in expected.items()
    }


def check_figure_by_figure(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for name in expected:
        assert actual[name] == expected[name], name


def test_every_figure_equals_the_records_recomputed(
    campaign: tuple[Path, dict[str, int]], store: audit.AuditStore
) -> None:
    """SPEC §10: counts by kind and status, rejections by code, the split's two totals by
    category and by day, refunds and payouts by day and settlement, compensation by
    standard, clawbacks by category, deductions per merchant — each equal to the records."""
    path, voided = campaign
    figures = figures_of(store)
    assert len(voided) == 5 and figures.reversals == 5
    check_figure_by_figure(as_plain(figures), recomputed(path))
    assert figures.records == store.tree_size() == len(raw_records(path))
    assert len({d for d in figures.split_by_day} | set(figures.settled_by_day)) >= 5  # days


def test_headline_totals_equal_the_exported_rows(
    campaign: tuple[Path, dict[str, int]], store: audit.AuditStore, tmp_path: Path
) -> None:
    """The figures agree with `pricecalc audit export --format jsonl` rows: their money
    columns, named as SPEC §10 names the figures, hold approved amounts less those a void
    withdrew (a withdrawn row's are empty), so the sum of a column is the figure."""
    path, _ = campaign
    out = tmp_path / "rows.jsonl"
    done = CliRunner().invoke(cli, ["--audit", str(path), "audit", "export", "-o", str(out),
                                    "--format", "jsonl"])  # fmt: skip
    assert done.exit_code == 0, done.output
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    withdrawn = {r["voids"] for r in rows if r["voids"] is not None}

    assert withdrawn and all(
        r["merchant_subsidy"] is None and r["price_protection_refunds"] is None
        for r in rows if r["seq"] in withdrawn
    )  # fmt: skip

    def total(kind: str, column: str, settlement: str | None = None) -> Decimal:
        chosen = [r for r in rows if r["kind"] == kind and r["status"] == "approved"
                  and (settlement is None or r["settlement"] == settlement)]  # fmt: skip
        return sum((Decimal(r[column]) for r in chosen if r[column] is not None), Decimal(0))

    figures = figures_of(store)
    assert figures.split_total("merchant_subsidy_total") == total(
        "subsidy_split", "merchant_subsidy"
    )
    assert figures.split_total("platform_subsidy_total") == total(
        "subsidy_split", "platform_subsidy"
    )
    for settlement in ("deduct_from_payout", "merchant_pays"):
        assert figures.settled_total("price_protection", settlement) == total(
            "price_protection", "price_protection_refunds", settlement
        )
    assert figures.settlement.sums["subsidy_clawback"] == total(
        "forwarding_clawback", "subsidy_clawback"
    )
    assert sum(figures.compensation.values()) == total(
        "counterfeit_compensation", "counterfeit_compensation"
    )
    assert figures.records == len(rows)


def test_key_figures_per_campaign_equal_the_export(
    campaign: tuple[Path, dict[str, int]], store: audit.AuditStore
) -> None:
    """SPEC §10 (issue 24): with several campaigns in the period, each campaign's key
    figures — every figure by its SPEC §10 name, the settlement columns, the platform's
    net subsidy outlay — and the whole report's equal independent Decimal sums over
    `pricecalc audit export` (approved rows no void withdrew), to the fen."""
    expected = exported_key_figures(export_rows(campaign[0]))
    figures = figures_of(store)
    assert NO_CAMPAIGN == NO_CAMPAIGN_KEY
    assert set(figures.campaigns) == set(expected) - {""} == {
        "双11-2026", "双12-2026", NO_CAMPAIGN,
    }  # fmt: skip
    names = [name for name, _ in key_figure_names(figures)]
    assert names == [
        "merchant_subsidy", "platform_subsidy", "price_protection_refunds",
        "counterfeit_refunds", "counterfeit_compensation", "counterfeit_payouts",
        "subsidy_clawback", "deduct_from_payout", "merchant_pays", "net_subsidy_outlay",
        "deductions",
    ]  # fmt: skip
    parts = {"": figures.key_figures(), **figures.campaigns}
    for where, part in parts.items():
        assert part.records == expected[where]["decisions"], where
        for name in names:
            assert key_figure(figures, part, name) == expected[where].get(name, Decimal(0)), (
                where, name,
            )  # fmt: skip
    whole = expected[""]
    assert figures.net_subsidy_outlay() == whole["platform_subsidy"] - whole["subsidy_clawback"]
    assert figures.net_subsidy_outlay() == Decimal("3335.40")  # the example campaign's
    assert expected["双11-2026"]["net_subsidy_outlay"] != Decimal(0)


def test_the_page_shows_the_campaigns_and_the_net_outlay(store: audit.AuditStore) -> None:
    """The page: a key-figures-by-campaign table (one column per campaign) and the net
    subsidy outlay card, named as SPEC §10 names figures; a report of one campaign has no
    such table."""
    figures = figures_of(store)
    page = render_report(figures, _h())
    outlay = figures.net_subsidy_outlay()
    assert (
        f'data-figure="{NET_SUBSIDY_OUTLAY[0]}" data-value="{outlay}">{outlay:,.2f}' in page
    )
    assert "平台补贴净支出 platform net subsidy outlay" in page
    (table,) = [t for t in report_tables(figures, _h()) if t.id == "campaigns"]
    assert [name for name, _ in table.columns] == ["figure", "双11-2026", "双12-2026",
                                                   NO_CAMPAIGN]  # fmt: skip
    assert [row[0].value for row in table.rows][:3] == [
        "decisions", "merchant_subsidy", "platform_subsidy",
    ]  # fmt: skip
    one = figures_of(store, campaign="双11-2026")
    assert "campaigns" not in [t.id for t in report_tables(one, _h())]


def test_every_rejection_code_is_explained_by_its_rule(store: audit.AuditStore) -> None:
    """SPEC §10 (issue 24): each code on the page with its one-line Chinese and English
    explanation, as its rule declares it (`Declarations.explain`) — plugins' codes too."""
    declarations = load_registry(Policy()).declarations()
    figures = collect(store, Cut(Filters(), store.tree_size()), declarations)
    (table,) = [t for t in report_tables(figures, _h()) if t.id == "rejections"]
    assert [name for name, _ in table.columns] == ["code", "rejected", "explain_zh",
                                                   "explain_en"]  # fmt: skip
    assert len(table.rows) == len(figures.rejections) >= 20
    for code, _, zh, en in table.rows:  # two kinds may explain one code each their way
        declared = declarations.explain(code.text, figures.rejection_kinds[code.text])
        assert declared is not None, code.text
        assert (zh.text, en.text) == (declared.zh, declared.en), code.text
    codes = {row[0].text: row for row in table.rows}
    assert (codes["NOT_FORWARDED"][2].text, codes["NOT_FORWARDED"][3].text) == (
        "未检测到转寄", "no forwarding was detected",
    )  # fmt: skip
    assert codes["SHIPPED_LATE"][3].text == "not shipped within 48 hours of payment"  # a plugin's


def test_a_code_no_rule_explains_says_so(tmp_path: Path) -> None:
    """A code no installed rule declares (a plugin since removed) is shown saying so."""
    store = synthetic_store(tmp_path / "s.jsonl", 14)
    figures = collect(store, Cut(Filters(), store.tree_size()))
    (table,) = [t for t in report_tables(figures, _h()) if t.id == "rejections"]
    assert [(r[0].text, r[2].text, r[3].text) for r in table.rows] == [
        ("SOME_CODE", "（规则未说明）", "(no rule installed explains this code)"),
    ]  # fmt: skip


def test_kind_and_standard_labels_come_from_the_declarations(store: audit.AuditStore) -> None:
    """Issue 20: the page names no built-in kind — a kind's label is its rule's, a
    standard's its own; a kind no rule declares shows its name alone."""
    declarations = load_registry(Policy()).declarations()
    assert declarations.kind_label("subsidy_split") == "补贴分摊 subsidy_split"
    assert declarations.kind_label("shipping_check") == "发货时效 shipping_check"
    assert declarations.kind_label("someone_elses") == "someone_elses"
    food = "food_safety_law_art148"
    assert declarations.by_label(food) == f"食品安全法第148条 {food}"
    assert declarations.by_label("platform_10x") == "平台假一赔十 platform_10x"
    figures = collect(store, Cut(Filters(), store.tree_size()), declarations)
    tables = {t.id: t for t in report_tables(figures, _h())}
    assert "假一赔十 counterfeit_compensation" in [r[0].text for r in tables["counts"].rows]
    assert [r[0].text for r in tables["compensation-by-standard"].rows] == [
        "食品安全法第148条 food_safety_law_art148", "平台假一赔十 platform_10x",
    ]  # fmt: skip (the food-safety plugin's standard names itself)
    page = Path(__file__).parent.parent / "pricecalc/books/report/page.py"
    page_source = page.read_text("utf-8")
    for kind in declarations.figures:
        assert f'"{kind}"' not in page_source, kind


def test_the_empty_store(tmp_path: Path) -> None:
    """An empty store: no figures, every table says so, the page still renders."""
    store = audit.open_store(str(tmp_path / "empty.jsonl"))
    figures = collect(store, Cut(Filters(), store.tree_size()))
    assert figures.records == 0 and not figures.counts and figures.top_merchants() == []
    page = render_report(figures, ReportHeader("empty.jsonl", 0, store.root(0).hex(), 0, "0" * 64))
    assert page.count("本期无记录 nothing in this period") == len(report_tables(figures, _h()))
    assert 'data-figure="decisions" data-value="0"' in page


def _h() -> ReportHeader:
    return ReportHeader("s.jsonl", 0, "00", 0, "0" * 64)


@pytest.mark.parametrize("merchant", ["M-1001", "M-1004"])
def test_one_merchant(
    campaign: tuple[Path, dict[str, int]], store: audit.AuditStore, merchant: str
) -> None:
    """--merchant: only that merchant's decisions, and the voids of them (SPEC §7 tags a
    void with the merchant of what it withdraws)."""
    figures = figures_of(store, merchant_id=merchant)
    check_figure_by_figure(as_plain(figures), recomputed(campaign[0], merchant=merchant))
    assert set(figures.merchants) == {merchant}
    assert figures.counts[("shipping_check", "approved")] == 0


def test_the_report_and_every_statement_agree(store: audit.AuditStore) -> None:
    """SPEC §10: the report's per-merchant columns are what each merchant's statement over
    the same records totals, to the fen (both read money through pricecalc.books.settlement)."""
    figures = figures_of(store)
    assert len(figures.merchants) >= 5
    for merchant, totals in figures.merchants.items():
        statement = build_statement(store, merchant)
        assert statement.totals.sums == totals.sums, merchant
        assert statement.totals.rows == totals.rows, merchant


def test_one_campaign(campaign: tuple[Path, dict[str, int]], store: audit.AuditStore) -> None:
    """--campaign: only that campaign's decisions."""
    figures = figures_of(store, campaign="双12-2026")
    check_figure_by_figure(as_plain(figures), recomputed(campaign[0], campaign="双12-2026"))
    assert 0 < figures.records < store.tree_size() // 3


def test_a_period_with_no_decisions(store: audit.AuditStore) -> None:
    """A period before the campaign holds nothing: every figure is empty."""
    figures = figures_of(
        store,
        since=period_bound("2026-10-01", end=False),
        until=period_bound("2026-10-31", end=True),
    )
    assert figures.records == 0 and not figures.split_by_day and not figures.merchants


def test_a_period_of_days(campaign: tuple[Path, dict[str, int]], store: audit.AuditStore) -> None:
    """--since/--until are Beijing days, both ends inclusive (SPEC §10)."""
    since, until = date(2026, 11, 11), date(2026, 11, 13)
    figures = figures_of(
        store,
        since=period_bound(since.isoformat(), end=False),
        until=period_bound(until.isoformat(), end=True),
    )
    check_figure_by_figure(as_plain(figures), recomputed(campaign[0], since=since, until=until))
    assert figures.first_day == since and figures.last_day == until


def test_voids_reverse_on_the_void_day(
    campaign: tuple[Path, dict[str, int]], store: audit.AuditStore
) -> None:
    """SPEC §7/§10: a voided decision's money is reversed on the void's day — the void
    day's report is the same records' report without the voids, less the withdrawn
    decisions' amounts, on that day, under the withdrawn decision's category."""
    path, voided = campaign
    records = {r["seq"]: r for r in raw_records(path)}
    voids = [r for r in records.values() if r["payload"]["kind"] == "void"]
    (voided_on,) = {beijing_day(r["recorded_at"]) for r in voids}
    assert all(beijing_day(records[s]["recorded_at"]) < voided_on for s in voided.values())
    bounds = {"since": period_bound(voided_on.isoformat(), end=False),
              "until": period_bound(voided_on.isoformat(), end=True)}  # fmt: skip
    with_voids = figures_of(store, **bounds)
    without = aggregate(
        (r for r in Cut(Filters(**bounds), store.tree_size()).records(store)
         if r.payload["kind"] != "void"),
        store.record,
    )  # fmt: skip
    assert with_voids.reversals == 5 and without.reversals == 0
    zero = Decimal(0)

    def settled(figures: CampaignFigures, key: tuple[str, str]) -> Decimal:
        return figures.settled_by_day.get(voided_on, {}).get(key, zero)

    for settlement in ("deduct_from_payout", "merchant_pays"):
        withdrawn = records[voided[f"price_protection/{settlement}"]]["payload"]
        amount = Decimal(withdrawn["result"]["refund_total"])
        key = ("price_protection", settlement)
        assert settled(with_voids, key) == settled(without, key) - amount
        merchant = withdrawn["merchant_id"]
        before = without.merchants.get(merchant)
        assert with_voids.merchants[merchant].sums[settlement] == (
            before.sums[settlement] if before else zero
        ) - amount - (
            Decimal(records[voided["counterfeit_compensation"]]["payload"]["result"]
                    ["payout_total"])
            if records[voided["counterfeit_compensation"]]["payload"]["merchant_id"] == merchant
            and records[voided["counterfeit_compensation"]]["payload"]["result"]["settlement"]
            == settlement else zero
        )  # fmt: skip
    split = records[voided["subsidy_split"]]["payload"]
    category = split["input"]["category"]
    for name in ("merchant_subsidy_total", "platform_subsidy_total"):
        was = without.split_by_category.get(category, {}).get(name, zero)
        assert with_voids.split_by_category[category][name] == was - Decimal(split["result"][name])
        day_was = without.split_by_day.get(voided_on, {}).get(name, zero)
        assert with_voids.split_by_day[voided_on][name] == day_was - Decimal(split["result"][name])
    claw = records[voided["forwarding_clawback"]]["payload"]["result"]
    assert with_voids.clawback_by_category[claw["category"]] == without.clawback_by_category.get(
        claw["category"], zero
    ) - Decimal(claw["clawback"])
    counterfeit = records[voided["counterfeit_compensation"]]["payload"]["result"]
    for standard in {line["standard"] for line in counterfeit["lines"] if line["standard"]}:
        paid = sum(Decimal(x["compensation"]) for x in counterfeit["lines"]
                   if x["standard"] == standard)  # fmt: skip
        assert with_voids.compensation[standard] == without.compensation.get(standard, zero) - paid
    # and over the whole period everything but the days nets out: the withdrawn
    # decisions count for nothing (their day shows them, the void's day takes them back)
    whole = figures_of(store)
    kept = aggregate(
        (r for r in store.query() if r.payload["kind"] != "void" and r.seq not in
         set(voided.values())), store.record,
    )  # fmt: skip
    for name in ("split_by_category", "compensation", "clawback_by_category", "merchants"):
        assert as_plain(whole)[name] == as_plain(kept)[name], name
    for name in ("merchant_subsidy_total", "platform_subsidy_total"):
        assert whole.split_total(name) == kept.split_total(name)


HOSTILE = '=HYPERLINK("http://e.invalid")<script>alert("x")</script>&\'"; rm -rf ~ $(id)'


def test_hostile_merchant_ids_and_categories_are_escaped(tmp_path: Path) -> None:
    """A merchant id or category is anybody's text: the page shows it escaped (no markup
    gets through), the statement command quotes it, the CSV defuses a formula."""
    path = tmp_path / "hostile.jsonl"
    with Calculator(str(path)) as calc:
        calc.decide({"kind": "forwarding_clawback", "merchant_id": HOSTILE[:128],
                     "campaign": "<b>c</b>",
                     "input": {"order_id": "FW-1", "category": "手机", "forwarded": True,
                               "platform_subsidy": "20.00", "quantity": 1}})  # fmt: skip
        calc.decide({"kind": "subsidy_split", "merchant_id": "=cmd|' /C calc'!A0",
                     "input": {"list_price": "199", "registration_price": "169",
                               "subsidy_price": "149", "floor_price": "139", "cost_price": "120",
                               "category": "<img src=x onerror=alert(1)>"}})  # fmt: skip
    store = audit.open_store(str(path))
    figures = collect(store, Cut(Filters(), store.tree_size()))
    header = ReportHeader(str(path), 2, store.root().hex(), 2, store.head().hash,
                          merchant="<i>m</i>")  # fmt: skip
    page = render_report(figures, header)
    assert "<script" not in page and "<img" not in page and "<i>m</i>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    (top,) = [t for t in report_tables(figures, header) if t.id == "top-merchants"]
    command = top.rows[0][-1].text
    assert command.startswith("pricecalc --audit ")
    assert "--merchant '=HYPERLINK(\"http://e.invalid\")<script>" in command  # one argument
    assert "--output statement-_HYPERLINK__http___e.invalid___script_" in command
    csv_text = unquote(top.csv_href().split(",", 1)[1])
    assert csv_text.startswith("\ufeff")
    assert '\r\n1,"\'=HYPERLINK(""http://e.invalid"")<script>' in csv_text  # defused


def test_the_page_loads_nothing(
    campaign: tuple[Path, dict[str, int]], store: audit.AuditStore
) -> None:
    """The page opens offline: no script at all, nothing fetched (no src, no link, no
    external url(), no @import, no http(s) address), charts inline SVG."""
    figures = figures_of(store)
    page = render_report(figures, ReportHeader(str(campaign[0]), store.tree_size(),
                                               store.root().hex(), 1, "h"))  # fmt: skip
    lowered = page.lower()
    for banned in ("<script", "src=", "<link", "@import", "url(", "http://", "https://",
                   "<iframe", "<object", "<embed"):  # fmt: skip
        assert banned not in lowered, banned
    assert lowered.count("<svg") >= 6
    links = re.findall(r'href="([^"]*)"', page)
    assert links and all(link.startswith("data:text/csv;charset=utf-8,") for link in links)


def test_every_table_downloads_as_csv(store: audit.AuditStore) -> None:
    """Each table's CSV (UTF-8 with a BOM, Chinese headings) holds the rows shown."""
    figures = figures_of(store)
    tables = report_tables(figures, _h())
    assert [t.id for t in tables] == [
        "campaigns", "counts", "rejections", "split-by-category", "split-by-day", "settled-by-day",
        "compensation-by-standard", "clawback-by-category", "top-merchants",
    ]  # fmt: skip
    for table in tables:
        text = unquote(table.csv_href().split(",", 1)[1])
        assert text.startswith("\ufeff")
        lines = text[1:].split("\r\n")
        assert lines[0].split(",")[0] == table.columns[0][1]
        assert len([x for x in lines[1:] if x]) == len(table.rows)
    (split,) = [t for t in tables if t.id == "split-by-day"]
    column = [c for c, _ in split.columns].index("platform_subsidy")
    assert sum(Decimal(row[column].value or "0") for row in split.rows) == figures.split_total(
        "platform_subsidy_total"
    )


# -- the command line -----------------------------------------------------------------


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_report_command_writes_the_page(
    campaign: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    """`pricecalc report` writes one page; its figures are the aggregation's."""
    out = tmp_path / "report.html"
    done = run("--audit", str(campaign[0]), "report", "--merchant", "M-1002", "-o", str(out))
    assert done.exit_code == 0, done.output
    store = audit.open_store(str(campaign[0]))
    figures = figures_of(store, merchant_id="M-1002")
    assert done.output == (
        f"report of {figures.records} decisions (records up to seq {store.tree_size()}) "
        f"written to {out}\n"
    )
    page = out.read_text(encoding="utf-8")
    deductions = figures.settlement.deductions
    assert f'data-figure="deductions" data-value="{deductions:.2f}"' in page
    assert "pricecalc --audit" in page and "--merchant M-1002" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "."], "Invalid value for '--output': . is a folder; name the page to write, "
                      "e.g. report.html"),
        (["-o", "nope/r.html"], "Invalid value for '--output': the folder nope does not exist"),
        (["-o", "r.html", "--since", "2026-11-12", "--until", "2026-11-11"],
         "--since 2026-11-12 is after --until 2026-11-11: the period is empty"),
        (["-o", "r.html", "--since", "2026-11-31"],
         "Invalid value for '--since': '2026-11-31' is not a date (2026-11-11) or an ISO time "
         "(2026-11-11T10:00)"),
        (["-o", "r.html", "--until", "yesterday"],
         "Invalid value for '--until': 'yesterday' is not a date (2026-11-11) or an ISO time "
         "(2026-11-11T10:00)"),
        (["-o", "r.html", "--checkpoint", "missing.txt"],
         "Invalid value for '--checkpoint': cannot read missing.txt: no such file or directory"),
        (["-o", "r.html", "--signing-key", "missing.key"],
         "Invalid value for --signing-key: no signing key at missing.key"),
    ],
)  # fmt: skip
def test_mistakes_fail_early_in_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    """Exit 2, one sentence, no traceback, nothing written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRICECALC_AUDIT_SIGNING_KEY", raising=False)
    done = run("--audit", "s.jsonl", "report", *args)
    assert done.exit_code == 2
    assert done.output.splitlines()[-1] == f"Error: {message}"
    assert not (tmp_path / "r.html").exists()


def _keygen(tmp_path: Path) -> Path:
    key = tmp_path / "k.key"
    assert run("audit", "keygen", "example.invalid/report-test", "-o", str(key)).exit_code == 0
    return key


def test_a_foreign_checkpoint_is_refused(
    campaign: tuple[Path, dict[str, int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A published checkpoint of another store (SPEC §9) is refused, exit 2."""
    monkeypatch.chdir(tmp_path)
    key = _keygen(tmp_path)
    with Calculator("other.jsonl") as calc:
        calc.decide({"kind": "forwarding_clawback", "input": {
            "order_id": "FW-9", "category": "手机", "forwarded": True,
            "platform_subsidy": "20.00", "quantity": 1}})  # fmt: skip
    assert run("--audit", "other.jsonl", "audit", "checkpoint", "--signing-key", str(key),
               "-o", "cp.txt").exit_code == 0  # fmt: skip
    done = run("--audit", str(campaign[0]), "report", "--checkpoint", "cp.txt", "-o", "r.html")
    assert done.exit_code == 2
    assert done.output.splitlines()[-1] == (
        "Error: Invalid value for '--checkpoint': cp.txt is not of this store "
        "(its root at size 1 differs, or the store is smaller)"
    )


def test_the_report_is_cut_at_the_checkpoint_size(
    campaign: tuple[Path, dict[str, int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a published checkpoint, the report covers records up to its tree size —
    records appended since are left out — and shows the note; with --signing-key it
    signs the tree it was cut from, the store's whole tree."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRICECALC_AUDIT_SIGNING_KEY", raising=False)
    store_path = tmp_path / "grown.jsonl"
    shutil.copy(campaign[0], store_path)
    key = _keygen(tmp_path)
    assert run("--audit", str(store_path), "audit", "checkpoint", "--signing-key", str(key),
               "-o", "cp.txt").exit_code == 0  # fmt: skip
    size = audit.open_store(str(store_path)).tree_size()
    with Calculator(str(store_path)) as calc:
        calc.decide({"kind": "forwarding_clawback", "merchant_id": "M-1001", "input": {
            "order_id": "FW-LATE", "category": "手机", "forwarded": True,
            "platform_subsidy": "300.00", "quantity": 1}})  # fmt: skip
    done = run("--audit", str(store_path), "report", "--checkpoint", "cp.txt", "-o", "r.html")
    assert done.exit_code == 0, done.output
    assert f"(records up to seq {size})" in done.output
    page = Path("r.html").read_text(encoding="utf-8")
    assert Path("cp.txt").read_text(encoding="utf-8").splitlines()[2] in page
    assert f'data-figure="tree-size" data-value="{size}"' in page
    store = audit.open_store(str(store_path))
    cut = collect(store, Cut(Filters(), size))
    clawback = cut.settlement.sums["subsidy_clawback"]
    assert f'data-figure="subsidy_clawback" data-value="{clawback:.2f}"' in page
    assert "--checkpoint cp.txt --output statement-M-1001.xlsx" in page
    signed = run("--audit", str(store_path), "report", "--signing-key", str(key), "-o", "s.html")
    assert signed.exit_code == 0, signed.output
    assert f"(records up to seq {size + 1})" in signed.output
    assert "example.invalid/report-test\n" in Path("s.html").read_text(encoding="utf-8")


# -- memory ----------------------------------------------------------------------------


def peak_memory(store: audit.AuditStore) -> tuple[int, CampaignFigures]:
    tracemalloc.start()
    try:
        figures = collect(store, Cut(Filters(), store.tree_size()))
        return tracemalloc.get_traced_memory()[1], figures
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_does_not_grow_with_the_store(tmp_path: Path) -> None:
    """One streaming pass: the aggregation's peak traced memory over 10⁵ records is at
    most 1.2x its peak over 10⁴ (only per-day, category, code and merchant counters)."""
    small = synthetic_store(tmp_path / "small.jsonl", 10_000)
    large = synthetic_store(tmp_path / "large.jsonl", 100_000)
    peak_memory(small)  # warm caches (imports, interned text) before measuring
    small_peak, small_figures = peak_memory(small)
    large_peak, large_figures = peak_memory(large)
    assert small_figures.records == 10_000 and large_figures.records == 100_000
    assert large_figures.settlement.sums["subsidy_clawback"] == Decimal("20.00") * sum(
        1 for i in range(100_000) if i % 4 == 3 and i % 7 != 0
    )
    assert large_peak <= 1.2 * small_peak, (small_peak, large_peak)
