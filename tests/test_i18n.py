"""The Chinese message catalog (issue 21 point 4): every marked message has a translation,
the committed .po is what the source marks today, the committed .mo is exactly Babel's
compilation of it, and every translation keeps its placeholders."""

from __future__ import annotations

import ast
import io
import re
import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from pricecalc import i18n, messages
from pricecalc.errors import InvalidInput, MissingField
from pricecalc.files.columns import COLUMN_LABELS, INPUT_LABELS, field_heading, heading_field
from pricecalc.plugins import load_registry
from pricecalc.policy import Policy

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "pricecalc/locale/zh_CN/LC_MESSAGES/pricecalc.po"
MO = PO.with_suffix(".mo")
#: The keywords of babel.cfg / `make catalog`: _(), N_() and msg() (pricecalc/i18n.py).
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None, "msg": None}


def _source_messages() -> set[str]:
    found = extract_from_dir(
        str(ROOT),
        # pricecalc and the first-party plugins, which share its catalog (babel.cfg)
        method_map=[("pricecalc/**.py", "python"), ("plugins/*/pricecalc_*/**.py", "python")],
        keywords=KEYWORDS,
    )
    return {message for _, _, message, _, _ in found if isinstance(message, str) and message}


def _catalog() -> Catalog:
    with PO.open("rb") as fp:
        return read_po(fp, locale="zh_CN", domain="pricecalc")


def _fields(text: str) -> list[str]:
    return sorted(name for _, name, _, _ in string.Formatter().parse(text) if name is not None)


def test_every_marked_message_has_a_chinese_translation() -> None:
    """Issue 21 point 4: a message marked in the source without a Chinese msgstr (or a
    fuzzy one) fails here — run `make catalog` and translate it in the .po."""
    catalog = _catalog()
    missing = sorted(
        message
        for message in _source_messages()
        if (entry := catalog.get(message)) is None or not entry.string or entry.fuzzy
    )
    assert missing == []


def test_the_catalog_is_not_stale() -> None:
    """Issue 21 point 4: the .po holds exactly what the source marks (no message the code
    no longer says, nothing it says left out)."""
    in_po = {entry.id for entry in _catalog() if entry.id}
    assert in_po == _source_messages()


def test_the_committed_mo_is_babels_compilation_of_the_po() -> None:
    """Issue 21 point 4: pricecalc runs on the committed .mo (the standard library's
    gettext); it must be byte for byte what Babel's write_mo (`pybabel compile`) makes of
    the .po, so the two never drift."""
    compiled = io.BytesIO()
    write_mo(compiled, _catalog())
    assert MO.read_bytes() == compiled.getvalue()


def test_every_translation_keeps_its_placeholders() -> None:
    """A translation that drops or renames a ``{field}`` would raise at run time when the
    message is formatted: each msgstr names exactly the msgid's fields."""
    wrong = [
        (entry.id, entry.string)
        for entry in _catalog()
        if entry.id and _fields(str(entry.id)) != _fields(str(entry.string))
    ]
    assert wrong == []


def test_translations_are_chinese() -> None:
    """A msgstr copied from the English msgid is not a translation (it would pass the
    completeness test): each one differs from its msgid, and holds Chinese text unless it
    is only placeholders and punctuation."""
    han = re.compile(r"[\u4e00-\u9fff]")
    words = re.compile(r"[A-Za-z]{2,}")
    copied = [
        entry.id
        for entry in _catalog()
        if entry.id
        and (
            entry.string == entry.id
            or (not han.search(entry.string) and words.search(re.sub(r"{[^}]*}", "", entry.id)))
        )
    ]
    assert copied == []


def test_every_input_field_of_the_builtin_kinds_has_a_chinese_heading() -> None:
    """Issue 21 point 4: messages and sheet headings name a field by one table of labels;
    every input field the built-in kinds declare has its Chinese heading there, and each
    heading reads back as its field."""
    registry = load_registry(Policy(), ())
    fields = {f for kind in registry.kinds() for f in registry.rule(kind)[1].input_fields}  # type: ignore[index]
    assert sorted(f for f in fields if field_heading(f) is None) == []
    for name, label in INPUT_LABELS.items():
        assert field_heading(name) == label
        assert heading_field(label) == name
    assert field_heading("list_price") == "原价"
    assert field_heading("registration_price") == "报名价"
    assert field_heading("subsidy_price") == "补贴价"
    assert field_heading("order_id") == COLUMN_LABELS["order_id"] == "订单号"
    labels = [*INPUT_LABELS.values(), *(COLUMN_LABELS[n] for n in ("request_id", "order_id"))]
    assert len(labels) == len(set(labels))  # one heading, one field


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "en"),
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "zh_CN.UTF-8", "LC_MESSAGES": "en_US.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "zh_CN.GB18030"}, "zh"),
        ({"LC_ALL": "en_US.UTF-8", "LANGUAGE": "zh_CN:en"}, "zh"),
        ({"LANGUAGE": "", "LANG": "zh_TW.UTF-8"}, "zh"),
        ({"LANG": "C.UTF-8"}, "en"),
    ],
)
def test_the_language_follows_gettexts_order_of_locale_variables(
    environ: dict[str, str], expected: str
) -> None:
    """Issue 21 point 4: LANGUAGE, LC_ALL, LC_MESSAGES, LANG — the first one set wins."""
    assert i18n.language_from_env(environ) == expected


def test_an_invalid_input_names_its_field_by_its_chinese_heading() -> None:
    """Issue 21 point 4: 原价 for ``input.list_price``; nested fields by each part's label;
    in English the message is the exception's own text, unchanged."""
    exc = InvalidInput("input.lines[1].paid_amount", "-1", "must not be negative")
    try:
        assert i18n.set_language("zh") == "zh"
        assert messages.describe(exc) == "明细[1].实付金额：不能为负数（收到 '-1'）"
        assert messages.describe(MissingField("input.list_price")) == "原价：必填，但缺失"
        assert messages.field_label("request_id") == "请求号"
        assert messages.field_label("input.no_such_field") == "no_such_field"
    finally:
        i18n.set_language(None)
    assert (
        messages.describe(exc)
        == str(exc)
        == ("input.lines[1].paid_amount: must not be negative (got '-1')")
    )


def test_a_message_is_its_english_text_and_crosses_processes_intact() -> None:
    """A msg() problem is a str equal to the English sentence (scripts, records and
    ``str(exc)`` see what they always did) that pickles with its template (the parallel
    batch's workers)."""
    import pickle

    made = i18n.msg("must be at least {minimum}", minimum=1)
    assert made == "must be at least 1"
    again = pickle.loads(pickle.dumps(made))
    assert (again, again.template, again.values) == (made, made.template, {"minimum": 1})
    try:
        i18n.set_language("zh")
        assert messages.shown(again) == "至少为 1"
    finally:
        i18n.set_language(None)


#: Calls that print a message to the user (click's and the command line's own), and the
#: position of their message argument.
_MESSAGE_CALLS = {
    "echo": 0,
    "ClickException": 0,
    "UsageError": 0,
    "BadParameter": 0,
    "warn": 0,
    "Failure": 0,
    "DataError": 0,
    "Interrupted": 0,
    "InvalidRequest": 0,
    "Misuse": 0,
    "bad_file": 1,
    "confirm": 0,
    "prompt": 0,
}
#: Printed text that is data, not prose: ``audit head`` prints ``seq N hash H`` for scripts.
_DATA_LINES = {("audit.py", "f'seq {current.seq} hash {current.hash}'")}


def _english_words(node: ast.expr) -> bool:
    """True when the expression holds English text of its own (not through _())."""
    words = re.compile(r"[A-Za-z]{2,}")
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(words.search(node.value))
    if isinstance(node, ast.JoinedStr):
        return any(_english_words(part) for part in node.values)
    if isinstance(node, ast.BinOp):
        return _english_words(node.left) or _english_words(node.right)
    return False


def test_no_command_prints_an_unmarked_message() -> None:
    """Issue 21 point 4: every sentence the command line prints goes through the catalog
    — a literal (or an f-string with words of its own) handed to click.echo, an exception
    or warn() fails here; mark it with _() and translate it (`make catalog`)."""
    found = []
    for path in sorted((ROOT / "pricecalc/cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            position = _MESSAGE_CALLS.get(str(name))
            if position is None or len(node.args) <= position:
                continue
            message = node.args[position]
            if (path.name, ast.unparse(message)) in _DATA_LINES:
                continue
            if _english_words(message):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(message)}")
    assert found == []
