"""The Python-API example a checkout script would copy (examples/run_api.py) runs as shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_checkout_script_example(tmp_path: Path) -> None:
    """Each request gives one decision line, recorded; the invalid line says why (SPEC §8)."""
    store = tmp_path / "audit.jsonl"
    script = ROOT / "examples" / "run_api.py"
    requests = ROOT / "examples" / "quickstart.jsonl"
    out = subprocess.run(
        [sys.executable, str(script), str(requests), str(store)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
    rows = [json.loads(line) for line in out]
    assert [(r.get("request_id"), r["status"]) for r in rows] == [
        ("qs-1", "approved"),
        ("qs-2", "rejected"),
        ("qs-3", "approved"),
        ("qs-4", "approved"),
        ("qs-5", "approved"),
        (None, "invalid"),
    ]
    assert rows[2]["result"]["refund_total"] == "42.00"
    assert rows[3]["result"]["payout_total"] == "1287.90"
    assert rows[4]["result"]["clawback"] == "150.00"
    assert rows[5] == {
        "line": 6,
        "status": "invalid",
        "error": "input.lines[0].paid_amount: has more than two decimals "
        "(fen is the smallest unit) (got '1.001')",
    }
    assert [r["audit"]["seq"] for r in rows[:5]] == [1, 2, 3, 4, 5]
    assert len(store.read_text(encoding="utf-8").splitlines()) == 5


def _screenshot(tmp_path: Path, tools: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """examples/screenshot.py with only ``tools`` (name → shell script) on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in tools.items():
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        tool.chmod(0o755)
    page = tmp_path / "report.html"
    page.write_text("<p>家居 手机 零食</p>", encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "screenshot.py"), str(page),
         str(tmp_path / "report.png")],
        capture_output=True, text=True, check=False, timeout=120, env={"PATH": str(bin_dir)},
    )  # fmt: skip


def test_the_screenshot_names_what_to_install_rather_than_draw_tofu(tmp_path: Path) -> None:
    """Issue 24: without chromium or a CJK font (fc-list :lang=zh finds none) `make run`'s
    screenshot step takes no picture of boxes; it names the packages and exits 0."""
    page = tmp_path / "report.html"
    neither = _screenshot(tmp_path, {})
    assert (neither.returncode, neither.stdout) == (0, "")
    assert neither.stderr == (
        f"screenshot: no picture of {page}: chromium and a CJK font (fc-list :lang=zh finds "
        "none) not installed; the page is written — for the picture: apt-get install "
        "chromium fonts-noto-cjk\n"
    )
    (tmp_path / "bin").rename(tmp_path / "bin-0")
    no_font = _screenshot(tmp_path, {"chromium": "exit 1", "fc-list": "exit 0"})
    assert (no_font.returncode, no_font.stderr) == (
        0,
        f"screenshot: no picture of {page}: a CJK font (fc-list :lang=zh finds none) not "
        "installed; the page is written — for the picture: apt-get install fonts-noto-cjk\n",
    )
    assert not (tmp_path / "report.png").exists()
