"""One dedicated test per hook of the plugin contract (pricecalc/hookspecs.py; STYLE:
"every hook is documented in docs/, and every hook has a test").

Each test registers a small plugin object directly (``get_plugin_manager(extra=...)``),
checks what the hook adds, that the plugin is named in the decisions it takes part in,
and what happens when it misbehaves. The ``# hook: NAME`` comment inside each test is
what tests/test_hooks_meta.py looks for: every hook must have one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import click
import pytest
from click.testing import CliRunner

import audit
import pricecalc
import pricecalc.cli
import pricecalc.cli.app
from pricecalc import InvalidInput, Outcome, PluginError, PolicyError, Reason
from pricecalc.fields import Fields
from pricecalc.money import fen, fmt
from pricecalc.offers import COMMON_KEYS, OfferType, Window, check_keys
from pricecalc.plugins import build_registry, get_plugin_manager
from pricecalc.policy import Policy, PolicyView
from pricecalc.registry import CompensationLine, CompensationStandard, Registry, Rule, RuleContext

NOW = datetime(2026, 11, 13, 2, 0, tzinfo=UTC)
UNVERSIONED = "0+unversioned"  # a plugin object registered directly has no distribution


def registry(*plugins: tuple[str, object]) -> Registry:
    """The built-in plugin (no installed entry points) plus the given plugin objects."""
    return build_registry(get_plugin_manager(entry_points=False, extra=plugins))


# -- pricecalc_rules ---------------------------------------------------------------------
@attrs.frozen
class StampInput:
    order_id: str
    stamps: int


def parse_stamps(f: Fields, ctx: RuleContext) -> StampInput:
    return StampInput(f.string("order_id"), f.integer("stamps", minimum=0))


def decide_stamps(inp: StampInput, ctx: RuleContext) -> Outcome:
    """Ten stamps earn a 5.00 voucher; fewer is rejected with a reason code."""
    vouchers = inp.stamps // 10
    reasons: tuple[Reason, ...] = ()
    if vouchers == 0:
        reasons = (Reason("TOO_FEW_STAMPS", f"{inp.stamps} stamps, 10 earn a voucher"),)
    return Outcome(
        result={
            "order_id": inp.order_id,
            "vouchers": vouchers,
            "value": fmt(Decimal(5 * vouchers)),
        },
        reasons=reasons,
    )


STAMPS = Rule("loyalty_stamps", "stamp-club", "2.1.0", parse_stamps, decide_stamps)


class RulesPlugin:
    def __init__(self, *rules: Rule) -> None:
        self.rules = rules

    @pricecalc.hookimpl
    def pricecalc_rules(self) -> Iterable[Rule]:
        return list(self.rules)


def test_rules_hook_adds_a_decision_kind() -> None:
    """pricecalc_rules: a plugin's kind is decided by its own parser and pure rule; the
    decision names the rule set, its version and the plugin; invalid input names the
    field; a second plugin registering the same kind is refused naming both."""
    # hook: pricecalc_rules
    reg = registry(("stamps", RulesPlugin(STAMPS)))
    assert reg.rules["loyalty_stamps"].plugin == "stamps"
    d = pricecalc.evaluate(
        {"kind": "loyalty_stamps", "input": {"order_id": "O-1", "stamps": 23}}, now=NOW,
        registry=reg,
    )
    assert (d.status, d.result) == ("approved", {"order_id": "O-1", "vouchers": 2,
                                                 "value": "10.00"})
    assert (d.rule_set, d.rule_version, d.plugins) == ("stamp-club", "2.1.0",
                                                       {"stamps": UNVERSIONED})
    few = pricecalc.evaluate(
        {"kind": "loyalty_stamps", "input": {"order_id": "O-1", "stamps": 9}}, now=NOW,
        registry=reg,
    )
    assert few.status == "rejected"
    assert [r.to_dict() for r in few.reasons] == [
        {"code": "TOO_FEW_STAMPS", "message": "9 stamps, 10 earn a voucher"}
    ]
    with pytest.raises(InvalidInput) as bad:
        pricecalc.evaluate(
            {"kind": "loyalty_stamps", "input": {"order_id": "O-1", "stamps": -1}}, now=NOW,
            registry=reg,
        )
    assert str(bad.value) == "input.stamps: must be at least 0 (got -1)"
    with pytest.raises(PluginError) as twice:
        registry(("stamps", RulesPlugin(STAMPS)), ("copycat", RulesPlugin(STAMPS)))
    assert str(twice.value) == (
        "plugin 'copycat': registers kind 'loyalty_stamps', already registered by 'stamps'"
    )


# -- pricecalc_compensation_standards -------------------------------------------------
def appliance_rule(line: CompensationLine, policy: PolicyView) -> Decimal | None:
    """A stand-in provincial rule: household appliances get max(5 × paid, 2000.00)."""
    if line.category != "家电":
        return None
    return max(fen(5 * line.paid), Decimal("2000.00"))


class StandardPlugin:
    @pricecalc.hookimpl
    def pricecalc_compensation_standards(self) -> Iterable[CompensationStandard]:
        return [CompensationStandard("appliance_rule", appliance_rule)]


def test_compensation_standards_hook_adds_a_standard() -> None:
    """pricecalc_compensation_standards (SPEC §4): the highest applicable standard wins and
    is named; a standard that does not apply (None) leaves the plugin out of the decision."""
    # hook: pricecalc_compensation_standards
    reg = registry(("appliances", StandardPlugin()))

    def compensate(paid: str, category: str) -> pricecalc.Decision:
        line = {"line_id": "L1", "paid_amount": paid, "category": category}
        return pricecalc.evaluate(
            {"kind": "counterfeit_compensation",
             "input": {"order_id": "O-2", "confirmed": True, "lines": [line]}},
            now=NOW, registry=reg,
        )  # fmt: skip

    # 10 × 299.00 = 2990.00 beats max(5 × 299.00, 2000.00) = 2000.00: the platform's wins
    dear = compensate("299.00", "家电")
    assert dear.result["lines"][0]["compensation"] == "2990.00"
    assert dear.result["lines"][0]["standard"] == "platform_10x"
    cheap = compensate("39.90", "家电")  # 2000.00 beats 500.00
    assert cheap.result["lines"][0] == {
        "line_id": "L1",
        "refund": "39.90",
        "compensation": "2000.00",
        "total": "2039.90",
        "standard": "appliance_rule",
    }
    assert cheap.plugins == {"builtin": "0.3.0", "appliances": UNVERSIONED}
    other = compensate("39.90", "手机")
    assert other.result["lines"][0]["standard"] == "platform_10x"
    assert other.plugins == {"builtin": "0.3.0"}


# -- pricecalc_offer_types ---------------------------------------------------------------
@attrs.frozen
class CrossStore:
    """跨店满减: ``off`` for every full ``per`` of the goods total."""

    per: Decimal
    off: Decimal
    window: Window = attrs.field(factory=Window)

    def change_times(self) -> tuple[datetime, ...]:
        return self.window.starts()

    def discount(self, goods_total: Decimal) -> Decimal:
        return self.off * int(goods_total // self.per)


def parse_cross_store(f: Fields) -> CrossStore:
    check_keys(f, COMMON_KEYS | {"per", "off"})
    return CrossStore(
        f.amount("per", positive=True), f.amount("off", positive=True), Window.from_fields(f)
    )


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


class OfferPlugin:
    @pricecalc.hookimpl
    def pricecalc_offer_types(self) -> Iterable[OfferType]:
        return [
            OfferType("cross_store", "order_discount", parse_cross_store, group="cross_store"),
            OfferType("member_price", "lower_price", parse_member_price),
        ]


def protection_claim(*offers: Mapping[str, Any]) -> dict[str, Any]:
    """SPEC §3's order: A × 2 at 100.00 paid 11-11T10:00 with a 10.00 coupon over 100.00."""
    return {
        "kind": "price_protection",
        "input": {
            "order_id": "O-1",
            "paid_at": "2026-11-11T10:00",
            "claimed_at": "2026-11-13T10:00",
            "order_status": "paid",
            "event": {"start": "2026-11-10T00:00", "end": "2026-11-12T23:59:59"},
            "lines": [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00"}],
            "offers": [{"type": "coupon", "amount": "10.00", "threshold": "100.00"}, *offers],
        },
    }


def test_offer_types_hook_adds_price_protection_offers() -> None:
    """pricecalc_offer_types (SPEC §3 "Plugins may add types"): a cross-store reduction in
    its own group stacks with the coupon, a member price lowers the unit price; the refund
    follows exactly and the plugin is named. Without the plugin the types are unknown."""
    # hook: pricecalc_offer_types
    reg = registry(("promo", OfferPlugin()))
    cross = {"type": "cross_store", "per": "100.00", "off": "8.00", "start": "2026-11-11T16:00"}
    # from 16:00: 200.00 − coupon 10.00 − cross-store 2 × 8.00 = 174.00; paid 190.00
    d = pricecalc.evaluate(protection_claim(cross), now=NOW, registry=reg)
    line = d.result["lines"][0]
    assert (line["paid_net"], line["lowest_net"], line["refund"]) == ("190.00", "174.00", "16.00")
    assert d.plugins == {"builtin": "0.3.0", "promo": UNVERSIONED}
    member = {"type": "member_price", "sku": "A", "unit_price": "88.00",
              "start": "2026-11-11T15:00"}  # fmt: skip
    # from 16:00: 176.00 − 10.00 − 8.00 (176 holds one full 100) = 158.00 → refund 32.00
    both = pricecalc.evaluate(protection_claim(member, cross), now=NOW, registry=reg)
    assert both.result["refund_total"] == "32.00"
    assert both.result["lines"][0]["lowest_offers"] == [
        {"index": 0, "type": "coupon"},
        {"index": 1, "type": "member_price"},
        {"index": 2, "type": "cross_store"},
    ]
    with pytest.raises(InvalidInput) as unknown:
        pricecalc.evaluate(protection_claim(cross), now=NOW, registry=registry())
    assert str(unknown.value) == (
        "input.offers[1].type: is not a known offer type (coupon, direct_drop, flash_sale, "
        "full_reduction) (got 'cross_store')"
    )


# -- pricecalc_clawback_categories -----------------------------------------------------
class CategoryPlugin:
    @pricecalc.hookimpl
    def pricecalc_clawback_categories(self) -> Iterable[str]:
        return ["智能门锁"]


def test_clawback_categories_hook_covers_an_order() -> None:
    """pricecalc_clawback_categories (SPEC §5 "plugins may add"): a forwarded order in the
    plugin's category is clawed back (subsidy × quantity) and ``covered_by`` names the
    plugin; without the plugin it is CATEGORY_NOT_COVERED and nothing is clawed back."""
    # hook: pricecalc_clawback_categories
    request = {
        "kind": "forwarding_clawback",
        "input": {"order_id": "O-5", "category": "智能门锁", "platform_subsidy": "45.50",
                  "quantity": 3, "forwarded": True},
    }  # fmt: skip
    d = pricecalc.evaluate(request, now=NOW, registry=registry(("locks", CategoryPlugin())))
    assert (d.status, d.result["clawback"], d.result["covered_by"]) == (
        "approved",
        "136.50",
        "locks",
    )
    assert d.plugins == {"builtin": "0.3.0", "locks": UNVERSIONED}
    without = pricecalc.evaluate(request, now=NOW, registry=registry())
    assert (without.status, without.result["clawback"]) == ("rejected", "0.00")
    assert [r.code for r in without.reasons] == ["CATEGORY_NOT_COVERED"]


# -- pricecalc_policy_defaults ---------------------------------------------------------
def decide_tip(inp: StampInput, ctx: RuleContext) -> Outcome:
    per_stamp = Decimal(ctx.policy.get("tips", "per_stamp"))
    return Outcome(result={"order_id": inp.order_id, "tip": fmt(fen(per_stamp * inp.stamps))})


class PolicyPlugin:
    @pricecalc.hookimpl
    def pricecalc_rules(self) -> Iterable[Rule]:
        return [Rule("tip", "tips", "1.0.0", parse_stamps, decide_tip)]

    @pricecalc.hookimpl
    def pricecalc_policy_defaults(self) -> Mapping[str, Mapping[str, Any]]:
        return {"tips": {"per_stamp": "0.25", "note": "defaults of the tips plugin"}}


class SameSection:
    @pricecalc.hookimpl
    def pricecalc_policy_defaults(self) -> Mapping[str, Mapping[str, Any]]:
        return {"tips": {"per_stamp": "1.00"}}


def test_policy_defaults_hook_declares_an_overridable_section(tmp_path: Path) -> None:
    """pricecalc_policy_defaults: the plugin's section has defaults a policy file overrides;
    the value used is recorded in decision.policy; keys nobody declares are refused; the
    section is unknown without the plugin; a second plugin declaring it is refused."""
    # hook: pricecalc_policy_defaults
    reg = registry(("tips", PolicyPlugin()))
    assert reg.policy_defaults["tips"] == {"per_stamp": "0.25",
                                           "note": "defaults of the tips plugin"}  # fmt: skip
    request = {"kind": "tip", "input": {"order_id": "O-6", "stamps": 7}}
    default = pricecalc.evaluate(request, now=NOW, registry=reg)
    assert default.result["tip"] == "1.75"
    assert default.policy == {"tips": {"per_stamp": "0.25"}}

    file = tmp_path / "policy.toml"
    file.write_text('[tips]\nper_stamp = "0.40"\n', encoding="utf-8")
    overridden = pricecalc.evaluate(
        request, now=NOW, registry=reg, policy=Policy.from_toml(file)
    )
    assert overridden.result["tip"] == "2.80"
    assert overridden.policy == {"tips": {"per_stamp": "0.40"}}

    misspelt = Policy.from_mapping({"tips": {"per_stamps": "0.40"}})
    with pytest.raises(PolicyError) as unknown_key:
        pricecalc.evaluate(request, now=NOW, registry=reg, policy=misspelt)
    assert str(unknown_key.value) == "policy: unknown key 'per_stamps' in [tips]"
    with pytest.raises(PolicyError) as unknown_section:
        pricecalc.evaluate(
            {"kind": "subsidy_split", "input": {}}, now=NOW, registry=registry(),
            policy=Policy.from_toml(file),
        )
    assert str(unknown_section.value) == "policy: unknown section [tips]"
    with pytest.raises(PluginError) as twice:
        registry(("tips", PolicyPlugin()), ("tips_again", SameSection()))
    assert str(twice.value) == (
        "plugin 'tips_again': policy default tips.per_stamp is already declared"
    )


# -- pricecalc_register_commands -------------------------------------------------------
class CommandPlugin:
    @pricecalc.hookimpl
    def pricecalc_rules(self) -> Iterable[Rule]:
        return [STAMPS]

    @pricecalc.hookimpl
    def pricecalc_register_commands(self, cli: click.Group) -> None:
        @cli.command(name="stamps")
        @click.option("--order-id", required=True)
        @click.option("--stamps", "count", required=True)
        @click.pass_obj
        def stamps(app: pricecalc.cli.App, order_id: str, count: str) -> None:
            """Turn loyalty stamps into vouchers.

            Example:

            \b
                pricecalc stamps --order-id O-1 --stamps 23
            """
            decision = app.calculator().decide(
                {"kind": "loyalty_stamps", "input": {"order_id": order_id, "stamps": count}}
            )
            click.echo(f"{decision.status}: {decision.result['value']}")


@pytest.fixture
def cli_with(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, object]]]:
    """The command line's plugin manager also holds these plugin objects (no entry points),
    for its commands and its calculator alike."""
    extra: list[tuple[str, object]] = []
    real = get_plugin_manager

    def manager(disable: Iterable[str] = (), **kw: Any) -> Any:
        return real(disable, entry_points=False, extra=extra)

    monkeypatch.setattr(pricecalc.cli.app, "get_plugin_manager", manager)
    monkeypatch.setattr(pricecalc.plugins, "get_plugin_manager", manager)
    yield extra


def test_register_commands_hook_adds_a_command(
    cli_with: list[tuple[str, object]], tmp_path: Path
) -> None:
    """pricecalc_register_commands: the plugin's command is listed in the help, has its
    own help, runs through the calculator (recording the decision with the plugin), and is
    gone with --disable-plugin."""
    # hook: pricecalc_register_commands
    cli_with.append(("stamps", CommandPlugin()))
    store = str(tmp_path / "audit.jsonl")
    runner = CliRunner()
    env: dict[str, str | None] = {"PRICECALC_AUDIT": None, "PRICECALC_AUDIT_KEY": None}
    listing = runner.invoke(pricecalc.cli.cli, ["--help"], env=env)
    assert listing.exit_code == 0, listing.output
    assert "  stamps " in listing.stdout
    helped = runner.invoke(pricecalc.cli.cli, ["stamps", "--help"], env=env)
    assert helped.exit_code == 0, helped.output
    assert "Turn loyalty stamps into vouchers." in helped.stdout
    done = runner.invoke(
        pricecalc.cli.cli, ["--audit", store, "stamps", "--order-id", "O-1", "--stamps", "23"],
        env=env,
    )
    assert (done.exit_code, done.stdout) == (0, "approved: 10.00\n")
    opened = audit.open_store(store)
    try:
        (recorded,) = list(opened.query())
    finally:
        opened.close()
    assert recorded.payload["plugins"] == {"stamps": UNVERSIONED}
    gone = runner.invoke(pricecalc.cli.cli, ["--disable-plugin", "stamps", "stamps"], env=env)
    assert gone.exit_code == 2
    assert "No such command 'stamps'" in gone.stderr

