"""Issue 23: concurrent requests handed to the store in groups from the event loop
(:mod:`pricecalc.service.groups`) and decided as one group by ``Calculator.decide_each``
— each request its own outcome, one sync per group, no guarantee dropped."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_support import Env, split

import audit.logfile
from pricecalc.calculator import Calculator
from pricecalc.decision import Decision
from pricecalc.errors import IdempotencyConflict, InvalidInput
from pricecalc.service import tokens as tokens_file
from pricecalc.service.groups import LoopGroups
from pricecalc.service.problems import TYPE_BASE, TYPES


def problem(name: str, detail: str) -> dict[str, object]:
    status, title = TYPES[name]
    return {"type": TYPE_BASE + name, "title": title, "status": status, "detail": detail}


def test_decide_each_gives_each_request_its_own_outcome_with_one_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One group, in order: a new decision, an invalid request, a conflict under the first
    key and a replay of it — each what its own ``decide`` would give, one sync for all."""
    with Calculator(str(tmp_path / "a.jsonl"), operator="clerk") as calc:
        calc.decide({**split(), "request_id": "before"})
        syncs: list[int] = []
        real = audit.logfile.os_fsync

        def counted(fd: int) -> None:
            syncs.append(fd)
            real(fd)

        monkeypatch.setattr(audit.logfile, "os_fsync", counted)
        new, bad, clash, again = calc.decide_each(
            [
                {**split(), "request_id": "a"},
                {**split(list_price="oops"), "request_id": "b"},
                {**split(floor_price="71.00"), "request_id": "a"},
                {**split(), "request_id": "a"},
            ]
        )
        assert len(syncs) == 1
    assert isinstance(new, Decision) and not new.replayed
    assert new.audit is not None and new.audit.seq == 2
    assert isinstance(bad, InvalidInput) and bad.field == "input.list_price"
    assert isinstance(clash, IdempotencyConflict) and clash.seq == 2
    assert isinstance(again, Decision) and again.replayed and again.audit == new.audit


def test_decide_each_of_nothing_is_nothing(tmp_path: Path) -> None:
    with Calculator(str(tmp_path / "a.jsonl"), operator="clerk") as calc:
        assert calc.decide_each([]) == []
        assert calc.store.tree_size() == 0


def test_requests_of_one_turn_are_one_group_and_the_next_come_after() -> None:
    """Requests submitted in one turn of the loop are one group; those that come while it
    runs are the next one — each gets its own value or exception."""
    groups: list[list[int]] = []
    first_running = threading.Event()
    release = threading.Event()

    def run(items: Sequence[int]) -> list[int | Exception]:
        groups.append(list(items))
        if len(groups) == 1:
            first_running.set()
            release.wait(30)
        return [ValueError(f"odd {n}") if n % 2 else n * 10 for n in items]

    grouped: LoopGroups[int, int] = LoopGroups(run, bound=3)

    async def main() -> list[Any]:
        first = [asyncio.ensure_future(grouped.submit(n)) for n in (1, 2)]
        await asyncio.get_running_loop().run_in_executor(None, first_running.wait, 30)
        later = [asyncio.ensure_future(grouped.submit(n)) for n in (3, 4, 5, 6)]
        await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(*first, *later, return_exceptions=True)

    try:
        outcomes = asyncio.run(main())
    finally:
        grouped.close()
    assert groups == [[1, 2], [3, 4, 5], [6]]  # the bound: at most 3 a group
    assert [str(o) if isinstance(o, ValueError) else o for o in outcomes] == [
        "odd 1", 20, "odd 3", 40, "odd 5", 60
    ]  # fmt: skip


def test_with_depth_two_the_next_group_runs_while_the_last_is_held() -> None:
    """Depth 2 (the service's): while one group is still running (syncing, say), the
    requests that arrive meanwhile are handed to the second thread at once; a third group
    waits for one of the two to be done."""
    groups: list[list[int]] = []
    first_running = threading.Event()
    release = threading.Event()

    def run(items: Sequence[int]) -> list[int | Exception]:
        groups.append(list(items))
        if items[0] == 1:
            first_running.set()
            release.wait(30)
        return [n * 10 for n in items]

    grouped: LoopGroups[int, int] = LoopGroups(run, bound=8, depth=2)

    async def main() -> list[int]:
        first = asyncio.ensure_future(grouped.submit(1))
        await asyncio.get_running_loop().run_in_executor(None, first_running.wait, 30)
        second = await asyncio.gather(grouped.submit(2), grouped.submit(3))
        seen = [len(groups), int(first.done())]
        release.set()
        return [*seen, await first, *second]

    try:
        assert asyncio.run(main()) == [2, 0, 10, 20, 30]
    finally:
        grouped.close()
    assert groups == [[1], [2, 3]]


def test_a_group_that_fails_fails_each_of_its_requests() -> None:
    def run(items: Sequence[int]) -> list[int | Exception]:
        raise OSError("disk gone")

    grouped: LoopGroups[int, int] = LoopGroups(run, bound=8)

    async def main() -> list[Any]:
        return await asyncio.gather(*(grouped.submit(n) for n in range(3)), return_exceptions=True)

    try:
        outcomes = asyncio.run(main())
    finally:
        grouped.close()
    assert [str(o) for o in outcomes] == ["disk gone"] * 3


def test_a_request_after_close_is_refused_not_left_waiting() -> None:
    grouped: LoopGroups[int, int] = LoopGroups(lambda items: list(items), bound=8)
    grouped.close()

    async def main() -> list[Any]:
        return await asyncio.gather(grouped.submit(1), return_exceptions=True)

    (outcome,) = asyncio.run(main())
    assert isinstance(outcome, RuntimeError)
    assert str(outcome) == "cannot schedule new futures after shutdown"


def test_a_cancelled_request_still_waits_for_its_group() -> None:
    """A request cancelled while its group runs is not let go before the group is done
    (its key stays held in flight until its decision is recorded or refused)."""
    release = threading.Event()
    ran: list[str] = []

    def run(items: Sequence[int]) -> list[int | Exception]:
        release.wait(30)
        ran.append("done")
        return list(items)

    grouped: LoopGroups[int, int] = LoopGroups(run, bound=8)

    async def main() -> list[str]:
        task = asyncio.ensure_future(grouped.submit(1))
        await asyncio.sleep(0.05)  # the group is running
        task.cancel()
        await asyncio.sleep(0.05)
        seen = ["running" if not task.done() else "let go"]
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen + ran

    try:
        assert asyncio.run(main()) == ["running", "done"]
    finally:
        grouped.close()


def _post_all(env: Env, requests: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
    """POST the requests (token, key, body) to the application at once, in one loop."""
    transport = httpx.ASGITransport(app=env.client.app)

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/decisions", json=body, headers=env.auth(token, key))
                    for token, key, body in requests
                )
            )

    return asyncio.run(main())


def test_concurrent_requests_share_one_group(env: Env) -> None:
    """Eight requests at once: one group (one commit), each answered its own decision in
    order of arrival; /metrics shows the group's size."""
    responses = _post_all(env, [("all", f"k{n}", split()) for n in range(8)])
    assert [r.status_code for r in responses] == [201] * 8
    assert [r.json()["audit"]["seq"] for r in responses] == list(range(1, 9))
    text = env.client.get("/metrics").text
    assert "pricecalc_decision_group_size_count 1.0" in text
    assert "pricecalc_decision_group_size_sum 8.0" in text


def test_one_operators_failure_leaves_the_groups_others_decided(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """A group of two operators' requests: the calculator of one fails (500, no trace);
    the other's request in the same group is decided and answered 201. A merchant-limited
    token's hidden conflict is its own answer too."""
    env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("m2", "theirs"))
    real = env.service.calculator

    def calculator(operator: str) -> Calculator:
        if operator == "op-reader":
            raise ZeroDivisionError("secret detail")
        return real(operator)

    env.service.calculator = calculator  # type: ignore[method-assign]
    env.secrets["broken"] = tokens_file.add(env.tokens, "broken", "op-reader", ["decide"], None)
    env.service.reload_tokens()
    responses = _post_all(
        env,
        [
            ("all", "mine", split()),
            ("broken", "other", split()),
            ("m1", "theirs", split()),
            ("all", "mine-2", split()),
        ],
    )
    assert [r.status_code for r in responses] == [201, 500, 422, 201]
    assert responses[1].json() == problem(
        "internal-error", "the server could not answer this request"
    )
    assert responses[2].json() == problem(
        "idempotency-conflict",
        "this idempotency key is already used for another request; send this request under "
        "a new key",
    )
    assert [r.json()["audit"]["seq"] for r in (responses[0], responses[3])] == [2, 3]
    assert "secret detail" not in capsys.readouterr().err


def test_the_hot_path_answers_as_its_route(env: Env) -> None:
    """POST /v1/decisions goes straight to its endpoint (pricecalc.service.app.ServiceApp):
    the same answers, problems, metrics and log as through Starlette's route; any other
    method on the path still gets Starlette's 405 problem with Allow (not counted or logged,
    as before)."""
    created = env.client.post("/v1/decisions", json=split(), headers=env.auth("all", "hot"))
    refused = env.client.post("/v1/decisions", json=split(), headers={"Authorization": "x"})
    wrong = env.client.put("/v1/decisions", json=split(), headers=env.auth("all", "hot"))
    assert (created.status_code, created.json()["audit"]["seq"]) == (201, 1)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="pricecalc"'
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json() == problem("method-not-allowed", "PUT is not allowed here")
    text = env.client.get("/metrics").text
    for status in ("201", "401"):
        assert (
            f'pricecalc_http_requests_total{{method="POST",route="/v1/decisions",'
            f'status="{status}"}} 1.0'
        ) in text
    logged = [json.loads(line) for line in env.log.getvalue().splitlines()]
    assert [(e["method"], e["path"], e["status"], e.get("token")) for e in logged][:2] == [
        ("POST", "/v1/decisions", 201, "all"), ("POST", "/v1/decisions", 401, None)
    ]  # fmt: skip


def _claim(merchant: str) -> dict[str, Any]:
    return {
        "kind": "counterfeit_compensation",
        "merchant_id": merchant,
        "input": {
            "order_id": "O-1",
            "confirmed": True,
            "lines": [{"line_id": "L1", "paid_amount": "39.90"}],
        },
    }


def test_a_merchant_token_never_decides_an_order_another_merchant_decided_in_its_group(
    env: Env,
) -> None:
    """Hole: a merchant-limited token's checks ran for the whole group before
    its transaction, so merchant M-1's claim on order O-1, grouped after M-2's claim on
    it, passed the check (nothing recorded yet), was decided with M-2's record as its
    history and told ALREADY_COMPENSATED — what another merchant was decided (SPEC §11).
    The check now runs under the lock, just before the request is decided: 403."""
    responses = _post_all(env, [("m2", "theirs", _claim("M-2")), ("m1", "mine", _claim("M-1"))])
    assert [r.status_code for r in responses] == [201, 403]
    assert responses[0].json()["result"]["payout_total"] == "539.90"
    assert responses[1].json() == problem(
        "forbidden",
        "order_id 'O-1' has decisions recorded for another merchant: the token 'm1' decides "
        "only orders of merchant_id 'M-1'",
    )
    assert [r.key for r in env.service.store.query()] == ["theirs"]

