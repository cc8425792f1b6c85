"""Messages pricecalc shows but does not write (issue 21 point 4): the audit store's
sentences and click's, translated at the command line's edge (pricecalc/foreign.py).

The templates are pricecalc's copies of other code's words, so these tests tie each one to
the code it copies: a rewording in ``audit`` or a click upgrade that drops a message fails
here rather than silently leaving a clerk an English sentence."""

from __future__ import annotations

import ast
import errno
import gettext
import re
from pathlib import Path

import click
import click.exceptions
import pytest
from babel.messages.extract import extract_from_dir
from click.testing import CliRunner

from pricecalc import i18n, messages
from pricecalc.cli import cli
from pricecalc.foreign import AUDIT_MESSAGES, CLICK_MESSAGES, OS_ERRORS

ROOT = Path(__file__).resolve().parents[1]
_PLACEHOLDER = re.compile(r"{\w+}")


def _audit_sentences() -> list[re.Pattern[str]]:
    """Every string the audit package writes that has words of its own, as a pattern: an
    f-string's values (and a logged text's ``%s``) are groups matching anything, its words
    only themselves."""
    found = []
    for path in sorted((ROOT / "audit").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        inner = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                 for v in node.values}  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                words = "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
                parts = [
                    re.escape(str(v.value)) if isinstance(v, ast.Constant) else "(.*?)"
                    for v in node.values
                ]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in inner:
                    continue
                # a logging call's %s / %d are values too
                words = node.value
                parts = ["(.*?)".join(map(re.escape, re.split(r"%[sdr]", node.value)))]
            else:
                continue
            if re.search(r"[A-Za-z]{2}", words):
                found.append(re.compile("".join(parts), re.DOTALL))
    return found


def _written(text: str, sentences: list[re.Pattern[str]], depth: int = 3) -> bool:
    """``text`` (placeholders as NUL) is what audit writes: a sentence of it whose values
    are placeholders, or themselves sentences of it (audit builds some from parts)."""
    if not text.replace("\x00", "").strip():
        return True
    if depth == 0:
        return False
    if any(
        (found := sentence.fullmatch(text)) is not None
        and all(_written(value, sentences, depth - 1) for value in found.groups())
        for sentence in sentences
    ):
        return True
    # two parts side by side ("already recorded" + " as record 5")
    return any(
        _written(text[:cut], sentences, depth - 1) and _written(text[cut:], sentences, depth - 1)
        for cut in range(1, len(text))
        if text[cut] == " "
    )


#: Templates audit composes from an f-string of values only (proofdoc's
#: ``f"{what}: {exc}"`` with what "the checkpoint" or "the old checkpoint"), which the
#: check below cannot tell from any other text.
_COMPOSED = {"the checkpoint: {problem}", "the old checkpoint: {problem}"}


def test_every_audit_template_is_a_sentence_audit_writes() -> None:
    """Each template, its placeholders standing for values, is a sentence audit/*.py
    writes (from an f-string whose values are those placeholders or audit's own parts):
    the template still copies audit's words."""
    sentences = _audit_sentences()
    stale = [
        template
        for template in AUDIT_MESSAGES
        if template not in _COMPOSED and not _written(_PLACEHOLDER.sub("\x00", template), sentences)
    ]
    assert stale == []
    assert not _written("record \x00 appears thrice (duplicated)", sentences)


def test_every_click_message_is_one_click_marks() -> None:
    """Each of click's messages pricecalc translates is a message click itself marks for
    gettext (singular or plural): after a click upgrade that rewords one, it fails here."""
    marked: set[str] = set()
    for _, _, message, _, _ in extract_from_dir(
        str(Path(click.__file__).parent), keywords={"_": None, "ngettext": (1, 2)}
    ):
        marked.update([message] if isinstance(message, str) else message)
    assert sorted(CLICK_MESSAGES - marked) == []


def test_every_os_error_name_is_an_errno() -> None:
    assert sorted(name for name in OS_ERRORS if not hasattr(errno, name)) == []


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        (  # a reason inside a reason, both translated
            "audit store tampered at record 2: record 2 hash mismatch: its content was "
            "edited (or it was hashed with a different hmac_key)",
            "审计库在第 2 条记录处被篡改：第 2 条记录哈希不符：它的内容被改动过（或是用另一个 "
            "hmac_key 计算的哈希）",
        ),
        (  # a number is a number: what='old tree size', size=9
            "old tree size 9 is not between 0 and the tree's size 3",
            "旧树的大小 9 不在 0 到树的大小 3 之间",
        ),
        (
            "could not take the writer lock /srv/a.jsonl.lock within 2.5s: another process "
            "holds it",
            "2.5 秒内未能取得写入锁 /srv/a.jsonl.lock：另一个进程持有它",
        ),
        (
            "seq gap: expected 3, found 5: records 3..4 are missing (deleted)",
            "记录号不连续：应为 3，实为 5：第 3 至 4 条记录缺失（被删除）",
        ),
        (  # audit names the note "it" inside the proof's frame
            "the checkpoint: malformed note: it holds a carriage return (CR): a note's lines "
            "end in a line feed only (C2SP signed-note; saved with Windows line ends?)",
            "检查点：注记格式错误：它 含有回车符（CR）：注记的每行只以换行符（LF）结尾"
            "（C2SP signed-note；是否以 Windows 换行保存？）",
        ),
        (  # audit verify --deep's index check
            "the tag 'order:O1' row of record 2 is missing",
            "第 2 条记录的 tag 'order:O1' 行缺失",
        ),
        (  # no template: as it is
            "something audit may say one day",
            "something audit may say one day",
        ),
    ],
)
def test_an_audit_sentence_in_chinese(english: str, chinese: str) -> None:
    """Issue 21 point 4: audit's English sentence, matched to its template, in Chinese;
    in English exactly itself."""
    try:
        i18n.set_language("zh")
        assert messages.foreign(english) == chinese
    finally:
        i18n.set_language(None)
    assert messages.foreign(english) == english


def test_an_os_error_in_chinese() -> None:
    """The operating system's words for a file a clerk meets, by errno; English as the
    system says it."""
    full = OSError(errno.ENOSPC, "No space left on device")
    odd = OSError(errno.EBADF, "Bad file descriptor")
    try:
        i18n.set_language("zh")
        said = (messages.os_reason(full), messages.os_reason(odd))
        assert said == ("磁盘已满", "Bad file descriptor")
    finally:
        i18n.set_language(None)
    assert messages.os_reason(full) == "No space left on device"


def test_click_gets_its_own_gettext_back_after_a_command() -> None:
    """While a Chinese command runs, click's lookups are pricecalc's; afterwards they are
    click's own again (a script in the same process is not changed by the command)."""
    result = CliRunner().invoke(cli, ["--lang", "zh", "--nope"], env={"LANG": None})
    assert result.exit_code == 2
    assert result.stderr.endswith("错误：没有选项 '--nope'。 是不是 '--operator'？\n")
    assert click.exceptions._ is gettext.gettext  # type: ignore[attr-defined]
    assert click.exceptions.ngettext is gettext.ngettext  # type: ignore[attr-defined]
    assert i18n.language() == "en"
