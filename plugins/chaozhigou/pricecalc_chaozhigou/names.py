"""The names of 超值购 (SPEC §6): English ids, their Chinese names, and the Chinese names
accepted in input (``旗舰店`` → ``flagship``, ``预售`` → ``presale``) — the vocabulary
:mod:`pricecalc_chaozhigou.admission` reads its input and writes its reasons in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pricecalc.toolkit import norm

SERVICES: dict[str, str] = {
    "seven_day_returns": "7天无理由退货",
    "shipping_insurance": "运费险",
    "authenticity_guarantee": "正品保障",
}
SHOP_TYPES: dict[str, str] = {
    "flagship": "旗舰店",
    "exclusive": "专卖店",
    "specialty": "专营店",
    "mall": "商场店",
    "hypermarket": "卖场店",
    "personal": "个人店",
}
PERSONAL = "personal"
SHIPPING_MODES: dict[str, str] = {"spot": "现货", "presale": "预售", "tiered": "阶梯发货"}
PRODUCT_TYPES: dict[str, str] = {
    "group_buy": "拼团商品",
    "virtual": "虚拟商品",
    "insurance": "保险商品",
    "luban": "鲁班商品",
    "third_party": "第三方商品",
}


def _aliases(names: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    aliases = {norm(zh): en for en, zh in names.items()}
    aliases.update({norm(k): v for k, v in extra.items()})
    return aliases


_SHOP_ALIASES = _aliases(SHOP_TYPES, {"个人店铺": PERSONAL})
_SHIPPING_ALIASES = _aliases(SHIPPING_MODES, {"现货发货": "spot", "阶梯": "tiered"})
_PRODUCT_ALIASES = _aliases(
    PRODUCT_TYPES,
    {
        "拼团": "group_buy",
        "虚拟": "virtual",
        "保险": "insurance",
        "鲁班": "luban",
        "第三方": "third_party",
    },
)


def shop_type_id(value: str) -> str:
    """``旗舰店`` or ``Flagship`` → ``flagship``; an unknown name is kept (normalised)."""
    return _SHOP_ALIASES.get(norm(value), norm(value))


def shipping_mode_id(value: str) -> str:
    """``现货`` → ``spot``, ``预售`` → ``presale``, ``阶梯发货`` → ``tiered``."""
    return _SHIPPING_ALIASES.get(norm(value), norm(value))


def product_type_id(value: str) -> str:
    """``拼团商品`` → ``group_buy`` … ; any other type is kept (normalised)."""
    return _PRODUCT_ALIASES.get(norm(value), norm(value))


def label(ident: str, names: Mapping[str, str]) -> str:
    """``flagship (旗舰店)``: an id with its Chinese name, when it has one."""
    return f"{ident} ({names[ident]})" if ident in names else ident


def labels(idents: Iterable[str], names: Mapping[str, str]) -> str:
    """Ids with their Chinese names, comma-separated, or ``none``."""
    return ", ".join(label(i, names) for i in idents) or "none"
