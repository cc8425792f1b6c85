"""price_protection — 价保 refunds for in-event markdowns (SPEC §3).

When the merchant marks a product down during the event after the buyer paid, the buyer
may claim the difference; the merchant pays, or the platform deducts it from the
merchant's payout when the merchant refuses.

The rule is pure: :func:`parse` reads the request into :class:`ProtectionInput`,
:func:`decide` computes the refund. Offers are looked up in the registry by their
``type`` and handled only through their stage and group (see :mod:`pricecalc.offers`), so
a plugin's offer type is priced by the same loop as the built-in ones.

The computation (docs/rules.md explains it for operators):

- ``net(t)`` per line = the line's gross at the unit prices of ``t`` minus its
  largest-remainder share of the order-level discount at ``t``;
- ``paid_net`` = gross at ``unit_price`` minus the line's share of
  ``paid_merchant_discount``, or ``net(paid_at)`` when that is not given;
- ``reference = min(paid_net, net(paid_at))``;
- ``lowest`` = the minimum of ``net(t)`` over the candidate times (every offer's change
  time in ``(paid_at, min(event.end, claimed_at)]``: a markdown scheduled after the claim
  is not paid in advance, a later claim pays it), earliest time on a tie; with no
  candidate time ``lowest = reference`` and ``lowest_at`` is ``None``;
- ``entitled = max(0, reference − lowest)`` capped at ``paid_net``;
  ``refund = max(0, entitled − already_refunded)``, and 0 on a rejected claim.

Cost: :class:`PriceBook` indexes the offers once (each offer's range of candidate times
found by bisection; set-price offers per SKU in a heap by precedence, lower-price offers
per SKU in a heap by price, order discounts per group) and sweeps the times in order,
re-pricing only the SKUs whose offers arrive or leave and computing every line's net once
per time, in integer fen. The work grows as candidate times × (active order discounts +
lines), plus a logarithm per offer: a 100-line order against 1,000 offers takes tens of
milliseconds.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import attrs

from pricecalc.decision import Outcome, Reason
from pricecalc.errors import InvalidInput, PluginError, PolicyError, PricecalcError
from pricecalc.fields import Fields, iso
from pricecalc.money import ZERO, FloatRefused, allocate, allocate_fen, fmt, parse_amount
from pricecalc.offers import OfferType, check_discount, check_keys, check_offer
from pricecalc.plugins import guard
from pricecalc.registry import Rule, RuleContext

KIND = "price_protection"
RULE_SET = "chaozhigou-standard"
VERSION = "1.0.0"

ELIGIBLE_STATUSES = ("paid", "shipped", "completed")
INELIGIBLE_STATUSES = ("refunding", "refunded", "cancelled")
ORDER_STATUSES = ELIGIBLE_STATUSES + INELIGIBLE_STATUSES

PAID_OUTSIDE_EVENT = "PAID_OUTSIDE_EVENT"
CLAIM_EXPIRED = "CLAIM_EXPIRED"
ORDER_NOT_ELIGIBLE = "ORDER_NOT_ELIGIBLE"
NO_PRICE_DROP = "NO_PRICE_DROP"
ALREADY_REFUNDED = "ALREADY_REFUNDED"

INPUT_KEYS = frozenset(
    {
        "order_id",
        "paid_at",
        "claimed_at",
        "order_status",
        "event",
        "claim_days",
        "lines",
        "paid_merchant_discount",
        "offers",
        "already_refunded",
        "merchant_refused",
    }
)
LINE_KEYS = frozenset({"line_id", "sku", "quantity", "unit_price"})

Settlement = Literal["merchant_pays", "deduct_from_payout"]


# -- input ----------------------------------------------------------------------------


@attrs.frozen
class Event:
    """The campaign's closed window ``start ≤ t ≤ end``."""

    start: datetime
    end: datetime

    @classmethod
    def from_fields(cls, fields: Fields) -> Event:
        check_keys(fields, {"start", "end"})
        start, end = fields.time("start"), fields.time("end")
        if end < start:
            raise InvalidInput(
                fields.at("end"), fields.raw("end"), f"must not be before start {iso(start)}"
            )
        return cls(start, end)

    def contains(self, t: datetime) -> bool:
        return self.start <= t <= self.end

    def describe(self) -> str:
        return f"{iso(self.start)} – {iso(self.end)}"


@attrs.frozen
class Line:
    """One order line: ``quantity`` units of ``sku`` bought at ``unit_price`` each."""

    line_id: str
    sku: str
    quantity: int
    unit_price: Decimal

    @classmethod
    def from_fields(cls, fields: Fields) -> Line:
        check_keys(fields, LINE_KEYS)
        return cls(
            line_id=fields.string("line_id"),
            sku=fields.string("sku"),
            quantity=fields.integer("quantity", minimum=1),
            unit_price=fields.amount("unit_price", positive=True),
        )

    @property
    def gross(self) -> Decimal:
        return self.unit_price * self.quantity


@attrs.frozen
class ListedOffer:
    """One entry of ``input.offers``: where it was listed, its type and parsed offer."""

    index: int
    offer_type: OfferType
    plugin: str
    offer: Any

    @classmethod
    def from_fields(cls, index: int, fields: Fields, ctx: RuleContext) -> ListedOffer:
        name = fields.string("type")
        found = ctx.registry.offer_type(name)
        if found is None:
            known = ", ".join(sorted(ctx.registry.offer_types)) or "none registered"
            raise InvalidInput(fields.at("type"), name, f"is not a known offer type ({known})")
        plugin, offer_type = found
        offer = guard(plugin, f"the {name!r} offer parser", lambda: offer_type.parse(fields))
        guard(plugin, f"the {name!r} offer parser", lambda: check_offer(offer_type, offer))
        ctx.took_part(plugin)
        return cls(index, offer_type, plugin, offer)

    @property
    def type(self) -> str:
        return self.offer_type.name

    def ref(self) -> dict[str, Any]:
        return {"index": self.index, "type": self.type}


@attrs.frozen
class ProtectionInput:
    """A parsed 价保 claim (SPEC §3)."""

    order_id: str
    paid_at: datetime
    claimed_at: datetime
    claimed_at_given: bool
    order_status: str
    event: Event
    claim_days: int | None
    lines: tuple[Line, ...]
    offers: tuple[ListedOffer, ...]
    paid_merchant_discount: Decimal | None = None
    already_refunded: Mapping[str, Decimal] | None = None
    merchant_refused: bool = False

    @classmethod
    def from_fields(cls, fields: Fields, ctx: RuleContext) -> ProtectionInput:
        """Read and check a request's ``input``, field by field in SPEC order."""
        check_keys(fields, INPUT_KEYS)
        order_id = fields.string("order_id")
        paid_at = fields.time("paid_at")
        claimed_at = fields.optional_time("claimed_at")
        if claimed_at is not None and claimed_at < paid_at:
            raise InvalidInput(
                fields.at("claimed_at"),
                fields.raw("claimed_at"),
                f"must not be before paid_at {iso(paid_at)}",
            )
        if claimed_at is None and ctx.now < paid_at:
            raise InvalidInput(
                fields.at("claimed_at"),
                iso(ctx.now),
                f"defaults to now, which is before paid_at {iso(paid_at)}; give claimed_at",
            )
        order_status = fields.choice("order_status", ORDER_STATUSES)
        event = Event.from_fields(fields.obj("event"))
        claim_days = fields.integer("claim_days", minimum=0) if fields.has("claim_days") else None
        lines = _lines(fields)
        discount = fields.optional_amount("paid_merchant_discount")
        goods = sum((line.gross for line in lines), ZERO)
        if discount is not None and discount > goods:
            raise InvalidInput(
                fields.at("paid_merchant_discount"),
                fields.raw("paid_merchant_discount"),
                f"must not exceed the goods total {fmt(goods)}",
            )
        offers = tuple(
            ListedOffer.from_fields(index, item, ctx)
            for index, item in enumerate(fields.items("offers"))
        )
        return cls(
            order_id=order_id,
            paid_at=paid_at,
            claimed_at=ctx.now if claimed_at is None else claimed_at,
            claimed_at_given=claimed_at is not None,
            order_status=order_status,
            event=event,
            claim_days=claim_days,
            lines=lines,
            offers=offers,
            paid_merchant_discount=discount,
            already_refunded=_already_refunded(fields, [line.line_id for line in lines]),
            merchant_refused=fields.boolean("merchant_refused", False),
        )


def _lines(fields: Fields) -> tuple[Line, ...]:
    """The non-empty list of lines, each ``line_id`` once."""
    lines = tuple(Line.from_fields(item) for item in fields.items("lines", non_empty=True))
    first: dict[str, int] = {}
    for index, line in enumerate(lines):
        if line.line_id in first:
            raise InvalidInput(
                f"{fields.at('lines')}[{index}].line_id",
                line.line_id,
                f"repeats the line_id of {fields.at('lines')}[{first[line.line_id]}]",
            )
        first[line.line_id] = index
    return lines


def _already_refunded(fields: Fields, line_ids: Sequence[str]) -> dict[str, Decimal] | None:
    """``already_refunded: {line_id: amount}``; a line_id not in the order is refused."""
    given = fields.mapping("already_refunded")
    if given is None:
        return None
    amounts: dict[str, Decimal] = {}
    for key in given.data:
        if key not in line_ids:
            raise InvalidInput(
                given.at(str(key)), key, f"is not a line of this order ({', '.join(line_ids)})"
            )
        amounts[key] = given.amount(key)
    return amounts


def parse(fields: Fields, ctx: RuleContext) -> ProtectionInput:
    """Read a 价保 request; :class:`pricecalc.InvalidInput` names any bad field."""
    return ProtectionInput.from_fields(fields, ctx)


# -- pricing --------------------------------------------------------------------------


def _fen(amount: Decimal) -> int:
    """An amount already in fen as a whole number of fen (exact, no rounding)."""
    return int(amount.scaleb(2))


def _yuan(fen_count: int) -> Decimal:
    return Decimal(fen_count).scaleb(-2)


def candidate_times(
    offers: Iterable[ListedOffer], after: datetime, until: datetime
) -> list[datetime]:
    """Every offer's change time in ``(after, until]``, sorted, each once (SPEC §3)."""
    times = {t for listed in offers for t in listed.offer.change_times() if after < t <= until}
    return sorted(times)


@attrs.frozen
class Lowest:
    """A line's lowest net over the candidate times, when, and the offers behind it."""

    net: Decimal
    at: datetime
    offers: tuple[ListedOffer, ...]


@attrs.frozen
class Sweep:
    """What :meth:`PriceBook.sweep` found: ``net(paid_at)`` per line and each lowest.

    ``lowest`` holds ``None`` for every line when there is no candidate time.
    """

    at_paid: tuple[Decimal, ...]
    lowest: tuple[Lowest | None, ...]


@attrs.frozen
class _Entry:
    """An offer's place in the sweep: applying from ``times[first]`` to ``times[last]``."""

    listed: ListedOffer
    first: int
    last: int
    price: int = 0  # unit price in fen (set_price / lower_price)


class PriceBook:
    """A claim's offers indexed once, for pricing every line at ``paid_at`` and at each
    candidate time ``t`` in ``(paid_at, until]`` (SPEC §3 ``net(t)``).

    Each offer is turned into the range of time indexes at which it applies (its window
    and, for a set-price, its ``at``, found by bisection in the sorted times). The sweep
    then walks the times in order: set-price offers of a SKU sit in a heap keyed by their
    precedence (latest ``at``), lower-price offers in a heap keyed by price, order
    discounts in one active set per group; an offer leaves when its range ends. Only the
    SKUs whose offers arrive or leave at a time are re-priced, a time at which nothing
    arrives or leaves is skipped (every net is unchanged), and every line's net is
    computed once per time, in integer fen. The work grows as times × (active order
    discounts + lines) plus a logarithm per offer arrival.
    """

    def __init__(
        self,
        lines: Sequence[Line],
        offers: Iterable[ListedOffer],
        paid_at: datetime,
        until: datetime,
    ) -> None:
        offers = tuple(offers)
        self.lines = tuple(lines)
        self.times = [paid_at, *candidate_times(offers, paid_at, until)]
        self.lines_of: dict[str, list[int]] = {}
        for i, line in enumerate(self.lines):
            self.lines_of.setdefault(line.sku, []).append(i)
        count = len(self.times)
        self.arrivals: list[list[_Entry]] = [[] for _ in range(count)]
        self.departures: list[list[_Entry]] = [[] for _ in range(count)]
        self.groups: list[str] = []
        drops: dict[str, list[ListedOffer]] = {}
        for listed in offers:
            offer: Any = listed.offer
            stage = listed.offer_type.stage
            window = offer.window
            begin = window.start
            if stage == "set_price":
                # A set-price at or before paid_at is already in the line's unit_price.
                if offer.sku not in self.lines_of or offer.at <= paid_at:
                    continue
                begin = offer.at if begin is None else max(begin, offer.at)
                drops.setdefault(offer.sku, []).append(listed)
            elif stage == "lower_price":
                if offer.sku not in self.lines_of:
                    continue
            elif listed.offer_type.group not in self.groups:
                self.groups.append(str(listed.offer_type.group))
            self._place(listed, begin, window.end)
        # Precedence among a SKU's set-prices: latest `at`; at an equal `at` the lower
        # price, then the earlier-listed offer.
        self.rank: dict[int, int] = {}
        self._checked: dict[int, tuple[Any, int]] = {}  # discount answers already checked
        for sku_drops in drops.values():
            sku_drops.sort(key=lambda o: (o.offer.at, -o.offer.unit_price, -o.index))
            self.rank.update((o.index, r) for r, o in enumerate(sku_drops))

    def _place(self, listed: ListedOffer, begin: datetime | None, end: datetime | None) -> None:
        first = 0 if begin is None else bisect.bisect_left(self.times, begin)
        last = len(self.times) - 1 if end is None else bisect.bisect_right(self.times, end) - 1
        if first > last:
            return  # applies at none of the times that matter
        price = 0 if listed.offer_type.stage == "order_discount" else _fen(listed.offer.unit_price)
        entry = _Entry(listed, first, last, price)
        self.arrivals[first].append(entry)
        if last + 1 < len(self.times):
            self.departures[last + 1].append(entry)

    def sweep(self) -> Sweep:
        """Price every line at ``paid_at`` and at each candidate time; keep each lowest."""
        lines = self.lines
        count = len(lines)
        quantity = [line.quantity for line in lines]
        prices = [0] * count
        grosses = [0] * count
        used: list[tuple[ListedOffer, ...]] = [()] * count
        setters: dict[str, list[tuple[int, int, ListedOffer, int]]] = {}
        lowers: dict[str, list[tuple[int, int, int, ListedOffer]]] = {}
        active: dict[str, dict[int, ListedOffer]] = {group: {} for group in self.groups}
        goods = discount = 0
        last_goods = -1
        winners: tuple[ListedOffer, ...] = ()
        at_paid: list[int] = []
        lowest: list[int] = []
        lowest_k = [-1] * count  # -1: no candidate time
        lowest_by: list[tuple[ListedOffer, ...]] = [()] * count

        for k in range(len(self.times)):
            dirty: set[str] = set(self.lines_of) if k == 0 else set()
            groups_changed = k == 0
            for entry in self.departures[k]:
                listed = entry.listed
                if listed.offer_type.stage == "order_discount":
                    del active[str(listed.offer_type.group)][listed.index]
                    groups_changed = True
                else:
                    dirty.add(listed.offer.sku)  # its heap drops it lazily
            for entry in self.arrivals[k]:
                listed = entry.listed
                stage = listed.offer_type.stage
                if stage == "order_discount":
                    active[str(listed.offer_type.group)][listed.index] = listed
                    groups_changed = True
                elif stage == "set_price":
                    rank = self.rank[listed.index]
                    heapq.heappush(
                        setters.setdefault(listed.offer.sku, []),
                        (-rank, entry.last, listed, entry.price),
                    )
                    dirty.add(listed.offer.sku)
                else:
                    heapq.heappush(
                        lowers.setdefault(listed.offer.sku, []),
                        (entry.price, listed.index, entry.last, listed),
                    )
                    dirty.add(listed.offer.sku)
            if k > 1 and not dirty and not groups_changed:
                continue  # nothing arrived or left: every net is as at the previous time

            for sku in dirty:
                setter_heap = setters.get(sku, [])
                while setter_heap and setter_heap[0][1] < k:
                    heapq.heappop(setter_heap)
                lower_heap = lowers.get(sku, [])
                while lower_heap and lower_heap[0][2] < k:
                    heapq.heappop(lower_heap)
                for i in self.lines_of[sku]:
                    if setter_heap:
                        _, _, setter, price = setter_heap[0]
                        by: tuple[ListedOffer, ...] = (setter,)
                    else:
                        price, by = _fen(lines[i].unit_price), ()
                    if lower_heap and lower_heap[0][0] < price:
                        price, by = lower_heap[0][0], (*by, lower_heap[0][3])
                    goods += (price - prices[i]) * quantity[i]
                    prices[i], grosses[i], used[i] = price, price * quantity[i], by

            if groups_changed or goods != last_goods:
                discount, winners = self._order_discount(active, goods)
                last_goods = goods
            if discount:
                shares = allocate_fen(discount, grosses)
                nets = [g - s for g, s in zip(grosses, shares, strict=True)]
            else:
                nets = list(grosses)
            if k == 0:
                at_paid = nets
            elif k == 1:
                lowest, lowest_k = nets, [1] * count
                lowest_by = [(*by, *winners) for by in used]
            else:  # a new lowest only when strictly lower: the earliest time wins a tie
                for i in [i for i in range(count) if nets[i] < lowest[i]]:
                    lowest[i], lowest_k[i], lowest_by[i] = nets[i], k, (*used[i], *winners)

        return Sweep(
            at_paid=tuple(_yuan(n) for n in at_paid),
            lowest=tuple(
                None
                if lowest_k[i] < 0
                else Lowest(
                    _yuan(lowest[i]),
                    self.times[lowest_k[i]],
                    tuple(sorted(lowest_by[i], key=lambda o: o.index)),
                )
                for i in range(count)
            ),
        )

    def _order_discount(
        self, active: Mapping[str, Mapping[int, ListedOffer]], goods: int
    ) -> tuple[int, tuple[ListedOffer, ...]]:
        """The order-level discount in fen: the best offer per group (the earlier-listed
        on a tie), groups stacked, capped at the goods total; and the offers that gave it.
        """
        goods_total = _yuan(goods)
        total = 0
        winners: list[ListedOffer] = []
        for group in self.groups:
            best: ListedOffer | None = None
            best_amount = 0
            for listed in active[group].values():
                amount = _discount(listed, goods_total, self._checked)
                if amount > best_amount or (
                    amount == best_amount and best is not None and listed.index < best.index
                ):
                    best, best_amount = listed, amount
            if best is not None:
                total += best_amount
                winners.append(best)
        return min(total, goods), tuple(winners)


def _discount(
    listed: ListedOffer, goods_total: Decimal, seen: dict[int, tuple[Any, int]] | None = None
) -> int:
    """Ask an order-discount offer for its discount in fen; a failure names the plugin.

    ``seen`` remembers answers already checked, by object: offers answer with the same few
    Decimal objects again and again (a coupon's amount, a tier's ``off``, zero), and an
    answer's validity depends on the value alone. The entry keeps the object alive, so its
    id is not reused while the cache lives.
    """
    try:
        value = listed.offer.discount(goods_total)
        if seen is not None:
            known = seen.get(id(value))
            if known is not None and known[0] is value:
                return known[1]
        fen_count = _fen(check_discount(listed.offer_type, value))
        if seen is not None:
            seen[id(value)] = (value, fen_count)
        return fen_count
    except (PricecalcError, FloatRefused):
        raise
    except Exception as exc:
        raise PluginError(
            listed.plugin,
            f"offer {listed.type!r} (input.offers[{listed.index}]) discount() failed: "
            f"{type(exc).__name__}: {exc}",
        ) from exc


# -- decision -------------------------------------------------------------------------


@attrs.frozen
class LineOutcome:
    """One line's numbers (SPEC §3 result ``lines``)."""

    line_id: str
    paid_net: Decimal
    lowest_net: Decimal
    lowest_at: datetime | None
    lowest_offers: tuple[ListedOffer, ...]
    entitled: Decimal
    already_refunded: Decimal
    refund: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "line_id": self.line_id,
            "paid_net": fmt(self.paid_net),
            "lowest_net": fmt(self.lowest_net),
            "lowest_at": None if self.lowest_at is None else iso(self.lowest_at),
            "lowest_offers": [o.ref() for o in self.lowest_offers],
            "entitled": fmt(self.entitled),
            "already_refunded": fmt(self.already_refunded),
            "refund": fmt(self.refund),
        }


def claim_days(inp: ProtectionInput, ctx: RuleContext) -> int:
    """The claim period: the request's ``claim_days``, else the policy's."""
    if inp.claim_days is not None:
        return inp.claim_days
    value = ctx.policy.get("price_protection", "claim_days")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(
            f"policy: price_protection.claim_days must be a whole number of days ≥ 0, got {value!r}"
        )
    return value


def markdowns_until(inp: ProtectionInput) -> datetime:
    """The last moment a markdown counts for this claim: ``min(event.end, claimed_at)``.

    A markdown scheduled after the claim is not paid in advance; a later claim pays it.
    """
    return min(inp.event.end, inp.claimed_at)


def lines_outcome(inp: ProtectionInput, already: Mapping[str, Decimal]) -> list[LineOutcome]:
    """Every line's paid_net, lowest net, entitlement and refund before any rejection."""
    found = PriceBook(inp.lines, inp.offers, inp.paid_at, markdowns_until(inp)).sweep()
    if inp.paid_merchant_discount is None:
        paid_nets = list(found.at_paid)
    else:
        grosses = [line.gross for line in inp.lines]
        shares = allocate(inp.paid_merchant_discount, grosses)
        paid_nets = [g - s for g, s in zip(grosses, shares, strict=True)]

    out = []
    for i, line in enumerate(inp.lines):
        # An offer the buyer skipped at purchase creates no refund.
        reference = min(paid_nets[i], found.at_paid[i])
        lowest = found.lowest[i]
        lowest_net = reference if lowest is None else lowest.net
        entitled = min(max(ZERO, reference - lowest_net), paid_nets[i])
        paid_before = already.get(line.line_id, ZERO)
        out.append(
            LineOutcome(
                line_id=line.line_id,
                paid_net=paid_nets[i],
                lowest_net=lowest_net,
                lowest_at=None if lowest is None else lowest.at,
                lowest_offers=() if lowest is None else lowest.offers,
                entitled=entitled,
                already_refunded=paid_before,
                refund=max(ZERO, entitled - paid_before),
            )
        )
    return out


def _already(inp: ProtectionInput, ctx: RuleContext) -> dict[str, Decimal]:
    if inp.already_refunded is not None:
        return dict(inp.already_refunded)
    recorded = ctx.history.refunds(inp.order_id)
    return {
        line.line_id: parse_amount(
            recorded[line.line_id], f"audit store refunds of {inp.order_id}.{line.line_id}"
        )
        for line in inp.lines
        if line.line_id in recorded
    }


def _line_list(lines: Sequence[LineOutcome], show: Any, limit: int = 5) -> str:
    shown = [f"{line.line_id}: {show(line)}" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"and {len(lines) - limit} more")
    return "; ".join(shown)


def decide(inp: ProtectionInput, ctx: RuleContext) -> Outcome:
    """Decide a 价保 claim (SPEC §3). Pure: the clock comes in through ``ctx.now``."""
    days = claim_days(inp, ctx)
    deadline = inp.event.end + timedelta(days=days)
    lines = lines_outcome(inp, _already(inp, ctx))

    reasons: list[Reason] = []
    if not inp.event.contains(inp.paid_at):
        reasons.append(
            Reason(
                PAID_OUTSIDE_EVENT,
                f"paid at {iso(inp.paid_at)}, outside the event {inp.event.describe()}",
            )
        )
    if inp.claimed_at > deadline:
        claimed = "claimed" if inp.claimed_at_given else "claimed (now)"
        reasons.append(
            Reason(
                CLAIM_EXPIRED,
                f"{claimed} at {iso(inp.claimed_at)}, after the claim deadline {iso(deadline)} "
                f"(event end {iso(inp.event.end)} + {days} days)",
            )
        )
    if inp.order_status not in ELIGIBLE_STATUSES:
        reasons.append(
            Reason(
                ORDER_NOT_ELIGIBLE,
                f"order status {inp.order_status!r} is not eligible for price protection "
                f"(eligible: {', '.join(ELIGIBLE_STATUSES)})",
            )
        )
    entitled = sum((line.entitled for line in lines), ZERO)
    payable = sum((line.refund for line in lines), ZERO)
    if entitled == 0:
        if inp.claimed_at < inp.event.end:
            bound = f"the claim at {iso(inp.claimed_at)}"
        else:
            bound = f"the event end {iso(inp.event.end)}"
        reasons.append(
            Reason(
                NO_PRICE_DROP,
                f"no line sold lower between payment {iso(inp.paid_at)} and {bound}: "
                "the lowest net is not below the price paid ("
                + _line_list(lines, lambda x: f"paid {fmt(x.paid_net)}, lowest {fmt(x.lowest_net)}")
                + ")",
            )
        )
    elif payable == 0:
        reasons.append(
            Reason(
                ALREADY_REFUNDED,
                f"entitled to {fmt(entitled)} in total, all of it already refunded ("
                + _line_list(
                    lines,
                    lambda x: f"entitled {fmt(x.entitled)}, already {fmt(x.already_refunded)}",
                )
                + ")",
            )
        )
    if reasons:
        lines = [attrs.evolve(line, refund=ZERO) for line in lines]
    settlement: Settlement = "deduct_from_payout" if inp.merchant_refused else "merchant_pays"
    result = {
        "order_id": inp.order_id,
        "refund_total": fmt(sum((line.refund for line in lines), ZERO)),
        "lines": [line.to_dict() for line in lines],
        "payer": "merchant",
        "settlement": settlement,
        "claimed_at": iso(inp.claimed_at),
        "claim_deadline": iso(deadline),
    }
    return Outcome(result=result, reasons=tuple(reasons))


RULE = Rule(
    kind=KIND,
    rule_set=RULE_SET,
    version=VERSION,
    parse=parse,
    decide=decide,
    description="价保: refund the in-event markdown after payment (SPEC §3)",
)
