"""The Chinese headings a clerk reads for pricecalc's fields (issue 21 point 4): one table,
used by a message naming a field (:mod:`pricecalc.messages`: 原价 for ``input.list_price``)
and by the sheets pricecalc writes and reads (:mod:`pricecalc.files.columns`).

* :data:`FIXED_COLUMN_LABELS` — the columns whose names are pricecalc's own (请求号 for
  ``request_id``, 操作员 for ``operator``); the money columns' labels are the rules'
  declarations, added in :data:`pricecalc.files.columns.COLUMN_LABELS`;
* :data:`INPUT_LABELS` — the built-in kinds' input fields (原价 for ``list_price``);
* :func:`field_heading` — a name's heading from either table.

Part of the flat contract: it imports nothing, so the lowest module may name a field.
"""

from __future__ import annotations

#: Column headings for people (``--headers zh``, the Excel default), one per machine name
#: of the columns that do not depend on the installed kinds.
FIXED_COLUMN_LABELS: dict[str, str] = {
    "line": "行号",
    "request_id": "请求号",
    "kind": "类型",
    "status": "状态",
    "replayed": "是否重放",
    "merchant_id": "商家",
    "campaign": "活动",
    "reason_codes": "原因代码",
    "reason_notes": "原因说明",
    "error": "错误",
    "order_id": "订单号",
    "result": "结果(JSON，不计入合计)",
    "audit_seq": "记录号",
    "audit_hash": "哈希",
    "seq": "记录号",
    "recorded_at": "记录时间(UTC)",
    "recorded_at_beijing": "记录时间(北京时间)",
    "operator": "操作员",
    "settlement": "结算方式",
    "voided_by": "被作废(作废记录号)",
    "voids": "作废的记录号",
    "rule_set": "规则集",
    "rule_version": "规则版本",
    "hash": "哈希",
    "reverses": "冲销的记录号",
    "content_key": "记录键",
}
#: The built-in kinds' input fields by their SPEC §2–§5 Chinese names (issue 21 point 4):
#: a sheet's heading and a message naming the field use the same word (原价). Kept apart
#: from :data:`FIXED_COLUMN_LABELS` so that an output's headings are unchanged: a round
#: trip repeats the input's columns as the clerk wrote them (``list_price`` stays
#: ``list_price``).
INPUT_LABELS: dict[str, str] = {
    "input": "输入",
    "list_price": "原价",
    "registration_price": "报名价",
    "subsidy_price": "补贴价",
    "platform_subsidy": "平台补贴",
    "floor_price": "最低售卖价",
    "cost_price": "成本价",
    "lowest_price_30d": "近30日最低成交价",
    "other_platform_prices": "其他平台价格",
    "platform": "平台",
    "price": "价格",
    "quantity": "数量",
    "product_id": "商品号",
    "category": "类目",
    "forwarded": "已转售",
    "lines": "明细",
    "line_id": "明细号",
    "paid_amount": "实付金额",
    "unit_price": "单价",
    "merchant_refused": "商家拒绝",
    "confirmed": "已确认假货",
    "already_refunded": "已退款",
    "event": "活动期",
    "start": "开始时间",
    "end": "结束时间",
    "offers": "优惠",
    "type": "优惠类型",
    "threshold": "门槛",
    "amount": "金额",
    "tiers": "档位",
    "paid_at": "付款时间",
    "paid_merchant_discount": "已付商家优惠",
    "order_status": "订单状态",
    "claim_days": "价保天数",
    "claimed_at": "申请时间",
    "shipped_at": "发货时间",
    "merchant": "商家资质",
    "product": "商品",
    "dsr": "店铺评分",
    "effective_reviews": "有效评价数",
    "favorable_rate": "好评率",
    "closures": "关店次数",
    "date": "日期",
    "shipping_24h_rate": "24小时发货率",
    "quality_return_rate": "品质退货率",
    "cs_satisfaction": "客服满意度",
    "target": "作废对象",
    "seq": "记录号",
    "reason": "原因",
}


def field_heading(name: str) -> str | None:
    """The Chinese heading of a field or fixed column (原价 for ``list_price``), or None."""
    return FIXED_COLUMN_LABELS.get(name) or INPUT_LABELS.get(name)


__all__ = ["FIXED_COLUMN_LABELS", "INPUT_LABELS", "field_heading"]
