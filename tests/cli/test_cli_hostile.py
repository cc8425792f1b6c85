"""Hostile input through the command line (issue 12, part 4; SPEC §1, §8).

Found by fuzzing: a lone surrogate anywhere (one such line once killed a whole batch — no
output file, no valid line recorded), nesting of hundreds or 100,000 levels, integers of
thousands of digits or beyond 64 bits, U+0000, full-width digits, counts written ``1e2``
or ``2.0``. Each is an invalid row in a batch (with request_id and kind when the line
could be read that far) and exit 2 from ``decide``; nothing is recorded for it, the lines
around it are, and every output file is complete and valid UTF-8.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from cli_support import CLEAN_ENV, Invoke, run_pricecalc, store_count
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

import audit
from pricecalc.cli import cli

CF: dict[str, Any] = {
    "kind": "counterfeit_compensation",
    "request_id": "h",
    "input": {
        "order_id": "O-H",
        "confirmed": True,
        "lines": [{"line_id": "L1", "paid_amount": "68.00"}],
    },
}
CB: dict[str, Any] = {
    "kind": "forwarding_clawback",
    "request_id": "h",
    "input": {
        "order_id": "O-C",
        "category": "手机",
        "platform_subsidy": "200.00",
        "quantity": 1,
        "forwarded": True,
    },
}
CFK, CBK = "counterfeit_compensation", "forwarding_clawback"


def edited(request: dict[str, Any], old: str, new: str) -> bytes:
    """The request as a JSON line with ``old`` replaced by ``new`` (raw JSON text, so that
    escapes such as ``\\ud800`` stay escapes)."""
    text = json.dumps(request, ensure_ascii=False)
    assert old in text
    return text.replace(old, new, 1).encode("utf-8")


DEEP = "[" * 100_000 + "]" * 100_000
#: name → (JSON line, its error, its request_id (None: not readable), its kind)
CASES: dict[str, tuple[bytes, str, str | None, str | None]] = {
    "surrogate in request_id": (
        edited(CF, '"request_id": "h"', '"request_id": "s\\ud800"'),
        "request_id: is not valid Unicode text (a lone surrogate U+D800 at character 2) "
        "(got 's\\ud800')",
        None, CFK,
    ),
    "surrogate in the input": (
        edited(CF, '"O-H"', '"O\\udfff"'),
        "input.order_id: is not valid Unicode text (a lone surrogate U+DFFF at character 2) "
        "(got 'O\\udfff')",
        "h", CFK,
    ),
    "surrogate in merchant_id": (
        edited(CF, '"request_id": "h"', '"request_id": "h", "merchant_id": "m\\ud800x"'),
        "merchant_id: is not valid Unicode text (a lone surrogate U+D800 at character 2) "
        "(got 'm\\ud800x')",
        "h", CFK,
    ),
    "surrogate as a field name": (
        edited(CF, '"confirmed": true', '"confirmed": true, "\\ud800": 1'),
        "input.'\\ud800': (a field name) is not valid Unicode text (a lone surrogate U+D800 "
        "at character 1) (got '\\ud800')",
        "h", CFK,
    ),
    "U+0000 in campaign": (
        edited(CF, '"request_id": "h"', '"request_id": "h", "campaign": "c\\u0000"'),
        "campaign: must not contain the character U+0000 (got 'c\\x00')",
        "h", CFK,
    ),
    "U+0000 in the input": (
        edited(CF, '"L1"', '"L\\u0000"'),
        "input.lines[0].line_id: must not contain the character U+0000 (got 'L\\x00')",
        "h", CFK,
    ),
    "nested 600 levels": (
        edited(CF, '"confirmed": true', '"confirmed": true, "x": ' + "[" * 600 + "]" * 600),
        "input.x[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0…][0][0][0][0][0]: is "
        "nested deeper than 32 levels of objects and lists (got more levels)",
        "h", CFK,
    ),
    "nested 100,000 levels": (
        edited(CF, '"confirmed": true', '"confirmed": true, "x": ' + DEEP),
        "not valid JSON: it is nested too deeply to read (a request may nest at most 32 "
        "levels of objects and lists)",
        None, None,
    ),
    "an integer of 5,000 digits": (
        edited(CB, '"quantity": 1', '"quantity": ' + "9" * 5000),
        "not valid JSON: a number has more than 4,300 digits",
        None, None,
    ),
    "an integer beyond 64 bits": (
        edited(CB, '"quantity": 1', '"quantity": ' + "9" * 25),
        "input.quantity: is too large a number (at most 9223372036854775807) (got an "
        "integer of 25 digits)",
        "h", CBK,
    ),
    "full-width digits in an amount": (
        edited(CF, '"68.00"', '"６８"'),
        "input.lines[0].paid_amount: must be written with ASCII digits 0-9 (such as "
        "\"199.90\") (got '６８')",
        "h", CFK,
    ),
    "full-width digits in a count": (
        edited(CB, '"quantity": 1', '"quantity": "１０"'),
        "input.quantity: must be written with ASCII digits 0-9 (such as 2) (got '１０')",
        "h", CBK,
    ),
    "a count written 1e2": (
        edited(CB, '"quantity": 1', '"quantity": 1e2'),
        "input.quantity: must be a whole number (a JSON integer such as 2) (got 1E+2)",
        "h", CBK,
    ),
    "a count written 2.0": (
        edited(CB, '"quantity": 1', '"quantity": 2.0'),
        "input.quantity: must be a whole number (a JSON integer such as 2) (got 2.0)",
        "h", CBK,
    ),
    "a count written \"2.0\"": (
        edited(CB, '"quantity": 1', '"quantity": "2.0"'),
        "input.quantity: must be a whole number (got '2.0')",
        "h", CBK,
    ),
    "bytes that are not UTF-8": (
        b'{"kind": "counterfeit_compensation", "request_id": "\xff\xfe"}',
        "line is not UTF-8 text (byte 53)",
        None, None,
    ),
}  # fmt: skip


def around(line: bytes) -> bytes:
    """The hostile line between two valid ones."""
    before = {**CF, "request_id": "ok-1", "input": {**CF["input"], "order_id": "O-1"}}
    after = {**CB, "request_id": "ok-2"}
    return b"\n".join([json.dumps(before).encode(), line, json.dumps(after).encode()]) + b"\n"


def read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    """The output rows, checking the file is complete and valid UTF-8 text."""
    if fmt == "xlsx":
        sheet = openpyxl.load_workbook(path)["decisions"]
        rows = list(sheet.iter_rows(values_only=True))
        return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    text = path.read_bytes().decode("utf-8")  # strict: a surrogate never reached the file
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "xlsx"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_line_is_an_invalid_row_and_the_batch_goes_on(
    invoke: Invoke, tmp_path: Path, store: Path, case: str, fmt: str
) -> None:
    """SPEC §1, §8: the hostile line is an invalid row naming the problem (request_id and
    kind when readable), nothing is recorded for it, both lines around it are recorded,
    and the output is complete: three rows, valid UTF-8."""
    line, error, request_id, kind = CASES[case]
    source = tmp_path / "in.jsonl"
    source.write_bytes(around(line))
    out = tmp_path / f"out.{fmt}"
    result = invoke("batch", str(source), "-o", str(out), "--headers", "en") if fmt != "jsonl" \
        else invoke("batch", str(source), "-o", str(out))  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    rows = read_rows(out, fmt)
    assert len(rows) == 3
    assert [r["status"] for r in rows] == ["approved", "invalid", "approved"]
    bad = rows[1]
    if fmt == "jsonl":
        expected = {"line": 2, "status": "invalid", "error": error}
        expected.update({k: v for k, v in (("request_id", request_id), ("kind", kind)) if v})
        assert bad == expected
    else:
        got = {k: bad[k] or None for k in ("request_id", "kind")}
        assert got == {"request_id": request_id, "kind": kind}
        assert bad["error"] in (error, "'" + error)  # a CSV cell starting with ' is escaped
    assert store_count(store) == 2
    with audit.open_store(str(store)) as opened:
        assert [r.key for r in opened.query()] == ["ok-1", "ok-2"]


@pytest.mark.parametrize("case", list(CASES))
def test_decide_refuses_each_hostile_request_with_exit_2(
    invoke: Invoke, store: Path, case: str
) -> None:
    """SPEC §1: `decide` exits 2 with one sentence for each, records nothing, no
    traceback."""
    line, error, _, _ = CASES[case]
    result = invoke("decide", input=line)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    if error.startswith("not valid JSON: "):
        error = "the request is " + error
    elif error.startswith("line is not UTF-8"):
        error = "the request is not valid JSON: it is not UTF-8 text (byte 53)"
    assert result.stderr == f"Error: invalid input, nothing recorded: {error}\n"
    assert store_count(store) == 0


def test_hostile_csv_cells_are_invalid_rows(invoke: Invoke, tmp_path: Path, store: Path) -> None:
    """The same through CSV: a JSON cell with a lone surrogate or nested too deep, U+0000
    in a cell, full-width digits, a count 2.0 — each row invalid, with its request_id and
    kind; the good rows are recorded; the output is valid UTF-8. A cell too long for CSV
    (more than 131,072 characters) is an invalid row too."""
    deep = '"' + "[" * 5000 + "]" * 5000 + '"'
    long = '"' + "[" * 100_000 + "]" * 100_000 + '"'
    source = tmp_path / "cf.csv"
    source.write_text(
        "request_id,order_id,confirmed,lines\n"
        'ok-1,O-1,true,"[{""line_id"": ""L1"", ""paid_amount"": ""68.00""}]"\n'
        'bad-2,O-2,true,"[{""line_id"": ""L\\ud800"", ""paid_amount"": ""68.00""}]"\n'
        f"bad-3,O-3,true,{deep}\n"
        'bad-4,O-\x004,true,"[{""line_id"": ""L1"", ""paid_amount"": ""68.00""}]"\n'
        'bad-5,O-5,true,"[{""line_id"": ""L1"", ""paid_amount"": ""６８""}]"\n'
        'bad-6,O-6,yes please,"[{""line_id"": ""L1"", ""paid_amount"": ""68.00""}]"\n'
        'ok-7,O-7,true,"[{""line_id"": ""L1"", ""paid_amount"": ""68.00""}]"\n'
        f"bad-8,O-8,true,{long}\n"
        'ok-9,O-9,true,"[{""line_id"": ""L1"", ""paid_amount"": ""68.00""}]"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    result = invoke("batch", str(source), "--kind", CFK, "-o", str(out))
    assert result.exit_code == 1, result.output
    rows = [json.loads(x) for x in out.read_bytes().decode("utf-8").splitlines()]
    assert [(r.get("request_id"), r["status"]) for r in rows] == [
        ("ok-1", "approved"), ("bad-2", "invalid"), ("bad-3", "invalid"),
        ("bad-4", "invalid"), ("bad-5", "invalid"), ("bad-6", "invalid"), ("ok-7", "approved"),
        (None, "invalid"), ("ok-9", "approved"),
    ]  # fmt: skip
    errors = [r["error"] for r in rows if r["status"] == "invalid"]
    assert errors[0] == (
        "input.lines[0].line_id: is not valid Unicode text (a lone surrogate U+D800 at "
        "character 2) (got 'L\\ud800')"
    )
    assert errors[1] == (
        "column lines: the cell looks like JSON but is not (it is nested too deeply to read "
        "(a request may nest at most 32 levels of objects and lists))"
    )
    assert errors[2] == "input.order_id: must not contain the character U+0000 (got 'O-\\x004')"
    assert errors[3].startswith("input.lines[0].paid_amount: must be written with ASCII digits")
    assert errors[4].startswith("input.confirmed: ")
    assert errors[5] == "row is not valid CSV: a cell is longer than 131,072 characters"
    assert all(r.get("kind") == CFK for r in rows[:7])
    counts = tmp_path / "cb.csv"
    counts.write_text(
        "request_id,order_id,category,platform_subsidy,quantity,forwarded\n"
        "c-1,O-1,手机,200.00,2.0,true\nc-2,O-2,手机,200.00,１０,true\nc-3,O-3,手机,200.00,2,true\n",
        encoding="utf-8",
    )
    result = invoke("batch", str(counts), "--kind", CBK, "-o", str(out))
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    # SPEC §1 (issue 21): in a CSV cell a count with a zero fraction is the integer.
    assert [r["status"] for r in rows] == ["approved", "invalid", "approved"]
    assert rows[0]["result"]["quantity"] == 2
    assert store_count(store) == 5


def test_a_csv_row_that_cannot_be_read_keeps_its_request_id_and_kind(
    invoke: Invoke, tmp_path: Path
) -> None:
    """SPEC §8: request_id and kind whenever the line was read that far — a CSV row whose
    JSON cell cannot be read was read that far (the reader hands them on)."""
    source = tmp_path / "cf.csv"
    source.write_text("request_id,order_id,confirmed,lines\nbad-1,O-1,true,[{\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert invoke("batch", str(source), "--kind", CFK, "-o", str(out)).exit_code == 1
    row = json.loads(out.read_text(encoding="utf-8"))
    assert (row.get("request_id"), row.get("kind")) == ("bad-1", CFK)


# -- the fuzz test -------------------------------------------------------------------------
def valid_line(index: int) -> dict[str, Any]:
    return {**CF, "request_id": f"ok-{index}", "input": {**CF["input"], "order_id": f"O-{index}"}}


TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=6
)  # every code point, lone surrogates included
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def hostile_line(draw: st.DrawFn) -> bytes:
    """A line that must be invalid: raw bytes that are not UTF-8, or a request with hostile
    JSON (``\\ud800`` escapes, U+0000, deep nesting, huge numbers) somewhere in it."""
    choice = draw(st.sampled_from(["bytes", "escape", "deep", "huge", "value"]))
    if choice == "bytes":
        junk = draw(st.binary(min_size=1, max_size=12).filter(lambda b: b"\n" not in b))
        return b'{"kind": "' + b"\xff" + junk + b'"}'
    if choice == "deep":
        depth = draw(st.sampled_from([33, 600, 5000, 100_000]))
        nest = "[" * depth + "]" * depth
        return edited(CF, '"confirmed": true', f'"confirmed": true, "x": {nest}')
    if choice == "huge":
        digits = draw(st.sampled_from([20, 400, 4301, 6000]))
        return edited(CB, '"quantity": 1', '"quantity": ' + "9" * digits)
    where = draw(st.sampled_from(['"request_id": "h"', '"O-H"', '"L1"', '"confirmed": true']))
    bad = draw(st.sampled_from(["\\ud800", "\\udfff", "\\u0000", "a\\ud83d", "\\udc00b"]))
    if choice == "escape":
        if where == '"confirmed": true':
            return edited(CF, where, f'"confirmed": true, "k{bad}": 1')
        return edited(CF, where, where[:-1] + bad + '"')
    value = json.dumps(draw(JSON_VALUE), ensure_ascii=True)
    return edited(CF, '"confirmed": true', f'"confirmed": true, "x{bad}": {value}')


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    plan=st.lists(st.one_of(st.just(None), hostile_line()), min_size=1, max_size=8),
    fmt=st.sampled_from(["jsonl", "csv", "xlsx"]),
)
def test_batch_survives_any_hostile_line(plan: list[bytes | None], fmt: str) -> None:
    """Fuzz over the whole request shape through `batch` (JSON Lines written as bytes):
    one output row per input line, the hostile lines invalid, every valid line recorded,
    exit 0 or 1 only, never a traceback."""
    lines = [json.dumps(valid_line(i)).encode() if item is None else item
             for i, item in enumerate(plan)]  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        where = Path(folder)
        source = where / "in.jsonl"
        source.write_bytes(b"\n".join(lines) + b"\n")
        out = where / f"out.{fmt}"
        store = where / "audit.jsonl"
        args = ["--audit", str(store), "batch", str(source), "-o", str(out), "-q"]
        args += [] if fmt == "jsonl" else ["--headers", "en"]
        result = CliRunner().invoke(cli, args, env=CLEAN_ENV)
        valid = sum(item is None for item in plan)
        assert result.exit_code == (0 if valid == len(plan) else 1), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        rows = read_rows(out, fmt)
        assert len(rows) == len(plan)
        assert [r["status"] for r in rows] == [
            "approved" if item is None else "invalid" for item in plan
        ]
        assert store_count(store) == valid



SPLIT_ARGS = ("split", "--list-price", "199", "--registration-price", "169",
              "--subsidy-price", "149", "--floor-price", "139", "--cost-price", "120")  # fmt: skip
HOSTILE_OPTIONS = {
    "statement --merchant": ("statement", "--merchant", "{x}", "--since", "2026-11-01",
                             "--until", "2026-11-30", "-o", "s.csv"),
    "report --merchant": ("report", "--merchant", "{x}", "-o", "r.html"),
    "report --campaign": ("report", "--campaign", "{x}", "-o", "r.html"),
    "audit show --merchant": ("audit", "show", "--merchant", "{x}"),
    "audit show --order-id": ("audit", "show", "--order-id", "{x}"),
    "audit export --operator": ("audit", "export", "--operator", "{x}", "-o", "e.csv"),
    "batch --merchant": ("batch", "in.jsonl", "--merchant", "{x}", "-o", "b.jsonl"),
    "batch --campaign": ("batch", "in.jsonl", "--campaign", "{x}", "-o", "b.jsonl"),
    "split --merchant": (*SPLIT_ARGS, "--merchant", "{x}"),
    "--operator": ("--operator", "{x}", *SPLIT_ARGS),
}  # fmt: skip


@pytest.mark.parametrize("args", HOSTILE_OPTIONS.values(), ids=list(HOSTILE_OPTIONS))
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("M\udcff", "is not valid Unicode text (a lone surrogate U+DCFF at character 2)"),
        ("M\x00", "must not contain the character U+0000"),
    ],
    ids=["non-UTF-8 bytes", "U+0000"],
)
def test_hostile_text_options_are_refused_before_anything_happens(
    invoke: Invoke, store: Path, tmp_path: Path, args: tuple[str, ...], text: str, problem: str
) -> None:
    """Bytes that are not UTF-8 (a lone surrogate once decoded) or U+0000 in a text option
    that reaches a record or a lookup: exit 2 naming the option, no traceback, nothing
    recorded, no file written."""
    assert invoke(*SPLIT_ARGS, "--request-id", "first").exit_code == 0
    (tmp_path / "in.jsonl").write_text(json.dumps({"kind": "subsidy_split", "input": {}}) + "\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [text if a == "{x}" else a for a in args]
    result = invoke(*argv)
    option = next(a for a, b in itertools.pairwise(argv) if b == text)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"Invalid value for '{option}': {text!r} {problem}" in result.output
    assert store_count(store) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_non_utf8_argv_bytes_in_a_real_process(tmp_path: Path) -> None:
    """The same through a real process: the shell hands Python raw bytes."""
    result = run_pricecalc(
        ["--audit", str(tmp_path / "a.jsonl"), "audit", "show", "--merchant", b"M\xff"],
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert b"Invalid value for '--merchant': 'M\\udcff' is not valid Unicode text" in result.stderr
    assert b"Traceback" not in result.stderr
