"""A price-protection claim's lines and offers, priced over time (SPEC §3 ``net(t)``).

:class:`Line` and :class:`ListedOffer` are the claim's parsed order lines and offers;
:class:`PriceBook` indexes the offers once and sweeps the candidate times in order
(:func:`candidate_times`), giving each line's net at ``paid_at`` and its lowest net after
it. The rule itself — what counts, what is paid, the reasons — is
:mod:`pricecalc.rules.protection`; this module only prices.

Cost: each offer's range of candidate times is found by bisection; set-price offers per
SKU sit in a heap by precedence, lower-price offers per SKU in a heap by price, order
discounts per group in a segment tree over their tiers when they give
``discount_tiers()``; the sweep re-prices only the SKUs whose offers arrive or leave, asks
a group again only when its offers or the goods total change, and allocates the discount
once per time at which a line can reach a new lowest, in integer fen. The work is
``O(O log O + T·L)`` for ``O`` offers, ``T`` candidate times and ``L`` lines (plus, per
time, one ``discount()`` call per applying plugin offer that does not give its tiers).
docs/performance.md §5 has the figures.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from itertools import compress, repeat
from operator import ge, gt, mul
from typing import Any, TypeVar

import attrs

from pricecalc.errors import InvalidInput, guard
from pricecalc.fields import Fields
from pricecalc.i18n import msg
from pricecalc.money import allocate_fen, fen_count, from_fen_count
from pricecalc.offers import OfferType, check_discount, check_keys, check_offer, check_tiers
from pricecalc.registry import RuleContext

LINE_KEYS = frozenset({"line_id", "sku", "quantity", "unit_price"})

T = TypeVar("T")


# -- the claim's lines and offers ---------------------------------------------------------


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
            line_id=fields.identifier("line_id"),
            sku=fields.identifier("sku"),
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
            said = msg("is not a known offer type ({known})", known=known)
            raise InvalidInput(fields.at("type"), name, said)
        plugin, offer_type = found
        with guard(plugin, "the {!r} offer parser raised {error}", name):
            offer = offer_type.parse(fields)
            check_offer(offer_type, offer)
        return cls(index, offer_type, plugin, offer)

    @property
    def type(self) -> str:
        return self.offer_type.name

    def ref(self) -> dict[str, Any]:
        return {"index": self.index, "type": self.type}


# -- pricing over time ------------------------------------------------------------------


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
    """An offer's place in the sweep: applying from ``times[first]`` to ``times[last]``.

    A set-price or lower-price offer carries its SKU and unit price in fen; an order
    discount the group it competes in.
    """

    listed: ListedOffer
    first: int
    last: int
    sku: str = ""
    price: int = 0
    group: _DiscountGroup | None = None


class _DiscountGroup:
    """The order-discount offers of one stacking group, answering "which applying offer
    gives the most at goods total ``g``" as offers arrive and leave (SPEC §3: of one group
    only the best counts, the earlier-listed on a tie).

    An answer is a *key*, ``off × scale + (scale − 1 − index)`` in fen: the larger key is
    the larger discount, on a tie the earlier-listed offer; a key below ``scale`` gives
    nothing. An offer that gives its ``discount_tiers()`` (both built-in types do) has a
    leaf per tier in a max segment tree over the group's tiers sorted by threshold: the
    best offer met at ``g`` is the maximum over the prefix of tiers with ``threshold ≤ g``,
    ``O(log A)`` per query and per tier arriving or leaving. Every other offer (a plugin's
    ``discount()`` alone) is asked at each query, as the simple scan did; the best of the
    two answers counts.
    """

    def __init__(self, scale: int) -> None:
        self.scale = scale
        self.offers: dict[int, ListedOffer] = {}
        self.leaves: dict[int, list[tuple[int, int]]] = {}  # offer index → (node, key)
        self.scanned: dict[int, ListedOffer] = {}  # applying offers without tiers
        self.thresholds: list[int] = []
        self.tree: list[int] = [0, 0]
        self.size = 1
        self._tiers: list[tuple[int, int, int]] = []  # (threshold, key, index) until built

    def add(self, listed: ListedOffer, tiers: Sequence[tuple[int, int]] | None) -> None:
        """Take in one offer before the sweep: its tiers in fen, or None to scan it."""
        self.offers[listed.index] = listed
        if tiers is not None:
            self.leaves[listed.index] = []
            tail = self.scale - 1 - listed.index
            self._tiers.extend((t, off * self.scale + tail, listed.index) for t, off in tiers)

    def build(self) -> None:
        """Lay the tiers out by threshold, every leaf empty (no offer applies yet)."""
        self._tiers.sort()
        self.thresholds = [threshold for threshold, _, _ in self._tiers]
        while self.size < len(self._tiers):
            self.size *= 2
        self.tree = [0] * (2 * self.size)
        for leaf, (_, key, index) in enumerate(self._tiers):
            self.leaves[index].append((self.size + leaf, key))
        self._tiers = []

    def arrive(self, listed: ListedOffer) -> None:
        leaves = self.leaves.get(listed.index)
        if leaves is None:
            self.scanned[listed.index] = listed
            return
        tree = self.tree
        for node, key in leaves:
            tree[node] = key
            node >>= 1
            while node and tree[node] < key:  # above a larger key nothing changes
                tree[node] = key
                node >>= 1

    def leave(self, listed: ListedOffer) -> None:
        leaves = self.leaves.get(listed.index)
        if leaves is None:
            del self.scanned[listed.index]
            return
        tree = self.tree
        for node, _ in leaves:
            tree[node] = 0
            while node > 1:
                node >>= 1
                left, right = tree[2 * node], tree[2 * node + 1]
                value = left if left > right else right
                if tree[node] == value:  # unchanged here: unchanged above
                    break
                tree[node] = value

    def best(self, goods: int, seen: dict[int, tuple[Any, int]]) -> int:
        """The best key among the applying offers at a goods total of ``goods`` fen."""
        tree = self.tree
        met = bisect.bisect_right(self.thresholds, goods)
        if met == len(self.thresholds):
            key = tree[1]  # every tier met: the root
        else:
            key = 0
            lo, hi = self.size, self.size + met
            while lo < hi:
                if lo & 1:
                    if tree[lo] > key:
                        key = tree[lo]
                    lo += 1
                if hi & 1:
                    hi -= 1
                    if tree[hi] > key:
                        key = tree[hi]
                lo >>= 1
                hi >>= 1
        if self.scanned:
            goods_total = from_fen_count(goods)
            tail = self.scale - 1
            for index, listed in self.scanned.items():
                amount = _discount(listed, goods_total, seen)
                if amount and amount * self.scale + tail - index > key:
                    key = amount * self.scale + tail - index
        return key

    def winner(self, key: int) -> tuple[int, ListedOffer | None]:
        """A key's discount in fen and the offer giving it (None: nothing)."""
        amount = key // self.scale
        if not amount:
            return 0, None
        return amount, self.offers[self.scale - 1 - key % self.scale]


class PriceBook:
    """A claim's offers indexed once, for pricing every line at ``paid_at`` and at each
    candidate time ``t`` in ``(paid_at, until]`` (SPEC §3 ``net(t)``).

    Each offer is turned into the range of time indexes at which it applies (its window
    and, for a set-price, its ``at``, found by bisection in the sorted times). The sweep
    then walks the times in order: set-price offers of a SKU sit in a heap keyed by their
    precedence (latest ``at``), lower-price offers in a heap keyed by price, order
    discounts in one :class:`_DiscountGroup` per group (a segment tree over the tiers of
    indexed offers, a scan of the others); an offer leaves when its range ends. Only the
    SKUs whose offers arrive or leave at a time are re-priced, and only the groups whose
    offers change or whose goods total moves are asked again. A time at which neither a
    line's gross nor the order discount changes is skipped (every net is as before), and
    so is one at which no line's exact share reaches what it needs for a new lowest
    (every share is within a fen of it); otherwise the discount is allocated once
    (:func:`pricecalc.money.allocate_fen`) and every line compared with its lowest in one
    pass, in integer fen. The work is ``O(O log O)`` for the offers plus a few passes over
    the lines per candidate time (the allocation's sort of the remainders is the only
    ``L log L`` step, done in C).
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
        self.groups: dict[str, _DiscountGroup] = {}
        scale = 2 + max((listed.index for listed in offers), default=0)
        drops: dict[str, list[ListedOffer]] = {}
        for listed in offers:
            offer: Any = listed.offer
            stage = listed.offer_type.stage
            window = offer.window
            begin = window.start
            if stage == "order_discount":
                span = self._span(begin, window.end)
                if span is None:
                    continue  # applies at none of the times that matter
                group = self.groups.get(str(listed.offer_type.group))
                if group is None:
                    group = self.groups[str(listed.offer_type.group)] = _DiscountGroup(scale)
                group.add(listed, _tiers(listed))
                self._place(_Entry(listed, *span, group=group))
                continue
            if offer.sku not in self.lines_of:
                continue  # prices no line of the order
            if stage == "set_price":
                # A set-price at or before paid_at is already in the line's unit_price.
                if offer.at <= paid_at:
                    continue
                begin = offer.at if begin is None else max(begin, offer.at)
            span = self._span(begin, window.end)
            if span is None:
                continue
            if stage == "set_price":
                drops.setdefault(offer.sku, []).append(listed)
            self._place(_Entry(listed, *span, sku=offer.sku, price=fen_count(offer.unit_price)))
        for group in self.groups.values():
            group.build()
        # Precedence among a SKU's set-prices: latest `at`; at an equal `at` the lower
        # price, then the earlier-listed offer.
        self.rank: dict[int, int] = {}
        self._checked: dict[int, tuple[Any, int]] = {}  # discount answers already checked
        for sku_drops in drops.values():
            sku_drops.sort(key=lambda o: (o.offer.at, -o.offer.unit_price, -o.index))
            self.rank.update((o.index, r) for r, o in enumerate(sku_drops))

    def _span(self, begin: datetime | None, end: datetime | None) -> tuple[int, int] | None:
        """The first and last time index within ``[begin, end]``, or None when none is."""
        first = 0 if begin is None else bisect.bisect_left(self.times, begin)
        last = len(self.times) - 1 if end is None else bisect.bisect_right(self.times, end) - 1
        return None if first > last else (first, last)

    def _place(self, entry: _Entry) -> None:
        self.arrivals[entry.first].append(entry)
        if entry.last + 1 < len(self.times):
            self.departures[entry.last + 1].append(entry)

    def sweep(self) -> Sweep:
        """Price every line at ``paid_at`` and at each candidate time; keep each lowest."""
        lines = self.lines
        count = len(lines)
        quantity = [line.quantity for line in lines]
        selling = [fen_count(line.unit_price) for line in lines]
        prices = [0] * count
        grosses = [0] * count
        used: list[tuple[ListedOffer, ...]] = [()] * count
        setters: dict[str, list[tuple[int, int, ListedOffer, int]]] = {}
        lowers: dict[str, list[tuple[int, int, int, ListedOffer]]] = {}
        groups = list(self.groups.values())
        keys = dict.fromkeys(groups, 0)  # each group's best key at the goods total
        no_shares = [0] * count
        shares = no_shares
        goods = discount = total = 0
        last_goods = last_discount = -1
        fresh = False  # shares are those of the current grosses and discount
        winners: tuple[ListedOffer, ...] = ()
        at_paid: list[int] = []
        # A line reaches a new lowest when its share exceeds need = gross − lowest.
        lowest = [0] * count
        need = [0] * count
        lowest_k = [-1] * count  # -1: no candidate time
        lowest_used: list[tuple[ListedOffer, ...]] = [()] * count
        lowest_won: list[tuple[ListedOffer, ...]] = [()] * count

        lines_of, rank, checked = self.lines_of, self.rank, self._checked
        push, pop = heapq.heappush, heapq.heappop
        moves = zip(self.departures, self.arrivals, strict=True)
        for k, (departures, arrivals) in enumerate(moves):
            if k > 1 and not departures and not arrivals:
                continue  # nothing arrived or left: every net is as at the previous time
            dirty: set[str] = set(lines_of) if k == 0 else set()
            stale: set[_DiscountGroup] = set(groups) if k == 0 else set()
            for entry in departures:
                if entry.group is not None:
                    entry.group.leave(entry.listed)
                    stale.add(entry.group)
                else:
                    dirty.add(entry.sku)  # its heap drops it lazily
            for entry in arrivals:
                listed = entry.listed
                if entry.group is not None:
                    entry.group.arrive(listed)
                    stale.add(entry.group)
                elif listed.offer_type.stage == "set_price":
                    push(
                        setters.setdefault(entry.sku, []),
                        (-rank[listed.index], entry.last, listed, entry.price),
                    )
                    dirty.add(entry.sku)
                else:
                    push(
                        lowers.setdefault(entry.sku, []),
                        (entry.price, listed.index, entry.last, listed),
                    )
                    dirty.add(entry.sku)

            moved = False  # did any line's gross change?
            for sku in dirty:
                setter_heap = setters.get(sku, [])
                while setter_heap and setter_heap[0][1] < k:
                    pop(setter_heap)
                lower_heap = lowers.get(sku, [])
                while lower_heap and lower_heap[0][2] < k:
                    pop(lower_heap)
                for i in lines_of[sku]:
                    if setter_heap:
                        _, _, setter, price = setter_heap[0]
                        by: tuple[ListedOffer, ...] = (setter,)
                    else:
                        price, by = selling[i], ()
                    if lower_heap and lower_heap[0][0] < price:
                        price, by = lower_heap[0][0], (*by, lower_heap[0][3])
                    used[i] = by
                    if price != prices[i]:
                        goods += (price - prices[i]) * quantity[i]
                        prices[i] = price
                        grosses[i] = gross = price * quantity[i]
                        need[i] = gross - lowest[i]
                        moved = True

            if goods != last_goods:
                stale.update(groups)
                last_goods = goods
            if stale:
                renewed = False
                for group in stale:
                    key = group.best(goods, checked)
                    if key != keys[group]:
                        keys[group], renewed = key, True
                if renewed:  # another offer wins, or the same one gives another amount
                    total, won = 0, []
                    for group, key in keys.items():
                        amount, offer = group.winner(key)
                        if offer is not None:
                            total += amount
                            won.append(offer)
                    winners = tuple(won)
                discount = min(total, goods)

            changed = moved or discount != last_discount
            if changed:
                last_discount, fresh = discount, False
            if k > 1 and (
                not changed  # the same grosses and discount: the same nets
                # Every share is within a fen of its exact share discount × gross / goods
                # (SPEC §1), so a line can exceed its need only where discount × gross ≥
                # need × goods; where none can, this time brings no new lowest.
                or not any(
                    map(ge, map(mul, grosses, repeat(discount)), map(mul, need, repeat(goods)))
                )
            ):
                continue
            if not fresh:
                shares = allocate_fen(discount, grosses) if discount else no_shares
                fresh = True
            if k == 0:
                at_paid = [g - s for g, s in zip(grosses, shares, strict=True)]
                continue
            # k == 1 sets every line's lowest; later a line improves only when strictly
            # lower, so the earliest time wins a tie.
            improved = range(count) if k == 1 else compress(range(count), map(gt, shares, need))
            for i in improved:
                share = shares[i]
                lowest[i], need[i], lowest_k[i] = grosses[i] - share, share, k
                lowest_used[i], lowest_won[i] = used[i], winners

        return Sweep(
            at_paid=tuple(from_fen_count(n) for n in at_paid),
            lowest=tuple(
                None
                if lowest_k[i] < 0
                else Lowest(
                    from_fen_count(lowest[i]),
                    self.times[lowest_k[i]],
                    tuple(sorted((*lowest_used[i], *lowest_won[i]), key=lambda o: o.index)),
                )
                for i in range(count)
            ),
        )


def _tiers(listed: ListedOffer) -> list[tuple[int, int]] | None:
    """An order discount's ``discount_tiers()`` in fen, checked; None when it has none."""
    method = getattr(listed.offer, "discount_tiers", None)
    if method is None:
        return None
    tiers = _ask(listed, "discount_tiers()", lambda: check_tiers(listed.offer_type, method()))
    return [(fen_count(threshold), fen_count(off)) for threshold, off in tiers]


def _discount(
    listed: ListedOffer, goods_total: Decimal, seen: dict[int, tuple[Any, int]] | None = None
) -> int:
    """Ask an order-discount offer for its discount in fen; a failure names the plugin.

    ``seen`` remembers answers already checked, by object: offers answer with the same few
    Decimal objects again and again (a coupon's amount, a tier's ``off``, zero), and an
    answer's validity depends on the value alone. The entry keeps the object alive, so its
    id is not reused while the cache lives.
    """

    def ask() -> int:
        value = listed.offer.discount(goods_total)
        if seen is not None:
            known = seen.get(id(value))
            if known is not None and known[0] is value:
                return known[1]
        count = fen_count(check_discount(listed.offer_type, value))
        if seen is not None:
            seen[id(value)] = (value, count)
        return count

    return _ask(listed, "discount()", ask)


def _ask(listed: ListedOffer, what: str, call: Callable[[], T]) -> T:
    """Call a plugin offer's method; any failure but a pricecalc error names the plugin."""
    with guard(
        listed.plugin,
        "offer {!r} (input.offers[{}]) {} failed: {error}",
        listed.type,
        listed.index,
        what,
    ):
        return call()
