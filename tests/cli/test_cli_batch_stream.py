"""`pricecalc batch - -o - --stream`: a co-process that answers each line as soon as its
group is durable, never waiting for more input (issue 23)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cli_support import CLEAN_ENV, SPLIT, Invoke, store_count

PRICECALC = str(Path(sys.executable).with_name("pricecalc"))


def test_answers_each_line_before_stdin_closes(tmp_path: Path) -> None:
    """Issue 23: write one line, read its answer while stdin is still open; the answer is
    already recorded (durable) when it is read; an invalid line is answered too."""
    store = tmp_path / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    process = subprocess.Popen(
        [PRICECALC, "--audit", str(store), "batch", "-", "-o", "-", "--stream"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(json.dumps(SPLIT).encode() + b"\n")
        process.stdin.flush()
        first = json.loads(process.stdout.readline())
        assert first["request_id"] == "split-1"
        assert first["audit"]["seq"] == 1
        assert store_count(store) == 1  # durable before it was answered
        process.stdin.write(b"{not json\n")
        process.stdin.flush()
        second = json.loads(process.stdout.readline())
        assert second == {
            "line": 2,
            "status": "invalid",
            "error": "not valid JSON: Expecting property name enclosed in double quotes "
            "at column 2",
        }
        process.stdin.write(json.dumps(SPLIT).encode() + b"\n")
        process.stdin.flush()
        third = json.loads(process.stdout.readline())
        assert third == {**first, "replayed": True}
    finally:
        process.stdin.close()
    assert process.wait(timeout=60) == 1  # one line was invalid
    assert process.stdout.read() == b""
    assert store_count(store) == 1


def test_stream_refuses_other_formats(invoke: Invoke) -> None:
    """--stream reads and writes JSON Lines only."""
    result = invoke("batch", "-", "-o", "-", "--stream", "--format", "csv", input="")
    assert result.exit_code == 2
    assert "--stream writes JSON Lines (--format jsonl)" in result.output


def test_stream_in_process_matches_batch(invoke: Invoke) -> None:
    """The rows --stream writes are the rows batch writes for the same lines."""
    lines = json.dumps(SPLIT) + "\n" + json.dumps({**SPLIT, "request_id": "split-2"}) + "\n"
    streamed = invoke("batch", "-", "-o", "-", "--stream", "--quiet", input=lines)
    assert streamed.exit_code == 0, streamed.output
    rows = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert [row["request_id"] for row in rows] == ["split-1", "split-2"]
    again = invoke("batch", "-", "-o", "-", "--quiet", input=lines)
    assert [json.loads(line) for line in again.stdout.splitlines()] == [
        {**row, "replayed": True} for row in rows
    ]
