"""Every command-line message in Chinese (issue 21 point 4): with ``--lang zh`` each error
path a clerk can reach — click's own complaints about a command line, the audit store's
reasons, policy and plugin problems, unreadable sheets and files — is said in Chinese,
with no English sentence left in it; English stays exactly as it was."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import CLAIM, CLEAN_ENV, SPLIT, SPLIT_REJECTED, jsonl
from click.testing import CliRunner, Result

from pricecalc.cli import cli

HAN = re.compile(r"[\u4e00-\u9fff]")
#: Three or more English words in a row: a sentence, or a piece of one, left untranslated.
ENGLISH = re.compile(r"\b[A-Za-z]{2,}(?: [A-Za-z]{2,}){2,}\b")
#: What a message may hold in English as data: quoted values, paths, options, codes.
DATA = re.compile(
    r"'[^']*'|\"[^\"]*\"|`[^`]*`|(?:/|\./)[^\s：，；（）]*|--?[a-z][a-z-]*|\b[A-Z_]{2,}\b"
)


def english_sentences(text: str, tmp: Path) -> list[str]:
    """The English sentences left in ``text`` once data (paths, quoted values, options,
    codes, the usage line's command synopsis) is taken out."""
    prose = "\n".join(line for line in text.splitlines() if not line.startswith("用法:"))
    return ENGLISH.findall(DATA.sub("·", prose.replace(str(tmp), "·")))


class Clerk:
    """``pricecalc --lang zh --audit STORE …`` in ``tmp_path``."""

    def __init__(self, tmp_path: Path, store: Path) -> None:
        self.tmp, self.store = tmp_path, store

    def __call__(self, *args: str, input: str | None = None, lang: str = "zh") -> Result:
        return CliRunner().invoke(
            cli, ["--lang", lang, "--audit", str(self.store), *args], input=input, env=CLEAN_ENV
        )

    def file(self, name: str, text: str | bytes) -> str:
        path = self.tmp / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return str(path)

    def decided(self) -> None:
        result = self("decide", input=json.dumps(SPLIT))
        assert result.exit_code == 0, result.output
        result = self("decide", input=json.dumps(SPLIT_REJECTED))
        assert result.exit_code == 0, result.output


@pytest.fixture
def clerk(tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> Clerk:
    monkeypatch.chdir(tmp_path)
    return Clerk(tmp_path, store)


def _tamper(clerk: Clerk) -> None:
    clerk.decided()
    text = clerk.store.read_text(encoding="utf-8")
    clerk.store.write_text(text.replace('"199.00"', '"189.00"', 1), encoding="utf-8")


def _roll_back(clerk: Clerk) -> None:
    clerk.decided()
    old = clerk.tmp / "old.jsonl"
    shutil.copy(clerk.store, old)
    assert clerk("decide", input=json.dumps({**SPLIT, "request_id": "later"})).exit_code == 0
    shutil.copy(old, clerk.store)
    for index in clerk.tmp.glob("audit.jsonl.idx*"):
        index.unlink()


def _proven(clerk: Clerk, seq: str) -> None:
    """Two decisions, a signing key (verifier.key beside it), a signed checkpoint and the
    proof of record ``seq`` in p.json."""
    clerk.decided()
    made = clerk("audit", "keygen", "finance.example/log", "-o", "signing.key")
    clerk.file("verifier.key", made.stdout)
    assert (
        clerk("audit", "checkpoint", "--signing-key", "signing.key", "-o", "cp.txt").exit_code == 0
    )
    assert clerk("audit", "prove", seq, "--checkpoint", "cp.txt", "-o", "p.json").exit_code == 0


def _proof(clerk: Clerk) -> str:
    """A proof document of record 1 whose record was changed after it was proven."""
    _proven(clerk, "1")
    doc = json.loads((clerk.tmp / "p.json").read_text(encoding="utf-8"))
    doc["record"]["payload"]["operator"] = "mallory"
    return clerk.file("p.json", json.dumps(doc))


def _after(done: None, *args: str) -> list[str]:
    """``args``, once the set-up that returned ``done`` has run."""
    return list(args)


#: (name, set-up returning the arguments and standard input, expected exit code)
Case = tuple[str, Callable[[Clerk], tuple[list[str], str | None]], int]
CASES: list[Case] = [
    # click's own words for a command line it cannot parse
    ("missing argument", lambda c: (["batch"], None), 2),
    ("no such option", lambda c: (["batch", "--nope", "x"], None), 2),
    ("no such global option", lambda c: (["--nope"], None), 2),
    ("no such command", lambda c: (["nosuch"], None), 2),
    ("a bad choice", lambda c: (["batch", c.file("in.jsonl", ""), "--format", "xx"], None), 2),
    ("not a number", lambda c: (["batch", c.file("in.jsonl", ""), "--jobs", "abc"], None), 2),
    ("out of range", lambda c: (["batch", c.file("in.jsonl", ""), "--jobs", "0"], None), 2),
    ("an extra argument", lambda c: (["audit", "show", "999"], None), 2),
    ("an option without its value", lambda c: (["audit", "verify", "--checkpoint"], None), 2),
    ("a missing option", lambda c: (["statement", "--since", "2026-01-01"], None), 2),
    ("no such file", lambda c: (["batch", "nosuch.jsonl"], None), 2),
    ("a folder for a file", lambda c: (["batch", "."], None), 2),
    # invalid input
    ("not JSON", lambda c: (["decide"], "{"), 2),
    (
        "a look-alike order id",
        lambda c: (
            ["decide"],
            json.dumps(
                {
                    "kind": "counterfeit_compensation",
                    "input": {
                        "order_id": "O\u22121",
                        "confirmed": True,
                        "lines": [{"line_id": "L1", "paid_amount": "1.00"}],
                    },
                }
            ),
        ),
        2,
    ),
    ("a NUL in an option", lambda c: (["audit", "show", "--merchant", "M\x00"], None), 2),
    # files and sheets
    (
        "a CSV column no field has",
        lambda c: (
            ["batch", c.file("in.csv", "list_prize\n1\n"), "--kind", "subsidy_split", "-o", "-"],
            None,
        ),
        2,
    ),
    (
        "a CSV header over the cap",
        lambda c: (
            [
                "batch",
                c.file("in.csv", ",".join(f"c{i}" for i in range(1001)) + "\n"),
                "--kind",
                "subsidy_split",
                "-o",
                "-",
            ],
            None,
        ),
        2,
    ),
    (
        "an output folder that does not exist",
        lambda c: (["batch", c.file("in.jsonl", jsonl(SPLIT)), "-o", "nosuch/out.csv"], None),
        2,
    ),
    (
        "a checkpoint file that is not one",
        lambda c: (["audit", "verify", "--checkpoint", c.file("cp.json", "{}")], None),
        2,
    ),
    (
        "a verifier key that is not one",
        lambda c: (
            ["audit", "verify-proof", c.file("p.json", "{}"), "--verifier-key", "nonsense"],
            None,
        ),
        2,
    ),
    (
        "a signing key name with a space",
        lambda c: (["audit", "keygen", "finance log", "-o", "k.key"], None),
        2,
    ),
    # policy and plugins
    (
        "a policy file that is not TOML",
        lambda c: (["--policy", c.file("p.toml", "[x"), "decide"], json.dumps(SPLIT)),
        1,
    ),
    (
        "a policy section no rule has",
        lambda c: (
            ["--policy", c.file("p.toml", "[subsidy_split]\nnonsense = 1\n"), "decide"],
            json.dumps(SPLIT),
        ),
        1,
    ),
    (
        "a policy value of the wrong kind",
        lambda c: (
            ["--policy", c.file("p.toml", '[price_protection]\nclaim_days = "x"\n'), "decide"],
            json.dumps(CLAIM),
        ),
        1,
    ),
    ("a plugin that is not there", lambda c: (["--disable-plugin", "nosuch", "plugins"], None), 2),
    # the audit store
    ("no store", lambda c: (["audit", "verify"], None), 1),
    ("a folder for a store", lambda c: (["--audit", str(c.tmp), "audit", "verify"], None), 1),
    ("a tampered store", lambda c: (_after(_tamper(c), "audit", "verify"), None), 1),
    ("a rolled-back store", lambda c: (_after(_roll_back(c), "audit", "verify"), None), 1),
    ("a record not in the tree", lambda c: (_after(c.decided(), "audit", "prove", "9"), None), 1),
    (
        "a proof of a changed record",
        lambda c: (["audit", "verify-proof", _proof(c), "--verifier-key", "verifier.key"], None),
        1,
    ),
]


@pytest.mark.parametrize(("name", "setup", "code"), CASES, ids=[case[0] for case in CASES])
def test_every_error_is_said_in_chinese(
    clerk: Clerk, name: str, setup: Callable[[Clerk], tuple[list[str], str | None]], code: int
) -> None:
    """Issue 21 point 4: under ``--lang zh`` each error path's message holds Chinese and
    no English sentence (data — paths, quoted values, options, codes — aside)."""
    args, given = setup(clerk)
    result = clerk(*args, input=given)
    said = result.stderr
    assert result.exit_code == code, said
    assert HAN.search(said), said
    assert english_sentences(said, clerk.tmp) == [], said


# -- the new translations, word for word ---------------------------------------------------
def test_click_says_a_wrong_invocation_in_chinese(clerk: Clerk) -> None:
    """click's own complaints, through pricecalc's catalog: the usage banner, then the
    sentence; in English exactly click's words."""
    banner = "用法: cli batch [OPTIONS] INPUT\n运行 'cli batch --help' 查看帮助。\n\n"
    assert clerk("batch", "--nope", "x").stderr == (
        banner + "错误：没有选项 '--nope'。 是不是 '--no-progress'？\n"
    )
    assert clerk("batch", "nosuch.jsonl").stderr == (
        banner + "错误：'INPUT' 的值无效：文件 'nosuch.jsonl' 不存在。\n"
    )
    source = clerk.file("in.jsonl", "")
    assert clerk("batch", source, "--format", "xx").stderr == (
        banner + "错误：'--format' 的值无效：'xx' 不是 'jsonl', 'csv', 'xlsx' 之一。\n"
    )
    assert clerk("batch").stderr == banner + "错误：缺少参数 'INPUT'.\n"
    english = clerk("batch", "--nope", "x", lang="en")
    assert english.stderr == (
        "Usage: cli batch [OPTIONS] INPUT\nTry 'cli batch --help' for help.\n\n"
        "Error: No such option '--nope'. Did you mean '--no-progress'?\n"
    )


def test_a_mistake_in_the_global_options_is_a_wrong_invocation(clerk: Clerk) -> None:
    """``pricecalc --nope``: the language is known before click reads the command line, so
    even the global options' mistake is Chinese, with the usage banner."""
    assert clerk("--nope").stderr == (
        "用法: cli [OPTIONS] COMMAND [ARGS]...\n运行 'cli --help' 查看帮助。\n\n"
        "错误：没有选项 '--nope'。 是不是 '--operator'？\n"
    )


def test_a_group_without_its_command_shows_its_help(clerk: Clerk) -> None:
    """``pricecalc audit`` shows the group's help (click's behaviour), not a usage banner
    with the whole help as an error."""
    result = clerk("audit")
    assert result.stderr.startswith("Usage: cli audit [OPTIONS] COMMAND [ARGS]...\n\n  Verify")
    assert "错误" not in result.stderr and "Error" not in result.stderr


def test_a_tampered_store_in_chinese(clerk: Clerk) -> None:
    """The audit store's reason, translated at the command line's edge (audit itself
    says and stores it in English)."""
    _tamper(clerk)
    assert (clerk("audit", "verify").stderr) == (
        f"错误：审计库 {clerk.store} 在第 1 条记录校验失败：第 1 条记录哈希不符：它的内容被改动过"
        "（或是用另一个 hmac_key 计算的哈希）\n"
    )
    assert clerk("audit", "verify", lang="en").stderr == (
        f"Error: the audit store {clerk.store} failed verification at record 1: record 1 "
        "hash mismatch: its content was edited (or it was hashed with a different hmac_key)\n"
    )


def test_a_rolled_back_store_in_chinese(clerk: Clerk) -> None:
    """A rolled-back log refuses appends, in Chinese; accepting the rollback is said in
    Chinese too."""
    _roll_back(clerk)
    refused = clerk("decide", input=json.dumps({**SPLIT, "request_id": "new"}))
    assert refused.exit_code == 1
    assert refused.stderr.startswith(
        f"错误：审计库 {clerk.store} 无法使用：审计日志 {clerk.store} 被回滚了：第 3 条记录（哈希 "
    )
    assert refused.stderr.endswith("在操作员接受回滚（audit accept-rollback）之前拒绝追加\n")
    accepted = clerk("audit", "accept-rollback")
    assert accepted.exit_code == 0
    assert accepted.stdout.startswith(
        f"已接受审计库 {clerk.store} 的回滚：它的日志止于第 2 条记录（哈希 "
    )
    assert accepted.stdout.endswith("现在可以再次追加；没有记录其他任何内容。\n")


def test_a_policy_file_that_is_not_toml_in_chinese(clerk: Clerk) -> None:
    """A policy problem names the key or the file, in Chinese — the TOML reader's own
    sentence too."""
    policy = clerk.file("p.toml", "[x")
    result = clerk("--policy", policy, "decide", input=json.dumps(SPLIT))
    assert (result.exit_code, result.stderr) == (
        1,
        f"错误：策略文件 '{policy}' 不是有效的 TOML：表声明的末尾应为 ']'（在文件末尾）\n",
    )
    english = clerk("--policy", policy, "decide", input=json.dumps(SPLIT), lang="en")
    assert english.stderr == (
        f"Error: policy file '{policy}' is not valid TOML: Expected ']' at the end of a "
        "table declaration (at end of document)\n"
    )


def test_a_look_alike_id_in_chinese(clerk: Clerk) -> None:
    """SPEC §1 identifiers: a look-alike dash is refused, every part of the sentence in
    Chinese."""
    request = {
        "kind": "counterfeit_compensation",
        "input": {"order_id": "O\u22121", "confirmed": True,
                  "lines": [{"line_id": "L1", "paid_amount": "1.00"}]},
    }  # fmt: skip
    assert clerk("decide", input=json.dumps(request)).stderr == (
        "错误：输入无效，未记录任何内容：订单号：不能含有ASCII '-' 以外的短横"
        "（U+2212 MINUS SIGN）：形近的编号会把一个订单当成两个（收到 'O\\u22121'）\n"
    )


def test_a_sheets_row_errors_in_chinese(clerk: Clerk) -> None:
    """Issue 21 point 4: a row the CSV reader cannot read, a cell that looks like JSON but
    is not, a NUL in an id: each invalid row's error is Chinese."""
    long = "x" * 131_073
    source = clerk.file(
        "in.csv",
        "request_id,order_id,confirmed,lines\n"
        'bad-1,O-1,true,"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"\n'
        'bad-2,O-\x002,true,"[{""line_id"": ""L1"", ""paid_amount"": ""68.00""}]"\n'
        f"bad-3,O-3,true,{long}\n",
    )
    result = clerk("batch", source, "--kind", "counterfeit_compensation", "-o", "-")
    assert result.exit_code == 1
    errors = [json.loads(line)["error"] for line in result.stdout.splitlines()]
    assert errors == [
        "明细[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][…][0][0][0][0][0]："
        "对象和列表嵌套超过 32 层（收到 更多层）",
        "订单号：不能含有字符 U+0000（收到 'O-\\x002'）",
        "这一行不是有效的 CSV：有单元格超过 131,072 个字符",
    ]


def test_verify_proof_in_chinese(clerk: Clerk) -> None:
    """``audit verify-proof`` under --lang zh: the OK line and what the record decided,
    Chinese only (in English they stay bilingual for the merchant: tests of issue 24)."""
    _proven(clerk, "2")
    lines = clerk("audit", "verify-proof", "p.json", "--verifier-key", "verifier.key").stdout
    first, *decided = lines.splitlines()
    assert re.fullmatch(
        r"通过：第 2 条记录（哈希 [0-9a-f]{16}…）在日志 finance\.example/log 中（树大小 2），"
        r"未被改动；检查点由 finance\.example/log\+[0-9a-f]{8} 签署",
        first,
    )
    assert decided[:-1] == [
        "记录 2 的决定:",
        "  类型: 补贴分摊 subsidy_split",
        "  请求号: split-2",
        "  状态: 已驳回 rejected",
        "  原因: REGISTRATION_ABOVE_LIST 报名价高于原价",
        "  原因: FLOOR_BELOW_COST 最低售卖价低于成本价",
    ]
    assert re.fullmatch(
        r"  记录时间: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+08:00 北京时间 \(recorded_at \S+\)",
        decided[-1],
    )


def test_reason_explanations_follow_the_language(clerk: Clerk) -> None:
    """Issue 21 point 4: an output's reason explanations are in the command's language
    (--lang), whatever --headers names the columns with."""
    source = clerk.file("in.jsonl", jsonl(SPLIT_REJECTED))
    chinese = clerk("batch", source, "-o", "-", "--format", "csv", "--headers", "en")
    row = chinese.stdout.splitlines()[1]
    assert ",REGISTRATION_ABOVE_LIST;FLOOR_BELOW_COST,报名价高于原价;最低售卖价低于成本价," in row
    english = clerk("batch", source, "-o", "-", "--format", "csv", "--headers", "zh", lang="en")
    assert (
        ",REGISTRATION_ABOVE_LIST;FLOOR_BELOW_COST,registration price above the list price;"
        "floor price below the cost price," in english.stdout.splitlines()[1]
    )


def test_a_decision_view_in_chinese(clerk: Clerk) -> None:
    """Issue 21 point 4: a rule command's view names each result field in Chinese and
    explains each reason code beside the recorded message (which stays as recorded);
    ``audit stats`` heads its columns in Chinese."""
    result = clerk(
        "split", "--list-price", "99", "--registration-price", "109", "--subsidy-price", "89",
        "--floor-price", "85", "--cost-price", "90",
    )  # fmt: skip
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert "  商家补贴（每件）         -10.00" in lines
    assert "  平台补贴上限（每件）      24.00" in lines
    assert lines[lines.index("拒绝原因") :][2:-1] == [
        "  原因                      说明                   记录的原文",
        " " + "─" * 106,
        "  REGISTRATION_ABOVE_LIST   报名价高于原价         registration price 109.00 is above "
        "the list price 99.00",
        "  FLOOR_BELOW_COST          最低售卖价低于成本价   floor price 85.00 is below the cost "
        "price 90.00",
    ]
    stats = clerk("audit", "stats").stdout.splitlines()
    assert stats[1].split() == [
        "日期(北京时间)", "类型", "已批准", "已驳回", "已作废", "商家补贴", "平台补贴", "价保退款",
        "假一赔十退款", "假一赔十赔偿", "假一赔十赔付合计", "转寄追回补贴",
    ]  # fmt: skip


def test_the_stores_warnings_in_chinese(clerk: Clerk, caplog: pytest.LogCaptureFixture) -> None:
    """The audit store's warnings (its logger) are shown through the same templates as
    its errors: an index it cannot trust, rebuilt from the log."""
    clerk.decided()
    index = clerk.tmp / "audit.jsonl.idx"
    index.write_text("garbage\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="audit"):
        assert clerk("audit", "verify").exit_code == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"审计索引 {index} 不可信（file is not a database）；正在从日志重建"
    ]
    caplog.clear()
    index.write_text("garbage\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="audit"):
        assert clerk("audit", "verify", lang="en").exit_code == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"audit index {index} cannot be trusted (file is not a database); rebuilding it from "
        "the log"
    ]
