"""A clerk's language (issue 21 point 4): with a Chinese locale or ``--lang zh`` every
message printed at run time is Chinese and names fields by their Chinese headings; English
stays exactly as it was; click's usage banner only for a wrong invocation."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import CLEAN_ENV, SPLIT, Invoke
from click.testing import CliRunner, Result

from pricecalc import i18n
from pricecalc.cli import cli

BAD_LIST_PRICE = {
    "kind": "subsidy_split",
    "request_id": "split-bad",
    "input": {**SPLIT["input"], "list_price": "19a"},
}


def _run(store: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--audit", str(store), *args], env={**CLEAN_ENV, **(env or {})})


def _batch_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (SPLIT, BAD_LIST_PRICE)),
        encoding="utf-8",
    )
    return path


ZH_SUMMARY = """\
共 2 行：新记录 1 个决定，0 个已记录过(重放)，无效 1 行
决定

  类型            状态       新记录   重放
 ──────────────────────────────────────────
  subsidy_split   approved        1      0
  —               invalid         1      0
"""


def test_a_batch_in_chinese_names_the_field_by_its_heading(tmp_path: Path, store: Path) -> None:
    """Issue 21 point 4: under LANG=zh_CN.UTF-8 the invalid line's error names 原价, the
    summary's prose and the closing sentence are Chinese; exit 1 as in English."""
    source = _batch_file(tmp_path)
    result = _run(store, "batch", str(source), "-o", "-", env={"LANG": "zh_CN.UTF-8"})
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[1] == {
        "line": 2,
        "status": "invalid",
        "error": "原价：必须是普通的十进制数，例如 \"199.90\"（收到 '19a'）",
        "request_id": "split-bad",
        "kind": "subsidy_split",
    }
    assert result.stderr.startswith(ZH_SUMMARY)
    assert "\n金额\n" in result.stderr
    assert result.stderr.endswith('2 行中有 1 行无效（标准输出 中状态为 "invalid" 的行）。\n')


def test_the_same_batch_in_english_is_unchanged(tmp_path: Path, store: Path) -> None:
    """Issue 21 point 4: without a Chinese locale (or with ``--lang en`` over one) the
    messages are the English ones, word for word."""
    source = _batch_file(tmp_path)
    for args, env in (([], {}), (["--lang", "en"], {"LANG": "zh_CN.UTF-8"})):
        result = CliRunner().invoke(
            cli,
            ["--audit", str(store), *args, "batch", str(source), "-o", "-"],
            env={**CLEAN_ENV, **env},
        )
        assert result.exit_code == 1
        error = json.loads(result.stdout.splitlines()[1])["error"]
        assert error == (
            "input.list_price: must be a plain decimal number such as \"199.90\" (got '19a')"
        )
        assert result.stderr.splitlines()[1] == "Decisions"
        assert result.stderr.endswith(
            '1 of 2 lines were invalid (rows with status "invalid" in standard output).\n'
        )


def test_lang_zh_wins_over_an_english_locale(invoke: Invoke, store: Path) -> None:
    """``--lang zh`` (a global option) over LANG=en_US: invalid input in Chinese, exit 2,
    nothing recorded."""
    result = _run(
        store,
        "--lang",
        "zh",
        "decide",
        env={"LANG": "en_US.UTF-8"},
    )
    assert result.exit_code == 2
    assert (
        result.stderr == "错误：输入无效，未记录任何内容："
        "请求不是有效的 JSON：此处应有一个值（第 1 行，第 1 列）\n"
    )
    one = CliRunner().invoke(
        cli,
        ["--audit", str(store), "--lang", "zh", "decide"],
        input=json.dumps({"kind": "subsidy_split", "input": {"registration_price": "1"}}),
        env=CLEAN_ENV,
    )
    assert (one.exit_code, one.stderr) == (
        2,
        "错误：输入无效，未记录任何内容：原价：必填，但缺失\n",
    )


def test_a_store_error_in_chinese(tmp_path: Path) -> None:
    """Issue 21 point 4: a store problem is one Chinese sentence, exit 1, no banner."""
    missing = tmp_path / "nothere.jsonl"
    result = _run(missing, "audit", "verify", env={"LC_ALL": "zh_CN.UTF-8"})
    assert (result.exit_code, result.stderr) == (
        1,
        f"错误：{missing} 处没有审计库（先做一次决定，或用 `pricecalc audit init` 创建）\n",
    )


def test_no_usage_banner_before_a_data_error(tmp_path: Path, store: Path) -> None:
    """Issue 21 point 4: an unusable file (here a CSV column no field has) is exit 2 and
    one sentence — click's "Usage: … Try --help" is for a wrong invocation only."""
    sheet = tmp_path / "in.csv"
    sheet.write_text("list_price,nonsense\n199.00,1\n", encoding="utf-8")
    for env in ({}, {"LANG": "zh_CN.UTF-8"}):
        result = _run(store, "batch", str(sheet), "--kind", "subsidy_split", "-o", "-", env=env)
        assert result.exit_code == 2
        assert "Usage:" not in result.stderr and "用法" not in result.stderr
        assert result.stderr.startswith("Error: " if not env else "错误：")
        assert "'nonsense'" in result.stderr
        # the kind's fields listed as a clerk reads them (English: their names)
        assert ("原价 (list_price), " in result.stderr) == bool(env)
        assert (", list_price, " in result.stderr) == (not env)
    assert not store.exists()


def test_a_wrong_invocation_keeps_its_banner_in_chinese(tmp_path: Path, store: Path) -> None:
    """A wrong invocation (a CSV without --kind) still shows the usage, in Chinese."""
    sheet = tmp_path / "in.csv"
    sheet.write_text("list_price\n199.00\n", encoding="utf-8")
    result = _run(store, "batch", str(sheet), "-o", "-", env={"LANG": "zh_CN.UTF-8"})
    assert (result.exit_code, result.stderr) == (
        2,
        "用法: cli batch [OPTIONS] INPUT\n"
        "运行 'cli batch --help' 查看帮助。\n\n"
        "错误：一个 CSV 文件只含一种请求：请给出 --kind\n",
    )


def test_the_language_is_the_commands_only(tmp_path: Path, store: Path) -> None:
    """After a Chinese command a script in the same process is English again."""
    _run(store, "--lang", "zh", "audit", "verify")
    assert i18n.language() == "en"


def test_a_conflict_in_chinese_names_the_changed_field(store: Path) -> None:
    """Issue 21 point 4 with SPEC §7: a request_id reused for another request is refused
    (exit 1, nothing recorded) naming the first changed field by its heading."""
    first = {**SPLIT, "request_id": "r-1"}
    again = {**first, "input": {**SPLIT["input"], "list_price": "189.00"}}
    runner = CliRunner()
    args = ["--audit", str(store), "decide"]
    assert runner.invoke(cli, args, input=json.dumps(first), env=CLEAN_ENV).exit_code == 0
    result = runner.invoke(
        cli, args, input=json.dumps(again), env={**CLEAN_ENV, "LANG": "zh_CN.UTF-8"}
    )
    assert (result.exit_code, result.stderr) == (
        1,
        "错误：请求号 'r-1' 已作为第 1 条记录用于另一个请求（原价 已记录为 '199.00'，本次为 "
        "'189.00'）；未记录任何内容 —— 新请求需要新的请求号\n",
    )
    english = runner.invoke(cli, args, input=json.dumps(again), env=CLEAN_ENV)
    assert english.stderr == (
        "Error: request_id 'r-1' is already recorded as record 1 for a different request "
        "(input.list_price '199.00' recorded, '189.00' asked); nothing was recorded — a new "
        "request needs a new request_id\n"
    )
