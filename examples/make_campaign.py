"""Generate examples/campaign.jsonl: a realistic 超值购 campaign file for `pricecalc batch`.

A few hundred SPEC §8 requests of every kind — subsidy splits approved and rejected,
price-protection claims (repeat claims, expired ones, a deeper later drop), counterfeit
compensation (food too), forwarding clawbacks, and the first-party plugin kinds
(chaozhigou_admission, shipping_check, select_alliance_*) — with the mistakes real files
have: a price with three decimals, a negative price, a missing field, a bad time, an
unknown kind, a malformed JSON line, an exponent number (``1e3``).

The output is deterministic (fixed seed): run it again and the file is byte-identical::

    python examples/make_campaign.py            # writes examples/campaign.jsonl
    python examples/make_campaign.py out.jsonl  # somewhere else

Some requests carry no ``request_id`` on purpose: `pricecalc batch` gives them a stable id
from the file's hash and line number, so re-running the file records nothing twice.
Select Alliance product thresholds come from examples/policy.toml (the platform publishes
no numbers), so run the batch with ``--policy examples/policy.toml``.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEED = 20261111
EVENT = {"start": "2026-11-10T00:00:00", "end": "2026-11-12T23:59:59"}
EVENT_START = datetime(2026, 11, 10)
EVENT_END = datetime(2026, 11, 12, 23, 59, 59)

CATEGORIES_COVERED = ["手机", "笔记本电脑", "酒类", "影音电器", "生活电器", "平板电脑/MID"]
CATEGORIES_OTHER = ["女装", "家居", "图书", "零食"]
FOOD = ["food", "食品", "生鲜", "酒类"]
NON_FOOD = ["服饰", "数码", "家居", None]
OTHER_PLATFORMS = ["百亿补贴", "拼团", "秒杀频道", "品牌特卖"]
SHOP_TYPES = ["flagship", "exclusive", "specialty", "mall", "hypermarket", "personal"]
# The merchants and campaigns the money requests are for (SPEC §8 labels: no rule reads
# them; statements and the campaign report select by them). Drawn from the request's
# counter, not from the random stream, so every rule's figures stay as they were. The
# pattern gives the merchants different weights (M-1001 busiest), as real campaigns have.
MERCHANTS = ["M-1001", "M-1002", "M-1003", "M-1004", "M-1005"]
MERCHANT_PATTERN = [0, 0, 0, 1, 1, 2, 2, 3, 4]
CAMPAIGNS = ["双11-2026", "双12-2026"]
SPLIT_CATEGORIES = ["手机", "笔记本电脑", "女装", "家居", "零食", "生活电器", None]


def D(value: str | int) -> Decimal:
    return Decimal(value)


def money(value: Decimal | int) -> str:
    """Two-decimal text (ROUND_HALF_UP): the generator computes with Decimal, never floats."""
    return str(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def to_tenth(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


class Campaign:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lines: list[tuple[datetime, str]] = []
        self.counter = 0

    def rid(self, prefix: str) -> str | None:
        self.counter += 1
        # Roughly one request in eight carries no request_id (batch gives it a stable one).
        if self.rng.random() < 0.125:
            return None
        return f"cz-{prefix}-{self.counter:05d}"

    def add(
        self,
        when: datetime,
        kind: str,
        data: dict[str, Any],
        prefix: str,
        *,
        labelled: bool = False,
    ) -> None:
        """One request; ``labelled`` ones (the kinds that move money) name a merchant and
        a campaign (one in five is 双12-2026)."""
        request: dict[str, Any] = {"kind": kind}
        request_id = self.rid(prefix)
        if request_id is not None:
            request["request_id"] = request_id
        if labelled:
            request["merchant_id"] = MERCHANTS[MERCHANT_PATTERN[self.counter % 9]]
            request["campaign"] = CAMPAIGNS[1 if self.counter % 5 == 0 else 0]
        request["input"] = data
        self.lines.append((when, json.dumps(request, ensure_ascii=False)))

    def raw(self, when: datetime, text: str) -> None:
        self.lines.append((when, text))

    def moment(self, start: datetime = EVENT_START, hours: float = 72) -> datetime:
        return start + timedelta(minutes=self.rng.randrange(int(hours * 60)))

    # -- SPEC §2 -------------------------------------------------------------------------
    def splits(self, n: int) -> None:
        for i in range(n):
            rng = self.rng
            list_price = D(rng.choice([59, 99, 129, 199, 299, 399, 599, 1299, 2999]))
            merchant_cut = D(rng.choice(["0.05", "0.1", "0.15", "0.2"]))
            registration = (list_price * (1 - merchant_cut)).quantize(D(1)) - D("0.1")
            platform = to_tenth(registration * D(rng.choice(["0.05", "0.08", "0.1", "0.12"])))
            subsidy = registration - platform
            floor = to_tenth(subsidy * D(rng.choice(["0.9", "0.95", "1"])))
            cost = to_tenth(floor * D(rng.choice(["0.6", "0.75", "0.9"])))
            data: dict[str, Any] = {
                "product_id": f"P-{10000 + i}",
                "list_price": money(list_price),
                "registration_price": money(registration),
                "floor_price": money(floor),
                "cost_price": money(cost),
                "quantity": rng.choice([1, 1, 1, 2, 3, 5]),
            }
            category = SPLIT_CATEGORIES[i % len(SPLIT_CATEGORIES)]
            if category is not None:  # every seventh has none: the report's 未分类
                data["category"] = category
            if rng.random() < 0.5:
                data["subsidy_price"] = money(subsidy)
            else:
                data["platform_subsidy"] = money(platform)
            if rng.random() < 0.7:
                data["lowest_price_30d"] = money(registration + rng.choice([0, 5, 10, 20]))
            if rng.random() < 0.5:
                data["other_platform_prices"] = [
                    {"platform": p, "price": money(registration + rng.choice([1, 3, 8]))}
                    for p in rng.sample(OTHER_PLATFORMS, rng.randint(1, 2))
                ]
            # About a third break one or more of the campaign's price rules.
            trouble = rng.random()
            if trouble < 0.08:
                data["registration_price"] = money(list_price + 10)
            elif trouble < 0.16:
                data["lowest_price_30d"] = money(registration - 5)
            elif trouble < 0.24:
                data["other_platform_prices"] = [
                    {"platform": rng.choice(OTHER_PLATFORMS), "price": money(registration - 2)}
                ]
            elif trouble < 0.30:
                data["cost_price"] = money(floor + 3)
            elif trouble < 0.34:
                data["floor_price"] = money(subsidy + 4)
                data["cost_price"] = money(cost)
            when = self.moment(EVENT_START - timedelta(days=3), 60)
            self.add(when, "subsidy_split", data, "ss", labelled=True)

    # -- SPEC §3 -------------------------------------------------------------------------
    def claims(self, orders: int) -> None:
        rng = self.rng
        for i in range(orders):
            order_id = f"PP-{20261110 + i}"
            paid = self.moment(EVENT_START, 50)
            sku = f"SKU-{rng.randint(100, 999)}"
            price = D(rng.choice([49, 89, 129, 199, 259]))
            quantity = rng.choice([1, 1, 2])
            lines = [
                {"line_id": "L1", "sku": sku, "quantity": quantity, "unit_price": money(price)}
            ]
            if rng.random() < 0.3:
                lines.append(
                    {
                        "line_id": "L2",
                        "sku": f"{sku}-B",
                        "quantity": 1,
                        "unit_price": money(price / 2),
                    }
                )
            offers: list[dict[str, Any]] = []
            if rng.random() < 0.6:
                offers.append({"type": "coupon", "amount": "10.00", "threshold": money(price - 1)})
            drop_at = paid + timedelta(hours=rng.randint(1, 20))
            drop = rng.random()
            if drop < 0.45:
                offers.append(
                    {
                        "type": "direct_drop",
                        "sku": sku,
                        "unit_price": money(price * D("0.9")),
                        "at": at(drop_at),
                    }
                )
            elif drop < 0.7:
                start = drop_at
                offers.append(
                    {
                        "type": "flash_sale",
                        "sku": sku,
                        "unit_price": money(price * D("0.8")),
                        "start": at(start),
                        "end": at(start + timedelta(hours=2)),
                    }
                )
            elif drop < 0.85:
                offers.append(
                    {
                        "type": "full_reduction",
                        "tiers": [{"threshold": money(price - 1), "off": "15.00"}],
                        "start": at(drop_at),
                    }
                )
            status = rng.choice(["paid", "shipped", "completed", "completed", "refunded"])
            claimed = min(paid + timedelta(days=rng.randint(1, 4)), EVENT_END + timedelta(days=6))
            if rng.random() < 0.1:
                claimed = EVENT_END + timedelta(days=9)  # after the 7-day claim period
            claim = {
                "order_id": order_id,
                "paid_at": at(paid),
                "claimed_at": at(claimed),
                "order_status": status,
                "event": EVENT,
                "lines": lines,
                "offers": offers,
                "merchant_refused": rng.random() < 0.1,
            }
            self.add(claimed, "price_protection", claim, "pp", labelled=True)
            if rng.random() < 0.3:
                # The buyer claims again a day later: the same drop pays 0 (ALREADY_REFUNDED);
                # with a deeper drop added meanwhile, only the increment is paid.
                again = {**claim, "claimed_at": at(claimed + timedelta(days=1))}
                if rng.random() < 0.5 and drop < 0.45:
                    deeper = {
                        "type": "direct_drop",
                        "sku": sku,
                        "unit_price": money(price * D("0.75")),
                        "at": at(drop_at + timedelta(hours=6)),
                    }
                    again["offers"] = [*offers, deeper]
                self.add(
                    claimed + timedelta(days=1), "price_protection", again, "pp", labelled=True
                )

    # -- SPEC §4 -------------------------------------------------------------------------
    def counterfeits(self, n: int) -> None:
        rng = self.rng
        for i in range(n):
            lines = []
            for j in range(rng.choice([1, 1, 1, 2])):
                category = rng.choice(FOOD if rng.random() < 0.3 else NON_FOOD)
                line: dict[str, Any] = {
                    "line_id": f"L{j + 1}",
                    "paid_amount": money(
                        D(rng.choice(["19.9", "39.9", "50", "68", "129", "399", "1999"]))
                    ),
                }
                if category is not None:
                    line["category"] = category
                if category in FOOD and rng.random() < 0.3:
                    line["loss"] = money(rng.choice([200, 800, 3000]))
                lines.append(line)
            data = {
                "order_id": f"CF-{30000 + i}",
                "confirmed": rng.random() > 0.15,
                "merchant_refused": rng.random() < 0.15,
                "lines": lines,
            }
            when = self.moment(EVENT_END, 96)
            self.add(when, "counterfeit_compensation", data, "cf", labelled=True)

    # -- SPEC §5 -------------------------------------------------------------------------
    def clawbacks(self, n: int) -> None:
        rng = self.rng
        for i in range(n):
            covered = rng.random() < 0.75
            data = {
                "order_id": f"FW-{40000 + i}",
                "category": rng.choice(CATEGORIES_COVERED if covered else CATEGORIES_OTHER),
                "platform_subsidy": money(rng.choice([20, 50, 120, 200, 300])),
                "quantity": rng.choice([1, 1, 2]),
                "forwarded": rng.random() > 0.2,
            }
            self.add(self.moment(EVENT_START, 96), "forwarding_clawback", data, "fw", labelled=True)

    # -- SPEC §6 (first-party plugins) ---------------------------------------------------
    def admissions(self, n: int) -> None:
        rng = self.rng
        for i in range(n):

            def pick(good: list[Any], bad: list[Any]) -> Any:
                # Most merchants and products meet each criterion; a few miss one.
                return rng.choice(bad if rng.random() < 0.06 else good)

            merchant = {
                "newcomer": pick([False], [True]),
                "seven_day_returns": True,
                "shipping_insurance": pick([True], [False]),
                "authenticity_guarantee": True,
                "experience_score": pick([70, 75, 82, 90], [66, "69.5"]),
                "logistics_score": pick([65, 72, 88], [60]),
                "avg_response_seconds": pick([12, 25, 40], [55]),
                "shop_type": pick(SHOP_TYPES[:-1], ["personal"]),
                "accepts_inspection": pick([True], [False]),
            }
            product = {
                "good_review_rate": pick(["90%", "92%", "97.5%"], ["88%"]),
                "quality_return_rate": pick(["0.2%", "0.54%"], ["0.8%"]),
                "negative_review_rate": pick(["0.1%", "0.33%"], ["0.5%"]),
                "complaint_rate": pick(["0.01%", "0.03%"], ["0.05%"]),
                "shipping_mode": pick(["spot"], ["presale", "tiered"]),
                "white_background": pick([True], [False]),
                "product_type": pick(["normal"], ["virtual", "group_buy"]),
            }
            data = {"merchant_id": f"M-{5000 + i}", "merchant": merchant, "product": product}
            self.add(
                self.moment(EVENT_START - timedelta(days=10), 120),
                "chaozhigou_admission",
                data,
                "ad",
            )

    def shipping(self, n: int) -> None:
        rng = self.rng
        for i in range(n):
            paid = self.moment(EVENT_START, 72)
            data = {
                "order_id": f"SH-{60000 + i}",
                "paid_at": at(paid),
                "shipped_at": at(paid + timedelta(hours=rng.choice([3, 20, 47, 48, 49, 70]))),
                "category": rng.choice(["服饰", "数码", "jewelry", "珠宝", "家居"]),
            }
            self.add(paid + timedelta(days=3), "shipping_check", data, "sh")

    def alliance(self, n: int) -> None:
        rng = self.rng
        for _ in range(n):
            data = {
                "effective_reviews": rng.choice([8, 20, 21, 150]),
                "dsr": rng.choice(["4.3", "4.5", "4.8"]),
                "favorable_rate": rng.choice(["75%", "80%", "93%"]),
                "closures": rng.choice([0, 0, 1, 3]),
            }
            self.add(
                self.moment(EVENT_START - timedelta(days=20), 200),
                "select_alliance_admission",
                data,
                "sa",
            )
        for _ in range(n):
            category = rng.choice(["女装", "家电", "生鲜", "玩具"])
            data = {
                "category": category,
                "quality_return_rate": rng.choice(["0.2%", "0.45%", "0.6%"]),
            }
            if category == "生鲜":
                data["shipping_24h_rate"] = rng.choice(["90%", "98%"])
            self.add(
                self.moment(EVENT_START - timedelta(days=20), 200),
                "select_alliance_product",
                data,
                "sp",
            )
        for week in range(n):
            day = datetime(2026, 11, 2) + timedelta(days=week % 14)
            data = {
                "date": day.strftime("%Y-%m-%d"),
                "dsr": rng.choice(["4.2", "4.6", "4.9"]),
                "favorable_rate": rng.choice(["78%", "85%"]),
                "closures": rng.choice([0, 1, 2]),
            }
            self.add(day + timedelta(hours=23), "select_alliance_review", data, "sr")

    # -- the mistakes real files have ----------------------------------------------------
    def mistakes(self) -> None:
        when = EVENT_START + timedelta(hours=30)
        split = {
            "list_price": "199.00",
            "registration_price": "169.00",
            "subsidy_price": "149.00",
            "floor_price": "139.00",
            "cost_price": "120.00",
        }
        bad = [
            ("subsidy_split", {**split, "subsidy_price": "149.005"}),  # three decimals
            ("subsidy_split", {**split, "cost_price": "-120.00"}),  # negative price
            ("subsidy_split", {k: v for k, v in split.items() if k != "floor_price"}),  # missing
            (
                "shipping_check",
                {
                    "order_id": "SH-BAD",
                    "paid_at": "11/11/2026 10:00",
                    "shipped_at": "2026-11-12T09:00",
                },
            ),  # bad time
            ("subsidy_split_v2", split),  # unknown kind
        ]
        for offset, (kind, data) in enumerate(bad):
            self.add(when + timedelta(hours=9 * offset), kind, data, "bad")
        # A line cut off by a spreadsheet export (malformed JSON) and an exponent number.
        self.raw(
            when - timedelta(hours=40),
            '{"kind": "subsidy_split", "input": {"list_price": "199.00", ',
        )
        self.raw(
            when + timedelta(hours=60),
            '{"kind": "subsidy_split", "request_id": "cz-bad-exp", "input": {"list_price": 1e3, '
            '"registration_price": "899.00", "subsidy_price": "799.00", "floor_price": "780.00", '
            '"cost_price": "600.00"}}',
        )

    def text(self) -> str:
        ordered = sorted(self.lines, key=lambda item: item[0])  # stable: ties keep their order
        return "".join(line + "\n" for _, line in ordered)


def build() -> str:
    campaign = Campaign(random.Random(SEED))
    campaign.splits(110)
    campaign.claims(70)
    campaign.counterfeits(45)
    campaign.clawbacks(40)
    campaign.admissions(20)
    campaign.shipping(20)
    campaign.alliance(10)
    campaign.mistakes()
    return campaign.text()


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "campaign.jsonl"
    target.write_text(build(), encoding="utf-8")
    print(f"wrote {sum(1 for _ in target.open(encoding='utf-8'))} requests to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
