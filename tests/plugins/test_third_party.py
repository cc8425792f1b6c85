"""The plugin contract, proved by a stranger: a throwaway third-party plugin (STYLE:
first-party plugins are found "exactly as a stranger's plugin would be"; SPEC §3 "Plugins
may add types", §4, §5, §6, §7).

The test writes a complete small plugin into a temporary directory — its own
``pyproject.toml`` (hatchling) with an entry point in the ``pricecalc`` group, and one
module implementing every hook — then installs it into the running virtual environment
with ``pip install --no-deps --no-build-isolation --no-index`` (offline: hatchling comes
with the dev extra) and uninstalls it afterwards, whatever happened. Nothing in pricecalc
changes; the plugin must be picked up through its distribution's metadata alone:

* its decision kind ``member_points`` (a fresh ``load_registry()``; ``pricecalc decide``
  in a subprocess, recorded with the plugin's name and version in the audit record);
* its offer types ``member_price`` (stage ``lower_price``) and ``member_coupon``
  (``order_discount`` in its own group, stacking with the coupon) in a real 价保 claim;
* its compensation standard, clawback category and policy section (overridable by a
  policy file);
* its command ``pricecalc member-points``, and its row in ``pricecalc plugins --json``;
* ``--disable-plugin member_club`` and ``[plugins] disabled`` make all of it unknown;
* when it misbehaves (an environment variable it reads makes its import fail, a hook
  raise or return garbage, or a rule return a float) the command line says so in one
  sentence naming the plugin, exits 1, and records nothing.

Robustness: the distribution name is one no real project uses and is fixed, so a leftover
of a run that was killed is replaced (and removed first); a file lock serialises
concurrent runs of this module on one machine; the plugin is uninstalled in the fixture's
``finally``.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from filelock import FileLock

import audit
import pricecalc
from pricecalc import hookspecs
from pricecalc.calculator import AUDIT_KEY_ENV
from pricecalc.cli import AUDIT_ENV
from pricecalc.plugins import ENTRY_POINT_GROUP, load_registry

pytestmark = pytest.mark.slow

DIST = "pricecalc-throwaway-member-club"
MODULE = "pricecalc_throwaway_member_club"
PLUGIN = "member_club"  # the entry point's name: the plugin's name everywhere
VERSION = "0.4.2"
BREAK_ENV = "PRICECALC_MEMBER_CLUB_BREAK"
HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("pricecalc_"))
NOW = datetime(2026, 11, 13, 2, 0, tzinfo=UTC)
LOCK = Path(tempfile.gettempdir()) / "pricecalc-third-party-plugin-test.lock"

PYPROJECT = f"""\
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "{DIST}"
version = "{VERSION}"
description = "A throwaway pricecalc plugin (tests/plugins/test_third_party.py)."
requires-python = ">=3.11"
dependencies = ["chaozhigou-pricecalc>=0.1.0"]

[project.entry-points.pricecalc]
{PLUGIN} = "{MODULE}"

[tool.hatch.build.targets.wheel]
packages = ["{MODULE}"]
"""

SOURCE = textwrap.dedent(
    '''\
    """member_club — a third party's pricecalc plugin: member points, member prices, a
    member guarantee, one more clawback category and a command."""

    from __future__ import annotations

    import json
    import os
    from collections.abc import Iterable, Mapping
    from datetime import datetime
    from decimal import Decimal
    from importlib import metadata
    from typing import Any

    import attrs
    import click

    from pricecalc import InvalidInput, Outcome, PolicyError, Reason, hookimpl
    from pricecalc.fields import Fields
    from pricecalc.money import ZERO, fen, fmt, to_decimal
    from pricecalc.offers import COMMON_KEYS, OfferType, Window, check_keys
    from pricecalc.policy import PolicyView
    from pricecalc.registry import (
        DEDUCT_FROM_PAYOUT,
        CompensationLine,
        CompensationStandard,
        MoneyFigure,
        ReasonCode,
        Rule,
        RuleContext,
    )

    DIST = "@DIST@"
    KIND = "member_points"
    SECTION = "member_club"
    BREAK_ENV = "@BREAK_ENV@"


    def breaking(how: str) -> bool:
        return os.environ.get(BREAK_ENV) == how


    if breaking("import"):
        raise ImportError("No module named 'member_db'")


    # -- the decision kind -------------------------------------------------------------
    @attrs.frozen
    class PointsInput:
        order_id: str
        points: int
        order_total: Decimal


    def parse_points(f: Fields, ctx: RuleContext) -> PointsInput:
        return PointsInput(
            f.string("order_id"),
            f.integer("points", minimum=0),
            f.amount("order_total", positive=True),
        )


    def policy_number(policy: PolicyView, key: str) -> Decimal:
        value = policy.get(SECTION, key)
        try:
            number = to_decimal(value, f"{SECTION}.{key}")
        except (InvalidInput, TypeError) as exc:
            raise PolicyError(f"policy: {SECTION}.{key} must be a number, got {value!r}") from exc
        if number <= 0:
            raise PolicyError(f"policy: {SECTION}.{key} must be greater than 0, got {value!r}")
        return number


    def redeem(inp: PointsInput, ctx: RuleContext) -> Outcome:
        per_yuan = policy_number(ctx.policy, "points_per_yuan")
        minimum = policy_number(ctx.policy, "minimum_points")
        share = policy_number(ctx.policy, "max_share")
        value = fen(Decimal(inp.points) / per_yuan)  # named rounding step: half up to the fen
        cap = fen(inp.order_total * share)
        reasons: tuple[Reason, ...] = ()
        if inp.points < minimum:
            reasons = (
                Reason(
                    "POINTS_BELOW_MINIMUM",
                    f"{inp.points} points is below the minimum of {minimum} points",
                ),
            )
        redeemed = ZERO if reasons else min(value, cap)
        if breaking("decide"):
            return Outcome(result={"redeemed": float(redeemed)})  # garbage: a float
        return Outcome(
            result={
                "order_id": inp.order_id,
                "points": inp.points,
                "value": fmt(value),
                "cap": fmt(cap),
                "redeemed": fmt(redeemed),
            },
            reasons=reasons,
        )


    RULE = Rule(
        kind=KIND,
        rule_set=DIST,
        version=metadata.version(DIST),
        parse=parse_points,
        decide=redeem,
        description="Member points: points / points_per_yuan off, at most max_share of it",
        figures=(
            MoneyFigure(
                "member_points_redeemed", "积分抵扣", "member points redeemed", "redeemed",
                feeds=DEDUCT_FROM_PAYOUT,
            ),
        ),
        codes=(
            ReasonCode("POINTS_BELOW_MINIMUM", "积分低于最低使用数", "points below the minimum"),
        ),
    )


    # -- offer types ---------------------------------------------------------------------
    @attrs.frozen
    class MemberPrice:
        sku: str
        unit_price: Decimal
        window: Window

        def change_times(self) -> tuple[datetime, ...]:
            return self.window.starts()


    def parse_member_price(f: Fields) -> MemberPrice:
        check_keys(f, COMMON_KEYS | {"sku", "unit_price"})
        return MemberPrice(
            f.string("sku"), f.amount("unit_price", positive=True), Window.from_fields(f)
        )


    @attrs.frozen
    class MemberCoupon:
        amount: Decimal
        threshold: Decimal
        window: Window

        def change_times(self) -> tuple[datetime, ...]:
            return self.window.starts()

        def discount(self, goods_total: Decimal) -> Decimal:
            return self.amount if goods_total >= self.threshold else ZERO


    def parse_member_coupon(f: Fields) -> MemberCoupon:
        check_keys(f, COMMON_KEYS | {"amount", "threshold"})
        return MemberCoupon(
            f.amount("amount", positive=True), f.amount("threshold"), Window.from_fields(f)
        )


    OFFER_TYPES = [
        OfferType("member_price", "lower_price", parse_member_price),
        OfferType("member_coupon", "order_discount", parse_member_coupon, group="member_club"),
    ]


    # -- a compensation standard ---------------------------------------------------------
    def member_guarantee(line: CompensationLine, policy: PolicyView) -> Decimal | None:
        if line.category != "会员专享":
            return None
        return max(fen(12 * line.paid), Decimal("800.00"))


    STANDARD = CompensationStandard("member_club_guarantee", member_guarantee)


    # -- the hooks -------------------------------------------------------------------------
    @hookimpl
    def pricecalc_rules() -> Iterable[Rule]:
        if breaking("hook"):
            raise RuntimeError("the member database is unreachable")
        return [RULE]


    @hookimpl
    def pricecalc_offer_types() -> Iterable[OfferType]:
        if breaking("garbage"):
            return "member_price"  # type: ignore[return-value]
        return list(OFFER_TYPES)


    @hookimpl
    def pricecalc_compensation_standards() -> Iterable[CompensationStandard]:
        return [STANDARD]


    @hookimpl
    def pricecalc_clawback_categories() -> Iterable[str]:
        return ["智能手表"]


    @hookimpl
    def pricecalc_policy_defaults() -> Mapping[str, Mapping[str, Any]]:
        return {SECTION: {"points_per_yuan": 100, "minimum_points": 100, "max_share": "0.3"}}


    @hookimpl
    def pricecalc_register_commands(cli: click.Group) -> None:
        @cli.command(name="member-points")
        @click.option("--order-id", required=True, metavar="ID")
        @click.option("--points", required=True, metavar="N", help="Points to redeem.")
        @click.option("--order-total", required=True, metavar="AMOUNT")
        @click.option("--request-id", metavar="ID")
        @click.pass_obj
        def member_points(
            app: Any, order_id: str, points: str, order_total: str, request_id: str | None
        ) -> None:
            """Redeem member points against an order (the member_club plugin).

            Example:

            \\b
                pricecalc member-points --order-id O-1 --points 1250 --order-total 30.00
            """
            request: dict[str, Any] = {
                "kind": KIND,
                "input": {"order_id": order_id, "points": points, "order_total": order_total},
            }
            if request_id:
                request["request_id"] = request_id
            decision = app.calculator().decide(request)
            click.echo(json.dumps(decision.to_dict(), ensure_ascii=False))
    '''
).replace("@DIST@", DIST).replace("@BREAK_ENV@", BREAK_ENV)


# -- installing and removing the plugin ------------------------------------------------
def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def is_installed() -> bool:
    try:
        metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        return False
    return True


def uninstall() -> None:
    """Remove the plugin (a no-op when absent) and forget its module in this process."""
    pip("uninstall", "--yes", DIST)
    importlib.invalidate_caches()
    for name in [m for m in sys.modules if m == MODULE or m.startswith(MODULE + ".")]:
        del sys.modules[name]


def write_plugin(root: Path) -> Path:
    project = root / "member-club"
    (project / MODULE).mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (project / MODULE / "__init__.py").write_text(SOURCE, encoding="utf-8")
    return project


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The plugin, installed into this virtual environment for the module's tests."""
    project = write_plugin(tmp_path_factory.mktemp("third_party"))
    with FileLock(str(LOCK), timeout=600):
        try:
            uninstall()  # a leftover of a run that was killed
            done = pip(
                "install",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--no-cache-dir",
                str(project),
            )
            assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
            importlib.invalidate_caches()
            yield project
        finally:
            uninstall()
            assert not is_installed(), f"{DIST} could not be uninstalled"


# -- running the command line ----------------------------------------------------------
def pricecalc_command() -> list[str]:
    script = Path(sys.executable).with_name("pricecalc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pricecalc"]


def run(
    store: Path,
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``pricecalc --audit STORE ARGS…`` in a fresh process, as a user would run it."""
    environ = {
        k: v for k, v in os.environ.items() if k not in {AUDIT_ENV, AUDIT_KEY_ENV, BREAK_ENV}
    }
    environ.update(env or {})
    return subprocess.run(
        [*pricecalc_command(), "--audit", str(store), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        cwd=store.parent,
        timeout=120,
        check=False,
    )


def decide(store: Path, request: Mapping[str, Any], *options: str, **kw: Any) -> Any:
    done = run(store, *options, "decide", stdin=json.dumps(request, ensure_ascii=False), **kw)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def record(store: Path, request_id: str) -> Mapping[str, Any]:
    opened = audit.open_store(str(store))
    try:
        found = opened.get(request_id)
    finally:
        opened.close()
    assert found is not None, f"no audit record for {request_id}"
    return found.payload


def head(store: Path) -> tuple[int, str]:
    opened = audit.open_store(str(store))
    try:
        checkpoint = opened.head()
    finally:
        opened.close()
    return checkpoint.seq, checkpoint.hash


def points(request_id: str = "mp-1", points: int = 1250) -> dict[str, Any]:
    return {
        "kind": "member_points",
        "request_id": request_id,
        "input": {"order_id": "O-7", "points": points, "order_total": "30.00"},
    }


def claim(offers: Sequence[Mapping[str, Any]], request_id: str = "pp-1") -> dict[str, Any]:
    """The SPEC §3 order (A × 2 at 100.00, paid 11-11T10:00, a 10.00 coupon over 100.00
    throughout), claimed on 11-13 with the given offers."""
    return {
        "kind": "price_protection",
        "request_id": request_id,
        "input": {
            "order_id": "O-1",
            "paid_at": "2026-11-11T10:00",
            "claimed_at": "2026-11-13T10:00",
            "order_status": "paid",
            "event": {"start": "2026-11-10T00:00", "end": "2026-11-12T23:59:59"},
            "lines": [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00"}],
            "offers": list(offers),
        },
    }


COUPON_10 = {"type": "coupon", "amount": "10.00", "threshold": "100.00"}
MEMBER_85 = {"type": "member_price", "sku": "A", "unit_price": "85.00", "start": "2026-11-11T15:00"}
MEMBER_COUPON_5 = {
    "type": "member_coupon",
    "amount": "5.00",
    "threshold": "150.00",
    "start": "2026-11-11T16:00",
}
EXPECTED_ROW = {"name": PLUGIN, "version": VERSION, "kinds": ["member_points"], "hooks": HOOKS}


# -- the Python API ----------------------------------------------------------------------
def test_the_plugin_is_a_real_distribution_outside_pricecalc(installed: Path) -> None:
    """The plugin is installed from its own directory, with its own version, and its entry
    point is in the ``pricecalc`` group: pricecalc's source is not involved."""
    dist = metadata.distribution(DIST)
    assert dist.version == VERSION
    (entry,) = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    assert (entry.name, entry.value) == (PLUGIN, MODULE)
    module = importlib.import_module(MODULE)
    assert module.__file__ is not None
    assert Path(pricecalc.__file__).parent not in Path(module.__file__).parents


def test_a_fresh_registry_sees_every_contribution(installed: Path) -> None:
    """``load_registry()`` attributes each contribution to the entry point's name, and the
    plugin's version is its distribution's."""
    registry = load_registry()
    assert registry.rules["member_points"].plugin == PLUGIN
    assert registry.rules["member_points"].item.version == VERSION
    assert {n: c.plugin for n, c in registry.offer_types.items() if c.plugin == PLUGIN} == {
        "member_price": PLUGIN,
        "member_coupon": PLUGIN,
    }
    assert [(c.item.name, c.plugin) for c in registry.standards if c.plugin == PLUGIN] == [
        ("member_club_guarantee", PLUGIN)
    ]
    assert registry.clawback_categories["智能手表"] == PLUGIN
    assert registry.policy_defaults["member_club"] == {
        "points_per_yuan": 100,
        "minimum_points": 100,
        "max_share": "0.3",
    }
    assert registry.plugin_versions[PLUGIN] == VERSION
    assert list(registry.hooks_by_plugin[PLUGIN]) == HOOKS
    assert len(HOOKS) == 6


def test_python_api_decides_the_new_kind(installed: Path) -> None:
    """The new kind decides with the plugin's policy defaults, recorded in the decision:
    1250 points at 100 a yuan = 12.50, capped at 0.3 × 30.00 = 9.00."""
    d = pricecalc.evaluate(points(), now=NOW, registry=load_registry())
    assert (d.status, d.rule_set, d.rule_version) == ("approved", DIST, VERSION)
    assert d.result == {
        "order_id": "O-7",
        "points": 1250,
        "value": "12.50",
        "cap": "9.00",
        "redeemed": "9.00",
    }
    assert d.plugins == {PLUGIN: VERSION}
    assert d.policy == {"member_club": {"points_per_yuan": 100, "minimum_points": 100,
                                        "max_share": "0.3"}}
    rejected = pricecalc.evaluate(points(points=99), now=NOW, registry=load_registry())
    assert rejected.status == "rejected"
    assert [r.code for r in rejected.reasons] == ["POINTS_BELOW_MINIMUM"]
    assert rejected.result["redeemed"] == "0.00"


def test_its_compensation_standard_and_clawback_category(installed: Path) -> None:
    """SPEC §4/§5 "plugins may add": the member guarantee wins for its category (12 ×
    39.90 = 478.80 < 800.00), and 智能手表 is covered by the clawback, naming the plugin."""
    registry = load_registry()
    comp = pricecalc.evaluate(
        {
            "kind": "counterfeit_compensation",
            "input": {
                "order_id": "O-3",
                "confirmed": True,
                "lines": [{"line_id": "L1", "paid_amount": "39.90", "category": "会员专享"}],
            },
        },
        now=NOW,
        registry=registry,
    )
    assert comp.result["lines"][0] == {
        "line_id": "L1",
        "refund": "39.90",
        "compensation": "800.00",
        "total": "839.90",
        "standard": "member_club_guarantee",
    }
    assert comp.plugins == {"builtin": "0.3.0", PLUGIN: VERSION}
    clawback = pricecalc.evaluate(
        {
            "kind": "forwarding_clawback",
            "input": {
                "order_id": "O-4",
                "category": "智能手表",
                "platform_subsidy": "30.00",
                "quantity": 2,
                "forwarded": True,
            },
        },
        now=NOW,
        registry=registry,
    )
    assert (clawback.status, clawback.result["clawback"]) == ("approved", "60.00")
    assert clawback.result["covered_by"] == PLUGIN
    assert clawback.plugins == {"builtin": "0.3.0", PLUGIN: VERSION}


# -- the command line --------------------------------------------------------------------
def test_cli_decides_the_new_kind_and_records_the_plugin(installed: Path, tmp_path: Path) -> None:
    """SPEC §7: ``pricecalc decide`` in a new process decides the plugin's kind and the
    audit record names the plugin and its version, with the rule set it came from."""
    store = tmp_path / "audit.jsonl"
    out = decide(store, points())
    assert (out["status"], out["result"]["redeemed"]) == ("approved", "9.00")
    assert out["audit"]["seq"] == 1
    payload = record(store, "mp-1")
    assert payload["plugins"] == {PLUGIN: VERSION}
    assert (payload["rule_set"], payload["rule_version"]) == (DIST, VERSION)
    assert payload["policy"]["member_club"]["max_share"] == "0.3"


def test_cli_policy_file_overrides_the_plugins_defaults(installed: Path, tmp_path: Path) -> None:
    """A policy file sets the plugin's section like the core's; the value used is
    recorded: max_share 0.5 → cap 15.00, so all 12.50 is redeemed."""
    store = tmp_path / "audit.jsonl"
    policy = tmp_path / "policy.toml"
    policy.write_text("[member_club]\nmax_share = 0.5\n", encoding="utf-8")
    out = decide(store, points(), "--policy", str(policy))
    assert (out["result"]["cap"], out["result"]["redeemed"]) == ("15.00", "12.50")
    assert record(store, "mp-1")["policy"]["member_club"]["max_share"] == "0.5"


def test_cli_price_protection_with_the_new_offer_types(installed: Path, tmp_path: Path) -> None:
    """SPEC §3 "Plugins may add types", in a real claim. paid_net 2 × 100.00 − 10.00 =
    190.00. Coupon only: no drop, rejected. With a member price of 85.00 from 15:00:
    170.00 − 10.00 = 160.00 → refund 30.00. With also a member coupon 5.00 over 150.00
    from 16:00 (its own group, stacking with the coupon): 155.00 → refund 35.00; the
    plugin took part and is recorded with its version."""
    store = tmp_path / "audit.jsonl"
    base = decide(store, claim([COUPON_10], "pp-0"))
    assert (base["status"], base["result"]["refund_total"]) == ("rejected", "0.00")
    assert [r["code"] for r in base["reasons"]] == ["NO_PRICE_DROP"]
    assert record(store, "pp-0")["plugins"] == {"builtin": "0.3.0"}

    member = decide(store, claim([COUPON_10, MEMBER_85], "pp-1"))
    assert (member["status"], member["result"]["refund_total"]) == ("approved", "30.00")
    assert member["result"]["lines"][0]["lowest_net"] == "160.00"

    stacked = decide(tmp_path / "other.jsonl", claim([COUPON_10, MEMBER_85, MEMBER_COUPON_5]))
    line = stacked["result"]["lines"][0]
    assert (line["paid_net"], line["lowest_net"], line["refund"]) == ("190.00", "155.00", "35.00")
    assert line["lowest_offers"] == [
        {"index": 0, "type": "coupon"},
        {"index": 1, "type": "member_price"},
        {"index": 2, "type": "member_coupon"},
    ]
    assert record(tmp_path / "other.jsonl", "pp-1")["plugins"] == {
        "builtin": "0.3.0",
        PLUGIN: VERSION,
    }


def test_cli_runs_the_plugins_command(installed: Path, tmp_path: Path) -> None:
    """The plugin's ``pricecalc_register_commands`` adds ``member-points``: listed in the
    help, with its own help, and it decides and records through the calculator."""
    store = tmp_path / "audit.jsonl"
    listing = run(store, "--help")
    assert listing.returncode == 0, listing.stderr
    assert "member-points" in listing.stdout
    helped = run(store, "member-points", "--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("Usage: pricecalc member-points [OPTIONS]")
    assert "Redeem member points against an order (the member_club plugin)." in helped.stdout
    assert "pricecalc member-points --order-id O-1 --points 1250 --order-total 30.00" in (
        helped.stdout
    )
    done = run(
        store, "member-points", "--order-id", "O-7", "--points", "1250", "--order-total",
        "30.00", "--request-id", "cmd-1",
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["kind"], out["status"], out["result"]["redeemed"]) == (
        "member_points",
        "approved",
        "9.00",
    )
    assert record(store, "cmd-1")["plugins"] == {PLUGIN: VERSION}
    invalid = run(store, "member-points", "--order-id", "O-7", "--points", "many",
                  "--order-total", "30.00")
    assert invalid.returncode == 2
    assert invalid.stderr == (
        "Error: invalid input, nothing recorded: input.points: must be a whole number "
        "(got 'many')\n"
    )


def test_its_kind_declares_its_money_and_its_codes(installed: Path) -> None:
    """Issue 20 point 2 / SPEC §10: a plugin's kind declares its money figures and reason
    codes; the registry lists them beside the built-in kinds'."""
    registry = load_registry()
    figures = {(kind, f.name): f for kind, f in registry.figures()}
    mine = figures[("member_points", "member_points_redeemed")]
    assert (mine.zh, mine.en, mine.field, mine.feeds) == (
        "积分抵扣", "member points redeemed", "redeemed", "deduct_from_payout",
    )  # fmt: skip
    assert ("subsidy_split", "merchant_subsidy") in figures
    explained = registry.declarations().explain("POINTS_BELOW_MINIMUM", "member_points")
    assert explained is not None
    assert (explained.zh, explained.en) == ("积分低于最低使用数", "points below the minimum")
    assert ("member_points", explained) in registry.codes()


def test_its_kind_is_on_a_statement_and_in_the_report(installed: Path, tmp_path: Path) -> None:
    """Issue 20 "done when": a stranger's kind reaches a merchant's statement (its declared
    figure in the column it feeds, a void's reversal netting it out) and the campaign
    report (a table of its own declared figures, by their labels)."""
    store = tmp_path / "audit.jsonl"
    for request_id, count in (("mp-1", 1250), ("mp-2", 700), ("mp-3", 99)):
        decide(store, {**points(request_id, count), "merchant_id": "M-club"})
    decide(
        store,
        {"kind": "void", "input": {"seq": 2, "reason": "test", "target": "mp-2"}},
        "--operator",
        "li",
    )
    period = ("--since", "2000-01-01", "--until", "2100-12-31")
    done = run(store, "statement", "--merchant", "M-club", *period, "-o", "-")
    assert done.returncode == 0, done.stderr
    got = [json.loads(line) for line in done.stdout.splitlines()]
    rows, totals = got[:-2], got[-2]
    assert [(r["seq"], r["kind"], r["reverses"], r["deduct_from_payout"]) for r in rows] == [
        (1, "member_points", None, "9.00"),
        (2, "member_points", None, "7.00"),
        (4, "member_points", 2, "-7.00"),
    ]
    assert (totals["rows"], totals["deduct_from_payout"]) == (3, "9.00")
    page_path = tmp_path / "report.html"
    done = run(store, "report", "-o", str(page_path))
    assert done.returncode == 0, done.stderr
    page = page_path.read_text(encoding="utf-8")
    assert 'data-table="figures-member_points"' in page
    assert "积分抵扣 member points redeemed" in page
    assert 'data-col="member_points_redeemed" data-value="9.00"' in page
    # a key figure by its declared name (SPEC §10), and its settled series by day
    assert 'data-figure="member_points_redeemed" data-value="9.00"' in page
    assert 'data-col="member_points_redeemed.deduct_from_payout" data-value="9.00"' in page


def test_its_figure_is_in_summaries_stats_and_exports_by_its_name(
    installed: Path, tmp_path: Path
) -> None:
    """SPEC §10 "one name, one figure" (issue 21 point 5): a stranger's kind's declared
    figure is a money column of batch outputs, a line of the batch summary, a column of
    `audit stats` and `audit export` — by its own name and labels — and its reason codes
    are explained beside them."""
    store = tmp_path / "audit.jsonl"
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps(points(rid, n)) + "\n" for rid, n in (("mp-1", 1250), ("mp-3", 99))),
        encoding="utf-8",
    )
    done = run(store, "batch", str(source), "-o", str(tmp_path / "out.csv"))
    assert done.returncode == 0, done.stderr
    assert re.search(r"\n  member points redeemed +9\.00 +0\.00\n", done.stdout), done.stdout
    with (tmp_path / "out.csv").open(encoding="utf-8", newline="") as fp:
        rows = list(csv.DictReader(fp))
    assert [r["member_points_redeemed"] for r in rows] == ["9.00", ""]
    assert rows[1]["reason_notes"] == "points below the minimum"
    done = run(store, "audit", "stats", "--json")
    assert [r["member_points_redeemed"] for r in json.loads(done.stdout)] == ["9.00"]
    # its reason codes explained in the command's language (--lang zh), under its headings
    done = run(store, "--lang", "zh", "audit", "export", "-o", str(tmp_path / "e.xlsx"))
    assert done.returncode == 0, done.stderr
    sheet = openpyxl.load_workbook(tmp_path / "e.xlsx")["audit"]
    headings = [c.value for c in sheet[1]]
    column = headings.index("积分抵扣")
    assert [r[column].value for r in sheet.iter_rows(min_row=2)] == [9, None]
    notes = headings.index("原因说明")
    assert [r[notes].value for r in sheet.iter_rows(min_row=2)] == [None, "积分低于最低使用数"]


def test_cli_plugins_lists_it_with_version_and_hooks(installed: Path, tmp_path: Path) -> None:
    """``pricecalc plugins --json`` lists the plugin: name, version, kinds and all six hooks."""
    done = run(tmp_path / "audit.jsonl", "plugins", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows[PLUGIN] == EXPECTED_ROW
    table = run(tmp_path / "audit.jsonl", "plugins")
    assert table.returncode == 0, table.stderr
    assert PLUGIN in table.stdout and VERSION in table.stdout


@pytest.mark.parametrize("how", ["option", "policy"])
def test_disabled_it_is_gone(installed: Path, tmp_path: Path, how: str) -> None:
    """``--disable-plugin member_club`` or ``[plugins] disabled = ["member_club"]``: its kind
    is unknown (exit 2, the kind named, nothing recorded), its offer types are unknown,
    its command does not exist and ``pricecalc plugins`` does not list it."""
    store = tmp_path / "audit.jsonl"
    if how == "option":
        options = ["--disable-plugin", PLUGIN]
    else:
        policy = tmp_path / "policy.toml"
        policy.write_text(f'[plugins]\ndisabled = ["{PLUGIN}"]\n', encoding="utf-8")
        options = ["--policy", str(policy)]
    known = ", ".join(sorted(set(load_registry(disable=[PLUGIN]).kinds())))

    done = run(store, *options, "decide", stdin=json.dumps(points()))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "Error: invalid input, nothing recorded: kind: is not a known kind "
        f"({known}) (got 'member_points')\n"
    )
    protect = run(store, *options, "decide", stdin=json.dumps(claim([COUPON_10, MEMBER_85])))
    assert protect.returncode == 2
    assert protect.stderr.startswith(
        "Error: invalid input, nothing recorded: input.offers[1].type: is not a known offer "
        "type (coupon, direct_drop, flash_sale, full_reduction) (got 'member_price')"
    )
    assert head(store)[0] == 0

    command = run(store, *options, "member-points", "--help")
    assert command.returncode == 2
    assert "No such command 'member-points'" in command.stderr

    listed = run(store, *options, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    assert PLUGIN not in {row["name"] for row in json.loads(listed.stdout)}
    assert "food_safety_law" in {row["name"] for row in json.loads(listed.stdout)}


@pytest.mark.parametrize(
    ("how", "request_", "message"),
    [
        (
            "hook",
            points("mp-2"),
            "plugin 'member_club': pricecalc_rules raised RuntimeError: "
            "the member database is unreachable",
        ),
        (
            "garbage",
            points("mp-2"),
            "plugin 'member_club': pricecalc_offer_types must return a list, got str",
        ),
        (
            "decide",
            points("mp-2"),
            "plugin 'member_club': result.redeemed is a float (9.0); amounts must be strings",
        ),
        (
            "import",
            points("mp-2"),
            "plugin 'member_club': failed to load (pricecalc_throwaway_member_club): "
            "ImportError: No module named 'member_db'",
        ),
        (
            # the broken plugin is named even when another plugin's kind is decided
            "hook",
            claim([COUPON_10], "pp-2"),
            "plugin 'member_club': pricecalc_rules raised RuntimeError: "
            "the member database is unreachable",
        ),
    ],
)
def test_a_misbehaving_plugin_is_named_and_nothing_is_recorded(
    installed: Path, tmp_path: Path, how: str, request_: dict[str, Any], message: str
) -> None:
    """A plugin whose hook raises, returns garbage, or whose rule returns a float: exit 1,
    one sentence naming the plugin (no traceback), and the audit store's head unchanged."""
    store = tmp_path / "audit.jsonl"
    decide(store, points("mp-1"))
    before = head(store)
    done = run(store, "decide", stdin=json.dumps(request_), env={BREAK_ENV: how})
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"Error: {message}\n"
    assert "Traceback" not in done.stderr
    assert head(store) == before
    listed = run(store, "plugins", env={BREAK_ENV: how})
    if how == "decide":  # the registry is fine; only its rule misbehaves
        assert listed.returncode == 0, listed.stderr
    else:
        assert (listed.returncode, listed.stderr) == (1, f"Error: {message}\n")
    # disabling the broken plugin is the way out
    fine = run(
        store, "--disable-plugin", PLUGIN, "decide",
        stdin=json.dumps(claim([COUPON_10], "pp-3")), env={BREAK_ENV: how},
    )
    assert fine.returncode == 0, fine.stderr
