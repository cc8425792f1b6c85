"""Errors early, in a clerk's words, never a traceback (issue 12, part 3).

Each mistake below once recorded decisions before failing, or failed with a Python
message. Each is now refused before anything is decided — no store is even created —
naming what the user typed, exit 2. Also: an empty input, a closed pipe, Ctrl-C while
writing Excel, --quiet and the progress bar.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from cli_support import CLEAN_ENV, COUNTERFEIT, SPLIT, Invoke, jsonl, store_count
from needs_support import missing


def _requests(n: int, prefix: str = "cf") -> str:
    return jsonl(
        *(
            {**COUNTERFEIT, "request_id": f"{prefix}-{i}",
             "input": {**COUNTERFEIT["input"], "order_id": f"O-{prefix}-{i}"}}
            for i in range(n)
        )
    )  # fmt: skip


@pytest.fixture
def requests(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text(_requests(5), encoding="utf-8")
    return path


def refused(result: Any, message: str, store: Path) -> None:
    """Exit 2, exactly this one sentence after the usage lines, nothing recorded."""
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    assert "Traceback" not in result.output
    assert not store.exists()


def test_an_output_that_is_a_folder_is_refused_before_deciding(
    invoke: Invoke, requests: Path, tmp_path: Path, store: Path
) -> None:
    """`--output d.xlsx` where d.xlsx is a folder (once: 5 decisions recorded, then
    "Is a directory: .d.xlsx.partial"), and `--output outdir`."""
    (tmp_path / "d.xlsx").mkdir()
    (tmp_path / "outdir").mkdir()
    refused(
        invoke("batch", str(requests), "--output", "d.xlsx"),
        "Invalid value for '--output': 'd.xlsx' is a folder; give the name of a file to "
        "write, such as 'd.xlsx/decisions.xlsx'",
        store,
    )
    refused(
        invoke("batch", str(requests), "-o", "outdir"),
        "Invalid value for '--output': 'outdir' is a folder; give the name of a file to "
        "write, such as 'outdir/decisions.jsonl'",
        store,
    )
    refused(
        invoke("audit", "export", "-o", "outdir", "--format", "csv"),
        "Invalid value for '--output': 'outdir' is a folder; give the name of a file to "
        "write, such as 'outdir/audit.csv'",
        store,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.xlsx", "in.jsonl", "outdir"]
    assert list((tmp_path / "d.xlsx").iterdir()) == []


def test_an_output_folder_that_does_not_exist_is_named(
    invoke: Invoke, requests: Path, store: Path
) -> None:
    """The message names the folder the user typed, never the hidden .NAME.partial."""
    result = invoke("batch", str(requests), "-o", "nosuch/out.csv")
    refused(
        result,
        "Invalid value for '--output': the folder 'nosuch' does not exist (for "
        "'nosuch/out.csv'): create it first, or write somewhere else",
        store,
    )
    assert ".partial" not in result.output


def _can_create_in(folder: Path) -> bool:
    probe = folder / ".pricecalc-probe"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


def test_an_output_folder_that_cannot_be_written_is_named(
    invoke: Invoke, requests: Path, tmp_path: Path, store: Path
) -> None:
    """A read-only folder: the output file is created before anything is decided, so the
    refusal comes first. (As root a chmod does not stop writing; /sys refuses even root.)"""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if _can_create_in(folder):  # running as root
            folder = Path("/sys")
            if not folder.is_dir() or _can_create_in(folder):
                missing("a folder that refuses this user (none here: not even /sys)")
        target = str(folder / "out.csv")
        result = invoke("batch", str(requests), "-o", target)
        refused(
            result,
            f"Invalid value for '--output': cannot write {target!r}: the folder "
            f"{str(folder)!r} is read-only for you (permission denied)",
            store,
        )
        assert ".partial" not in result.output
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_output_must_not_replace_the_input_or_the_audit_store(
    invoke: Invoke, requests: Path, store: Path
) -> None:
    """The batch output is renamed over its target at the end: never over the input nor
    over the audit store it records into."""
    refused(
        invoke("batch", str(requests), "-o", str(requests)),
        "--output must not be the input file",
        store,
    )
    store.write_bytes(b"")
    result = invoke("batch", str(requests), "-o", str(store), "--format", "jsonl")
    assert result.exit_code == 2
    last = result.stderr.splitlines()[-1]
    assert last == f"Error: --output must not be the audit store ({store})"
    assert store.read_bytes() == b""


def test_an_unknown_kind_is_refused_before_any_row_runs(
    invoke: Invoke, tmp_path: Path, store: Path
) -> None:
    """`--kind subsidy_splt` once ran every row and failed each; now exit 2 with the
    closest kind. `audit show --kind nosuchkind` likewise (once silently no rows)."""
    source = tmp_path / "s.csv"
    source.write_text("list_price\n199\n", encoding="utf-8")
    result = invoke("batch", str(source), "--kind", "subsidy_splt", "-o", "out.csv")
    assert result.exit_code == 2
    last = result.stderr.splitlines()[-1]
    assert last.startswith(
        "Error: Invalid value for '--kind': 'subsidy_splt' is not a kind pricecalc decides "
        "(did you mean 'subsidy_split'? known: chaozhigou_admission, counterfeit_compensation,"
    )
    assert not store.exists() and not (tmp_path / "out.csv").exists()
    invoke("decide", input=json.dumps(SPLIT))
    shown = invoke("audit", "show", "--kind", "nosuchkind")
    assert shown.exit_code == 2
    assert "Error: Invalid value for '--kind': 'nosuchkind' is not a kind pricecalc decides " in (
        shown.stderr
    )


def test_an_unknown_plugin_to_disable_is_refused(invoke: Invoke, store: Path) -> None:
    """`--disable-plugin nosuch` was silently ignored (the plugin one meant stayed on)."""
    result = invoke("--disable-plugin", "nosuch", "decide", input=json.dumps(SPLIT))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--disable-plugin': 'nosuch' is not a plugin pricecalc has "
        "(plugins: builtin, chaozhigou_admission, food_safety_law, select_alliance_admission, "
        "select_alliance_product, select_alliance_review, shipping_check)"
    )
    assert not store.exists()
    assert invoke("--disable-plugin", "food_safety_law", "plugins").exit_code == 0


@pytest.mark.parametrize(
    ("name", "content", "args", "said"),
    [
        ("empty.jsonl", b"", (), "is empty"),
        ("empty.csv", b"", ("--kind", "subsidy_split"), "is empty"),
        ("bom.csv", b"\xef\xbb\xbf", ("--kind", "subsidy_split"), "is empty"),
        ("header.csv", b"list_price,cost_price\r\n", ("--kind", "subsidy_split"),
         "has a header row but no requests"),
    ],
)  # fmt: skip
def test_an_empty_input_warns_and_exits_0(
    invoke: Invoke, tmp_path: Path, store: Path, name: str, content: bytes, args: Any, said: str
) -> None:
    """An empty file is not an error: a warning on stderr, exit 0, an empty output (the
    heading row for CSV), and no audit store is opened or created."""
    source = tmp_path / name
    source.write_bytes(content)
    result = invoke("batch", str(source), *args, "-o", "out.csv")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"Warning: {source} {said}: nothing was decided.\n"
    heading = "list_price,cost_price,content_key," if name == "header.csv" else "line,request_id,"
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").startswith(heading)
    assert not store.exists()


def test_quiet_prints_no_summary_but_still_the_problems(invoke: Invoke, tmp_path: Path) -> None:
    """--quiet: no summary and no progress; errors and the invalid-lines sentence still go
    to stderr, and the exit code still tells."""
    source = tmp_path / "in.jsonl"
    source.write_text(jsonl(SPLIT, "{broken"), encoding="utf-8")
    result = invoke("batch", str(source), "-o", "out.jsonl", "--quiet")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == '1 of 2 lines were invalid (rows with status "invalid" in out.jsonl).\n'
    exported = invoke("audit", "export", "-o", "all.csv", "-q")
    assert (exported.exit_code, exported.stdout) == (0, "")


# -- real processes: pipes, signals, a terminal ------------------------------------------
def _process_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    return {**env, **extra}


def _pricecalc(*args: str) -> list[str]:
    return [sys.executable, "-m", "pricecalc", *args]


def _first_line_then_close(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, bytes]:
    """Run, read one line of stdout, close the pipe (as `| head -1` does); exit code and
    stderr."""
    proc = subprocess.Popen(
        args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    return proc.wait(timeout=120), err


def test_a_closed_pipe_ends_quietly(invoke: Invoke, tmp_path: Path, store: Path) -> None:
    """`pricecalc audit show --nl | head -1` and `pricecalc batch … -o - | head -1` end with
    exit 141 (as a process stopped by SIGPIPE) and nothing on stderr — once: "the audit
    store … cannot be used: Broken pipe", exit 1. Decisions recorded before the pipe
    closed stay recorded; running the batch again records only the rest."""
    many = tmp_path / "many.jsonl"
    many.write_text(_requests(800, "a"), encoding="utf-8")
    assert invoke("batch", str(many), "-o", "first.jsonl", "-q").exit_code == 0
    env = _process_env()
    audit_args = ["--audit", str(store)]
    for args in (
        _pricecalc(*audit_args, "audit", "show", "--nl"),
        _pricecalc(*audit_args, "audit", "show"),
        _pricecalc(*audit_args, "audit", "export", "-o", "-", "--format", "csv"),
    ):
        assert _first_line_then_close(args, tmp_path, env) == (141, b""), args
    more = tmp_path / "more.jsonl"
    more.write_text(_requests(1500, "b"), encoding="utf-8")
    code, err = _first_line_then_close(
        _pricecalc(*audit_args, "batch", str(more), "-o", "-"),
        tmp_path,
        {**env, "PRICECALC_BATCH_CHUNK_SIZE": "50"},
    )
    assert (code, err) == (141, b"")
    cut_at = store_count(store)
    assert 800 < cut_at < 2300  # the chunks decided before the pipe closed are recorded
    again = invoke("batch", str(more), "-o", "again.jsonl")
    assert again.exit_code == 0
    assert again.stdout.startswith(
        f"1500 lines: {2300 - cut_at} new decisions recorded, {cut_at - 800} already "
        "recorded (replayed), 0 invalid\n"
    )
    assert store_count(store) == 2300


def test_ctrl_c_while_writing_excel_leaves_no_traceback(tmp_path: Path) -> None:
    """Ctrl-C during a batch to .xlsx: exit 130 with one sentence — once an openpyxl
    ValueError ("I/O operation on closed file") was printed — and no file, partial or not."""
    source = tmp_path / "big.jsonl"
    source.write_text(_requests(20000), encoding="utf-8")
    store = tmp_path / "a.jsonl"
    proc = subprocess.Popen(
        _pricecalc("--audit", str(store), "batch", str(source), "-o", "out.xlsx"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_process_env(PRICECALC_BATCH_CHUNK_SIZE="20"),
    )
    deadline = time.monotonic() + 120
    while store_count(store) < 100 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.decode() == (
        "Error: interrupted. Run the same command again to finish: lines already recorded "
        "are replayed from the audit store, never recorded twice.\n"
    )
    assert out == b""
    assert sorted(p.name for p in tmp_path.iterdir() if "out" in p.name) == []


def _on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run with standard error on a pseudo-terminal; the exit code and what the terminal
    showed, escape codes removed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
        env=_process_env(PRICECALC_BATCH_CHUNK_SIZE="100", COLUMNS="150"),
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.stdout is not None
    proc.stdout.read()
    proc.stdout.close()
    text = b"".join(chunks).decode("utf-8", "replace")
    return proc.wait(timeout=120), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_the_progress_bar_shows_lines_speed_and_eta(tmp_path: Path) -> None:
    """On a terminal, the progress bar (standard error) shows lines done, lines/s and the
    time left (ETA, from the bytes read); --quiet shows none."""
    source = tmp_path / "in.jsonl"
    source.write_text(_requests(1000), encoding="utf-8")
    code, shown = _on_a_terminal(
        _pricecalc("--audit", "a.jsonl", "batch", str(source), "-o", "out.jsonl"), tmp_path
    )
    assert code == 0, shown
    assert re.search(r"deciding .*100% 1,000 lines [0-9,]+ lines/s ETA 0:00:00", shown), shown
    code, shown = _on_a_terminal(
        _pricecalc("--audit", "a.jsonl", "batch", str(source), "-o", "out.jsonl", "-q"),
        tmp_path,
    )
    assert (code, shown) == (0, "")


def test_excel_output_of_an_empty_file_has_its_sheets(invoke: Invoke, tmp_path: Path) -> None:
    """An empty input still gives a workbook a clerk can open: the heading row and a
    summary sheet of zeros."""
    source = tmp_path / "none.jsonl"
    source.write_bytes(b"")
    assert invoke("batch", str(source), "-o", "out.xlsx").exit_code == 0
    book = openpyxl.load_workbook(tmp_path / "out.xlsx")
    assert book["decisions"].max_row == 1
    assert book["summary"]["B3"].value == 0


def test_an_export_without_a_store_leaves_no_file(invoke: Invoke, tmp_path: Path) -> None:
    """audit export creates its output first (so a bad folder is found before the store is
    read); when the store then turns out missing, nothing is left behind."""
    result = invoke("audit", "export", "-o", "records.xlsx")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: there is no audit store at ")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
