"""Both cores (issue 11): worker processes decide while one writer records, in order —
with the same output lines and the same records, in the same order, as one process
(apart from record ids and the hashes and times that cover them)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pricecalc.batch import LineResult, _row_with_audit, batch_row, run_batch
from pricecalc.calculator import Calculator
from pricecalc.envelope import Envelope
from pricecalc.files.columns import RowLayout
from pricecalc.files.reading import FileLine, read_jsonl
from pricecalc.files.rows import Summary, money_amounts
from pricecalc.files.writing import jsonl_text
from pricecalc.parallel import Draft, Workers, draft, evaluate_away
from pricecalc.policy import Policy

NOW = datetime(2026, 11, 12, 1, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    """Two worker processes shared by the tests (starting them is the slow part)."""
    pool = Workers(Policy(), (), "ops", 2)
    yield pool
    pool.close()


def calculator(path: Path, workers: Workers | None) -> Calculator:
    calc = Calculator(path, operator="ops", clock=lambda: NOW)
    if workers is not None:
        calc._workers = workers  # the shared pool: same plugins, policy and operator
    return calc


def comparable(path: Path) -> list[dict[str, Any]]:
    """The records without what a second run cannot repeat: ids, times, hashes."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        out.append({k: record[k] for k in ("seq", "key", "tags", "payload")})
    return out


def without_hashes(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    if "audit" in row:
        row["audit"] = {"seq": row["audit"]["seq"]}
    return row


def run(path: Path, requests: list[Any], workers: Workers | None, chunk: int) -> list[Any]:
    rows: list[dict[str, Any]] = []

    def emit(result: LineResult) -> None:
        rows.append(without_hashes(batch_row(result)))

    lines = [(FileLine(n, request=r), n) for n, r in enumerate(requests, start=1)]
    with calculator(path, workers) as calc:
        if workers is None:
            run_batch(calc, lines, "0" * 64, emit, chunk_size=chunk, jobs=1)
        else:
            calc._workers = workers
            run_batch(calc, lines, "0" * 64, emit, chunk_size=chunk, jobs=2)
            calc._workers = None  # shared: not closed with this calculator
    return rows


def claim(order: str, drop: str) -> dict[str, Any]:
    return {
        "kind": "price_protection",
        "input": {
            "order_id": order,
            "paid_at": "2026-11-11T10:00",
            "claimed_at": "2026-11-12T09:00",
            "order_status": "paid",
            "event": {"start": "2026-11-10T00:00", "end": "2026-11-12T23:59:59"},
            "lines": [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00"}],
            "offers": [
                {"type": "coupon", "amount": "10.00", "threshold": "100.00"},
                {"type": "direct_drop", "sku": "A", "unit_price": drop, "at": "2026-11-11T20:00"},
            ],
        },
    }


def compensation(order: str, paid: str) -> dict[str, Any]:
    line = {"line_id": "L1", "paid_amount": paid}
    return {
        "kind": "counterfeit_compensation",
        "input": {"order_id": order, "confirmed": True, "lines": [line]},
    }


def split(price: str) -> dict[str, Any]:
    return {"kind": "subsidy_split", "input": {
        "list_price": "199.00", "registration_price": "169.00", "subsidy_price": price,
        "floor_price": "139.00", "cost_price": "120.00"}}  # fmt: skip


ORDERS = st.sampled_from(["O-1", "O-2"])
REQUESTS = st.one_of(
    st.builds(claim, ORDERS, st.sampled_from(["90.00", "85.00", "99.00"])),
    st.builds(compensation, ORDERS, st.sampled_from(["39.90", "49.90"])),
    st.builds(split, st.sampled_from(["149.00", "129.00"])),
    st.builds(  # approved when seq holds that key, else VOID_TARGET_MISMATCH (SPEC §7)
        lambda seq, to: {"kind": "void", "input": {"seq": seq, "reason": "fix", "target": to}},
        st.integers(min_value=1, max_value=8),
        st.sampled_from(["k-1", "k-2", "k-3"]),
    ),
    st.just({"kind": "subsidy_split", "input": {"list_price": "-1"}}),
    st.builds(
        lambda r, rid: {**r, "request_id": rid},
        st.builds(split, st.just("149.00")),
        st.sampled_from(["k-1", "k-2"]),
    ),
    st.builds(
        lambda rid: {**compensation("O-1", "68.00"), "request_id": rid},
        st.sampled_from(["k-1", "k-3"]),
    ),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests=st.lists(REQUESTS, min_size=2, max_size=16), chunk=st.integers(1, 4))
def test_parallel_batch_equals_one_process(
    tmp_path_factory: pytest.TempPathFactory,
    workers: Workers,
    requests: list[Any],
    chunk: int,
) -> None:
    """Any mix — claims and compensations for one order in flight together, replays,
    conflicts, voids, invalid lines — gives the same rows and records either way: the
    writer re-checks every decision whose rule read history before recording it."""
    root = tmp_path_factory.mktemp("par")
    one = run(root / "one.jsonl", requests, None, chunk)
    two = run(root / "two.jsonl", requests, workers, chunk)
    assert two == one
    assert comparable(root / "two.jsonl") == comparable(root / "one.jsonl")


def test_second_claims_in_flight_pay_once(tmp_path: Path, workers: Workers) -> None:
    """Two claims for one drop in one chunk, decided by workers that saw no history: the
    writer sees the first pending and decides the second again — paid once."""
    claims = [claim("O-1", "90.00"), claim("O-1", "85.00")] * 3
    requests = [{**c, "request_id": f"c-{n}"} for n, c in enumerate(claims)]
    rows = run(tmp_path / "a.jsonl", requests, workers, 3)
    assert [r["result"]["refund_total"] for r in rows] == [
        "20.00", "10.00", "0.00", "0.00", "0.00", "0.00",
    ]  # fmt: skip


def test_decide_many_with_jobs(tmp_path: Path, workers: Workers) -> None:
    """Calculator.decide_many(jobs=2): the same decisions as one process."""
    requests = [split("149.00"), compensation("O-1", "39.90"), compensation("O-1", "49.90")]
    with calculator(tmp_path / "one.jsonl", None) as calc:
        one = [d.to_dict() for d in calc.decide_many(requests)]
    with calculator(tmp_path / "two.jsonl", workers) as calc:
        two = [d.to_dict() for d in calc.decide_many(requests, jobs=2)]
        calc._workers = None
    assert [without_hashes(d) for d in two] == [without_hashes(d) for d in one]
    assert [d["status"] for d in two] == ["approved", "approved", "rejected"]


def test_an_in_process_registry_runs_in_one_process(tmp_path: Path) -> None:
    """A calculator given its registry in-process cannot hand it to worker processes."""
    from pricecalc.plugins import default_registry

    with Calculator(tmp_path / "a.jsonl", registry=default_registry()) as calc:
        assert calc.workers(2) is None
        assert len(calc.decide_many([split("149.00")] * 3, jobs=2)) == 3


@pytest.mark.slow
def test_cli_batch_jobs_2_runs_worker_processes(tmp_path: Path) -> None:
    """Issue 22 point 4: `pricecalc batch --jobs 2` really decides in two worker processes
    (each logs its pid to PRICECALC_WORKER_LOG when it starts; `--jobs 1` starts none),
    and its output lines, in order, and its records equal `--jobs 1`'s (apart from ids,
    times and hashes)."""
    import os
    import subprocess
    import sys

    from pricecalc.parallel import WORKER_LOG_ENV

    campaign = ROOT / "examples" / "campaign.jsonl"
    outputs = {}
    pids = {}
    for jobs in ("1", "2"):
        log = tmp_path / f"workers{jobs}.log"
        done = subprocess.run(
            [sys.executable, "-m", "pricecalc", "--audit", f"a{jobs}.jsonl", "--policy",
             str(ROOT / "examples" / "policy.toml"), "batch", str(campaign), "-o",
             f"d{jobs}.jsonl", "--jobs", jobs, "--chunk-size", "40", "--quiet"],
            cwd=tmp_path, capture_output=True, check=False,
            env={**os.environ, WORKER_LOG_ENV: str(log)},
        )  # fmt: skip
        assert done.returncode == 1, done.stderr  # the campaign has planted mistakes
        rows = [json.loads(x) for x in (tmp_path / f"d{jobs}.jsonl").read_text().splitlines()]
        records = comparable(tmp_path / f"a{jobs}.jsonl")
        for record in records:
            record["payload"].pop("decided_at", None)
        outputs[jobs] = ([without_hashes(r) for r in rows], records)
        pids[jobs] = log.read_text().split() if log.exists() else []
    assert pids["1"] == []
    assert len(set(pids["2"])) == 2
    assert str(os.getpid()) not in pids["2"]
    assert outputs["2"] == outputs["1"]


# -- what a worker hands the writer (issue 22 point 4) -------------------------------------
def drafted(calc: Calculator, request: dict[str, Any]) -> tuple[Envelope, Draft]:
    """A request decided away from the store, against no history, and drafted."""
    envelope = calc.keyed(Envelope.parse(request), NOW)
    away = evaluate_away(calc.engine, envelope, NOW, calc.named_operator)
    assert away.decision is not None
    made = draft(away.decision, NOW, calc.operator, away.asked, envelope.aliases)
    assert made is not None
    return envelope, made


def test_a_draft_is_recorded_as_the_writer_records_its_decision(tmp_path: Path) -> None:
    """Appended as drafted, a decision's record — key, tags, payload — and its output row
    are those of the same decision made and recorded by the writer (SPEC §7, §8)."""
    request = {**split("149.00"), "request_id": "s-1"}
    with calculator(tmp_path / "one.jsonl", None) as calc:
        [one] = calc.decide_prepared([Envelope.parse(request)], now=NOW)
    with calculator(tmp_path / "two.jsonl", None) as calc:
        _, made = drafted(calc, request)
        [two] = calc.decide_prepared([made], now=NOW)
    assert one.decision is not None and one.decision.audit is not None
    assert two.decision is None and two.drafted is not None
    assert comparable(tmp_path / "two.jsonl") == comparable(tmp_path / "one.jsonl")
    line = FileLine(1, request=request)
    written = jsonl_text(batch_row(LineResult(line, decision=one.decision.to_dict())))
    unsealed = attrs.evolve(one.decision, audit=None).to_dict()
    bare = jsonl_text(batch_row(LineResult(line, decision=unsealed)))
    assert _row_with_audit(bare, one.decision.audit) == written


def test_a_draft_the_store_refuses_is_decided_by_the_writer(tmp_path: Path) -> None:
    """A draft whose key is recorded already is not appended: the writer reads the request
    again (redo) and decides it with the store — a replay for the same request, a conflict
    for another — exactly as without workers (SPEC §7)."""
    request = {**split("149.00"), "request_id": "s-1"}
    other = {**split("129.00"), "request_id": "s-1"}
    with calculator(tmp_path / "a.jsonl", None) as calc:
        calc.decide(request)
        same, made_same = drafted(calc, request)
        changed, made_other = drafted(calc, other)
        items = calc.decide_prepared(
            [made_same, made_other], now=NOW, redo=[same, changed].__getitem__
        )
        assert items[0].decision is not None and items[0].decision.replayed
        assert items[0].drafted is None
        assert items[1].conflict is not None and items[1].conflict.seq == 1
        refused = "a Draft refused by the store needs redo= to decide it"
        with pytest.raises(TypeError, match=refused):
            calc.decide_prepared([made_same], now=NOW)
    assert len(comparable(tmp_path / "a.jsonl")) == 1


def test_a_claim_drafted_against_no_history_waits_for_the_store(tmp_path: Path) -> None:
    """A claim's draft asked about its order's past decisions; once one is recorded the
    store answers otherwise, so the writer decides the second claim itself: paid once."""
    first = {**claim("O-1", "90.00"), "request_id": "c-1"}
    second = {**claim("O-1", "90.00"), "request_id": "c-2"}
    with calculator(tmp_path / "a.jsonl", None) as calc:
        _, one = drafted(calc, first)
        envelope, two = drafted(calc, second)
        assert two.asked  # the rule read the order's history
        items = calc.decide_prepared([one, two], now=NOW, redo={1: envelope}.__getitem__)
    assert items[0].drafted is not None
    assert items[1].decision is not None
    assert items[1].decision.result["refund_total"] == "0.00"


def test_unread_json_lines_read_as_read_ones() -> None:
    """read_jsonl(parse=False) leaves each line to whoever decides it; FileLine.parsed()
    gives what read_jsonl reads (a byte-order mark, an empty line, bad JSON, not UTF-8)."""
    raw = b'\xef\xbb\xbf{"kind": "x"}\n\n{"kind": \n\xff\n[1]\n'
    read = list(read_jsonl(io.BytesIO(raw)))
    unread = list(read_jsonl(io.BytesIO(raw), parse=False))
    assert [(line.parsed(), at) for line, at in unread] == read
    assert [line.raw for line, _ in unread][:2] == [b'{"kind": "x"}\n', b"\n"]
    assert read[0][0].parsed() is read[0][0]


def test_a_summary_counts_a_drafted_decision_as_a_recorded_one() -> None:
    """Summary.add_new with the money a worker read equals Summary.add of the decision."""
    from pricecalc import Engine

    decision = Engine().evaluate(split("149.00"), now=NOW).to_dict()
    layout = RowLayout.of(Engine().registry.declarations())
    one, two = Summary(layout), Summary(layout)
    one.add(decision["status"], decision)
    two.add_new(decision["kind"], decision["status"],
                money_amounts(layout.money, decision["kind"], decision["result"]))  # fmt: skip
    assert (two.counts, two.totals.formatted()) == (one.counts, one.totals.formatted())
    assert one.totals.formatted()["merchant_subsidy"] != "0.00"


def test_rows_handed_over_as_text_equal_rows_written_here(
    tmp_path: Path, workers: Workers
) -> None:
    """run_batch(emit_row=…): a drafted line's row text, with its audit, is what the
    writer writes for the same line decided here (jsonl_text(batch_row(result)))."""
    requests = [split("149.00"), split("129.00"), {"kind": "subsidy_split", "input": {}},
                compensation("O-1", "39.90"), compensation("O-1", "49.90")] * 2  # fmt: skip
    lines = [(FileLine(n, raw=json.dumps(r).encode() + b"\n"), n)
             for n, r in enumerate(requests, start=1)]  # fmt: skip
    texts: dict[int, list[str]] = {1: [], 2: []}
    for jobs in (1, 2):
        with calculator(tmp_path / f"{jobs}.jsonl", workers if jobs == 2 else None) as calc:
            run_batch(calc, lines, "0" * 64,
                      lambda r, jobs=jobs: texts[jobs].append(jsonl_text(batch_row(r))),
                      chunk_size=3, jobs=jobs, emit_row=texts[jobs].append)  # fmt: skip
            calc._workers = None
    assert len(texts[2]) == len(requests)
    assert [without_hashes(json.loads(t)) for t in texts[2]] == [
        without_hashes(json.loads(t)) for t in texts[1]
    ]


@pytest.mark.parametrize(
    ("cores", "load", "lines", "jobs"),
    [
        (2, 0.3, None, 2),  # two cores, idle, a large file: two workers and the writer
        (2, 0.3, 60_000, 2),
        (2, 0.3, 9_999, 1),  # too few lines to repay starting workers
        (2, 0.6, 60_000, 1),  # fewer than 1.5 cores free
        (2, 2.0, 60_000, 1),  # every core busy already
        (1, 0.0, 60_000, 1),
        (4, 1.0, 60_000, 3),  # above two cores: the cores but the writer's
    ],
)
def test_the_default_jobs(
    monkeypatch: pytest.MonkeyPatch, cores: int, load: float, lines: int | None, jobs: int
) -> None:
    """batch's default --jobs (docs/cli.md): workers for a file of 10,000 lines or more
    when at least 1.5 cores are free (cores less the load average), else one process."""
    from pricecalc import parallel

    monkeypatch.setattr(parallel, "available_cores", lambda: cores)
    monkeypatch.setattr(parallel, "busy_cores", lambda: load)
    assert parallel.default_jobs(lines) == jobs


def test_the_default_starts_no_workers_for_a_small_file(tmp_path: Path) -> None:
    """run_batch(jobs=None) of fewer lines than MIN_LINES_FOR_WORKERS: one process."""
    lines = [(FileLine(n, request=split("149.00")), n) for n in range(1, 1201)]
    with calculator(tmp_path / "a.jsonl", None) as calc:
        summary = run_batch(calc, lines, "0" * 64, lambda _: None, jobs=None)
        assert calc._workers is None
    assert (summary.new, summary.replayed) == (1, 1199)


def test_workers_yield_a_core_to_the_writer(workers: Workers) -> None:
    """The writer records every line, in order: on a busy machine its share of a core
    sets the pace, so the workers run WORKER_NICENESS steps nicer than it."""
    import os

    from pricecalc.parallel import WORKER_NICENESS

    here = os.nice(0)
    assert workers.submit(os.nice, 0).result() == min(19, here + WORKER_NICENESS)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_line_that_fails_for_another_reason_stops_the_batch_after_the_lines_before_it(
    tmp_path: Path, workers: Workers, jobs: int
) -> None:
    """A failure that is not a line's input (a plugin, the policy) stops the batch at that
    line: the lines before it are recorded and emitted, drafted or not (BatchStopped)."""
    from pricecalc.batch import BatchStopped
    from pricecalc.errors import PricecalcError

    requests = [{**split("149.00"), "request_id": f"s-{n}"} for n in range(1, 8)]
    requests[4]["request_id"] = "boom"
    lines = [(FileLine(n, raw=json.dumps(r).encode() + b"\n"), n)
             for n, r in enumerate(requests, start=1)]  # fmt: skip
    emitted: list[str] = []
    with calculator(tmp_path / "a.jsonl", workers if jobs == 2 else None) as calc:
        decide = calc.decide_prepared

        def failing(slots: Any, *args: Any, **kwargs: Any) -> Any:
            keys = [getattr(s, "key", None) or getattr(s, "request_id", None) for s in slots]
            if "boom" in keys:
                raise PricecalcError("the policy could not be read")
            return decide(slots, *args, **kwargs)

        calc.decide_prepared = failing  # type: ignore[method-assign]
        with pytest.raises(BatchStopped, match="line 5: the policy could not be read"):
            run_batch(calc, lines, "0" * 64,
                      lambda r: emitted.append(jsonl_text(batch_row(r))), chunk_size=3,
                      jobs=jobs, emit_row=emitted.append)  # fmt: skip
        calc._workers = None
    assert [json.loads(t)["request_id"] for t in emitted] == ["s-1", "s-2", "s-3", "s-4"]
    assert [r["key"] for r in comparable(tmp_path / "a.jsonl")] == ["s-1", "s-2", "s-3", "s-4"]
