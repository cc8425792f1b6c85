"""The decision service's endpoints and problem documents, exact (SPEC §11, issue 23)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from service_support import Env, split

from audit.note import SigningKey, write_signing_key
from pricecalc.service.problems import TYPE_BASE, TYPES

P = TYPE_BASE


def problem(name: str, detail: str, **extra: object) -> dict[str, object]:
    status, title = TYPES[name]
    return {"type": P + name, "title": title, "status": status, "detail": detail, **extra}


def test_new_decision_is_201_and_replay_200(env: Env) -> None:
    """SPEC §11: 201 with the decision when new; 200 with replayed: true for the same
    request under the same key; the record is written once."""
    first = env.client.post("/v1/decisions", json=split(), headers=env.auth("all", "k-1"))
    assert first.status_code == 201
    body = first.json()
    assert body["request_id"] == "k-1"
    assert body["status"] == "approved"
    assert body["merchant_id"] == "M-1"
    assert body["result"]["platform_subsidy"] == "10.00"
    assert body["audit"]["seq"] == 1
    again = env.client.post("/v1/decisions", json=split(), headers=env.auth("all", "k-1"))
    assert again.status_code == 200
    assert again.json() == {**body, "replayed": True}
    assert env.service.store.tree_size() == 1
    record = env.service.store.record(1)
    assert record is not None and record.payload["operator"] == "op-all"


def test_key_from_body_request_id_and_integer(env: Env) -> None:
    """SPEC §11: the body's request_id is the key when no header is given; an integer
    request_id equals the header holding its decimal text."""
    headers = {**env.auth("all"), "Idempotency-Key": '"42"'}
    response = env.client.post("/v1/decisions", json={**split(), "request_id": 42},
                               headers=headers)  # fmt: skip
    assert response.status_code == 201
    assert response.json()["request_id"] == "42"


def test_conflict_names_seq(env: Env) -> None:
    """SPEC §11: same key, another request → 422 idempotency-conflict naming the seq."""
    env.client.post("/v1/decisions", json=split(), headers=env.auth("all", "k-1"))
    response = env.client.post(
        "/v1/decisions", json=split(cost_price="61.00"), headers=env.auth("all", "k-1")
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == P + "idempotency-conflict"
    assert body["seq"] == 1
    assert body["detail"].startswith("request_id 'k-1' is already recorded as record 1")
    assert env.service.store.tree_size() == 1


def test_merchant_token_conflict_reveals_nothing(env: Env) -> None:
    """SPEC §11: for a merchant-limited token, a key held by another merchant's request
    answers 422 with no seq, field or value."""
    env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("m2", "shared"))
    response = env.client.post("/v1/decisions", json=split("M-1"),
                               headers=env.auth("m1", "shared"))  # fmt: skip
    assert response.status_code == 422
    assert response.json() == problem(
        "idempotency-conflict",
        "this idempotency key is already used for another request; "
        "send this request under a new key",
    )
    assert "M-2" not in response.text


@pytest.mark.parametrize(
    ("headers", "body_id", "name", "detail"),
    [
        ({}, None, "idempotency-key-missing",
         "name the request: send an Idempotency-Key header or a request_id"),
        ({"Idempotency-Key": '"a"'}, "b", "idempotency-key-mismatch",
         "the Idempotency-Key header and the body's request_id name different requests"),
        ({"Idempotency-Key": "a"}, None, "idempotency-key-invalid",
         'the Idempotency-Key header must be a quoted string, such as "order-1001-1"'),
        ({"Idempotency-Key": '"a\\b"'}, None, "idempotency-key-invalid",
         'the Idempotency-Key header may escape only " and \\ with a backslash'),
    ],
)  # fmt: skip
def test_key_problems(
    env: Env, headers: dict[str, str], body_id: str | None, name: str, detail: str
) -> None:
    """SPEC §11: 400 idempotency-key-missing / -mismatch; a header that is not an
    RFC 8941 sf-string is 400 too. Nothing is recorded."""
    request = split() if body_id is None else {**split(), "request_id": body_id}
    response = env.client.post("/v1/decisions", json=request,
                               headers={**env.auth("all"), **headers})  # fmt: skip
    assert response.status_code == 400
    assert response.json() == problem(name, detail)
    assert env.service.store.tree_size() == 0


def test_header_and_body_equal_after_nfkc(env: Env) -> None:
    """SPEC §11: header and request_id equal after SPEC §1 normalisation are one key."""
    response = env.client.post(
        "/v1/decisions", json={**split(), "request_id": "Ｏ-１"}, headers=env.auth("all", "O-1")
    )
    assert response.status_code == 201


def test_invalid_input_names_field_and_value(env: Env) -> None:
    """SPEC §11: 422 invalid-input with field and value; nothing recorded."""
    response = env.client.post(
        "/v1/decisions", json=split(list_price="1.001"), headers=env.auth("all", "k")
    )
    assert response.status_code == 422
    assert response.json() == problem(
        "invalid-input",
        "input.list_price: has more than two decimals (fen is the smallest unit) (got '1.001')",
        field="input.list_price",
        value="1.001",
    )
    assert env.service.store.tree_size() == 0


def test_bad_json_is_400(env: Env) -> None:
    """A body that is not JSON is 400 bad-request (nothing recorded)."""
    response = env.client.post("/v1/decisions", content=b"{", headers=env.auth("all", "k"))
    assert response.status_code == 400
    assert response.json()["type"] == P + "bad-request"
    assert response.json()["detail"].startswith("the body is not valid JSON: ")


def test_too_large_body_is_413(env: Env) -> None:
    """SPEC §11: a body over 1 MiB gets 413."""
    big = json.dumps({**split(), "campaign": "x" * (1024 * 1024)}).encode()
    response = env.client.post("/v1/decisions", content=big, headers=env.auth("all", "k"))
    assert response.status_code == 413
    assert response.json() == problem(
        "payload-too-large", "the body is over the limit of 1,048,576 bytes"
    )


def test_in_flight_key_is_409(env: Env) -> None:
    """SPEC §11: 409 while a request with the same key is in flight."""
    with env.service.in_flight.hold("busy"):
        response = env.client.post("/v1/decisions", json=split(),
                                   headers=env.auth("all", "busy"))  # fmt: skip
    assert response.status_code == 409
    assert response.headers["retry-after"] == "1"
    assert response.json() == problem(
        "request-in-flight",
        "a request with this key is being decided; retry once it is answered",
    )
    after = env.client.post("/v1/decisions", json=split(), headers=env.auth("all", "busy"))
    assert after.status_code == 201


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic abc", "Bearer "])
def test_no_valid_token_is_401(env: Env, authorization: str | None) -> None:
    """SPEC §11: 401 without a valid token; the token is never echoed."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = env.client.post("/v1/decisions", json=split(), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="pricecalc"'
    assert response.json() == problem(
        "unauthorized",
        "send Authorization: Bearer <token> with a token from `pricecalc token add`",
    )


def test_missing_right_is_403(env: Env) -> None:
    """SPEC §11: 403 without the right (a read-only token deciding)."""
    response = env.client.post("/v1/decisions", json=split(), headers=env.auth("reader", "k"))
    assert response.status_code == 403
    assert response.json() == problem("forbidden", "the token 'reader' has no 'decide' right")


def test_merchant_token_decides_only_its_merchant(env: Env) -> None:
    """SPEC §11: a merchant-limited token decides only requests naming that merchant."""
    for request in (split("M-2"), split(None)):
        response = env.client.post("/v1/decisions", json=request, headers=env.auth("m1", "k"))
        assert response.status_code == 403
        assert response.json() == problem(
            "forbidden", "the token 'm1' decides only requests naming merchant_id 'M-1'"
        )
    assert env.service.store.tree_size() == 0


def test_get_decision_and_merchant_404(env: Env) -> None:
    """SPEC §11: GET /v1/decisions/{key} answers the recorded decision; a merchant token
    reading another merchant's record, or one naming no merchant, gets 404 as if absent."""
    made = env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("all", "k2"))
    env.client.post("/v1/decisions", json=split(None), headers=env.auth("all", "k0"))
    got = env.client.get("/v1/decisions/k2", headers=env.auth("reader"))
    assert got.status_code == 200
    assert got.json() == made.json()
    assert env.client.get("/v1/decisions/k2", headers=env.auth("m2")).status_code == 200
    absent = problem("not-found", "no decision is recorded under this key")
    for key in ("k2", "k0", "nothing"):
        response = env.client.get(f"/v1/decisions/{key}", headers=env.auth("m1"))
        assert response.status_code == 404
        assert response.json() == absent


def test_void_and_merchant_limits(env: Env) -> None:
    """SPEC §11: POST /v1/voids needs the void right; a merchant token voids only its
    merchant's records (another's is 404); the voided decision then shows voided_by."""
    env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("all", "k2"))
    assert env.client.post("/v1/voids", json={"seq": 1, "reason": "typo", "target": "k2"},
                           headers=env.auth("reader")).status_code == 403  # fmt: skip
    other = env.client.post("/v1/voids", json={"seq": 1, "reason": "typo", "target": "k2"},
                            headers=env.auth("m1"))  # fmt: skip
    assert other.status_code == 404
    assert other.json() == problem("not-found", "there is no record 1")
    voided = env.client.post("/v1/voids", json={"seq": 1, "reason": "typo", "target": "k2"},
                             headers=env.auth("m2", "void-1"))  # fmt: skip
    assert voided.status_code == 201
    assert voided.json()["kind"] == "void"
    assert voided.json()["audit"]["seq"] == 2
    again = env.client.post("/v1/voids", json={"seq": 1, "reason": "typo", "target": "k2"},
                            headers=env.auth("m2", "void-1"))  # fmt: skip
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert env.client.get("/v1/decisions/k2", headers=env.auth("m2")).json()["voided_by"] == 2
    assert env.client.get("/v1/decisions/void-1", headers=env.auth("m2")).status_code == 200
    assert env.client.get("/v1/decisions/void-1", headers=env.auth("m1")).status_code == 404


def test_batches_stream_rows_in_order(env: Env) -> None:
    """SPEC §11: POST /v1/batches answers SPEC §8 rows in order, invalid lines included."""
    body = "\n".join(
        [json.dumps({**split(), "request_id": "b1"}), "{", json.dumps(split(cost_price="x"))]
    )
    response = env.client.post("/v1/batches", content=body.encode(), headers=env.auth("all"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jsonl"
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert [row.get("request_id") for row in rows] == ["b1", None, None]
    assert rows[0]["status"] == "approved" and rows[0]["audit"]["seq"] == 1
    assert rows[1]["line"] == 2 and rows[1]["status"] == "invalid"
    assert rows[2] == {
        "line": 3,
        "status": "invalid",
        "error": "input.cost_price: must be a plain decimal number such as \"199.90\" (got 'x')",
        "kind": "subsidy_split",
    }


def test_batch_limit_is_413(tmp_path: Path) -> None:
    """SPEC §11: a batch over its configurable limit gets 413."""
    env = Env(tmp_path, max_batch=100)
    with env.client:
        response = env.client.post("/v1/batches", content=b"x" * 101, headers=env.auth("all"))
    assert response.status_code == 413
    assert response.json() == problem(
        "payload-too-large", "the body is over the limit of 100 bytes"
    )


def test_batch_body_is_spooled_not_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SPEC §11: a batch body up to its limit (64 MiB by default) is spooled — to disk
    once over SPOOL_IN_MEMORY — and read line by line, never held whole in memory; its
    rows are the same, and a body over the limit (chunked, no Content-Length) is 413."""
    from pricecalc.service import batches, reading

    spooled: list[bool] = []
    real = reading.spool_body

    async def watched(request: Any, limit: int) -> Any:
        body, digest = await real(request, limit)
        spooled.append(body._rolled)  # type: ignore[attr-defined]
        return body, digest

    monkeypatch.setattr(reading, "SPOOL_IN_MEMORY", 64)
    monkeypatch.setattr(batches, "spool_body", watched)
    env = Env(tmp_path, max_batch=2000)
    lines = [json.dumps({**split(), "request_id": f"s{n}"}) for n in range(3)]
    with env.client:
        response = env.client.post(
            "/v1/batches", content="\n".join(lines).encode(), headers=env.auth("all")
        )
        rows = [json.loads(line) for line in response.text.splitlines()]
        assert [(row["request_id"], row["audit"]["seq"]) for row in rows] == [
            ("s0", 1), ("s1", 2), ("s2", 3)
        ]  # fmt: skip
        assert spooled == [True]  # on disk: the body was over 64 bytes

        def chunks() -> Any:
            for _ in range(3):
                yield b"x" * 1000

        refused = env.client.post("/v1/batches", content=chunks(), headers=env.auth("all"))
        assert env.service.store.tree_size() == 3
    assert refused.status_code == 413
    assert refused.json() == problem(
        "payload-too-large", "the body is over the limit of 2,000 bytes"
    )


def test_proofs_and_checkpoint(tmp_path: Path) -> None:
    """SPEC §11/§9: proof, consistency and checkpoint; 404 for a record a merchant token
    may not see; a bad size is 400."""
    key_file = tmp_path / "signing.key"
    write_signing_key(key_file, SigningKey.generate("example.invalid/serve-test"))
    env = Env(tmp_path, signing_key=str(key_file))
    with env.client:
        env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("all", "k2"))
        env.client.post("/v1/decisions", json=split("M-1"), headers=env.auth("all", "k1"))
        checkpoint = env.client.get("/v1/checkpoint", headers=env.auth("reader"))
        assert checkpoint.status_code == 200
        assert checkpoint.text.startswith("example.invalid/serve-test\n2\n")
        proof = env.client.get("/v1/records/1/proof?size=1", headers=env.auth("reader")).json()
        assert (proof["seq"], proof["tree_size"], proof["inclusion_path"]) == (1, 1, [])
        assert proof["checkpoint"].startswith("example.invalid/serve-test\n1\n")
        assert env.client.get("/v1/records/1/proof", headers=env.auth("m1")).status_code == 404
        assert env.client.get("/v1/records/2/proof", headers=env.auth("m1")).status_code == 200
        assert env.client.get("/v1/records/9/proof", headers=env.auth("all")).status_code == 404
        bad = env.client.get("/v1/records/2/proof?size=1", headers=env.auth("all"))
        assert bad.json() == problem(
            "bad-request", "size must be from 2 (the record's seq) to 2 (the tree now)"
        )
        consistency = env.client.get("/v1/consistency?from=1&to=2", headers=env.auth("m1"))
        assert consistency.status_code == 200
        assert consistency.json()["old_size"] == 1 and consistency.json()["new_size"] == 2
        assert env.client.get("/v1/consistency", headers=env.auth("m1")).json() == problem(
            "bad-request", "the query parameter from is required"
        )


def test_checkpoint_without_key_is_404(env: Env) -> None:
    """SPEC §11: /v1/checkpoint is 404 when the server has no signing key."""
    response = env.client.get("/v1/checkpoint", headers=env.auth("reader"))
    assert response.json() == problem("not-found", "this server was started without --signing-key")


def test_health_ready_and_not_ready(env: Env, tmp_path: Path) -> None:
    """SPEC §11: /healthz alive; /readyz ready, and 503 while the store cannot write."""
    assert env.client.get("/healthz").json() == {"status": "ok"}
    assert env.client.get("/readyz").json() == {"status": "ready"}

    def full() -> None:
        raise OSError(28, "No space left on device")

    other = tmp_path / "other"
    other.mkdir()
    broken = Env(other)
    broken.service._ready = full
    with broken.client:
        response = broken.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == problem(
        "store-unavailable", "the audit store cannot write: No space left on device"
    )


def test_unknown_path_and_method(env: Env) -> None:
    """Routing errors are problem documents too."""
    assert env.client.get("/v2/x").json() == problem("not-found", "there is nothing at /v2/x")
    assert env.client.delete("/v1/decisions").json() == problem(
        "method-not-allowed", "DELETE is not allowed here"
    )


def test_metrics_count_requests_and_decisions(env: Env) -> None:
    """SPEC §11: /metrics in Prometheus text: requests and decisions by kind and status,
    latency histograms."""
    env.client.post("/v1/decisions", json=split(), headers=env.auth("all", "k"))
    env.client.post("/v1/decisions", json=split(), headers=env.auth("all", "k"))
    text = env.client.get("/metrics").text
    assert (
        'pricecalc_decisions_total{kind="subsidy_split",replayed="false",status="approved"} 1.0'
        in text
    )
    assert (
        'pricecalc_decisions_total{kind="subsidy_split",replayed="true",status="approved"} 1.0'
        in text
    )
    assert (
        'pricecalc_http_requests_total{method="POST",route="/v1/decisions",status="201"} 1.0'
        in text
    )
    assert "pricecalc_http_request_seconds_bucket" in text
    assert "pricecalc_decide_seconds_count 2.0" in text


def test_access_log_has_no_token_or_body(env: Env) -> None:
    """SPEC §11: the access log is JSON Lines without bodies or tokens; no response or
    log line carries a stack trace."""
    env.client.post("/v1/decisions", json=split(), headers=env.auth("all", "k"))
    env.client.post("/v1/decisions", json=split(), headers={"Authorization": "Bearer wrong-x"})
    lines = [json.loads(line) for line in env.log.getvalue().splitlines()]
    assert [(line["path"], line["status"], line.get("token")) for line in lines] == [
        ("/v1/decisions", 201, "all"),
        ("/v1/decisions", 401, None),
    ]
    assert set(lines[0]) == {"time", "method", "path", "status", "ms", "client", "token"}
    text = env.log.getvalue()
    for secret in (*env.secrets.values(), "wrong-x", "100.00", "Traceback"):
        assert secret not in text


def test_internal_error_has_no_trace(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """An unexpected failure is a 500 problem without a trace, in the response or log."""

    def broken(operator: str) -> object:
        raise ZeroDivisionError("secret detail")

    env.service.calculator = broken  # type: ignore[assignment]
    response = env.client.post("/v1/decisions", json=split(), headers=env.auth("all", "k"))
    assert response.status_code == 500
    assert response.json() == problem("internal-error", "the server could not answer this request")
    err = capsys.readouterr().err
    assert "secret detail" not in err and "Traceback" not in err
    assert err == "pricecalc serve: POST /v1/decisions failed: ZeroDivisionError\n"


def test_tokens_reloaded(env: Env) -> None:
    """SPEC §11: the server re-reads the tokens file (on SIGHUP): a removed token is
    refused, a new one accepted."""
    from pricecalc.service import tokens as tokens_file

    tokens_file.remove(env.tokens, "reader")
    fresh = tokens_file.add(env.tokens, "new", "op-new", ["read"])
    env.service.reload_tokens()
    assert env.client.get("/v1/consistency?from=0", headers=env.auth("reader")).status_code == 401
    ok = env.client.get("/v1/consistency?from=0", headers={"Authorization": f"Bearer {fresh}"})
    assert ok.status_code == 200


def test_void_only_through_voids(env: Env) -> None:
    """A void is never made through /v1/decisions or /v1/batches (it would skip the void
    right and a merchant token's limits): 403 there, an invalid row in a batch."""
    env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("all", "k2"))
    void = {"kind": "void", "merchant_id": "M-1", "input": {"seq": 1, "reason": "x"}}
    response = env.client.post("/v1/decisions", json=void, headers=env.auth("m1", "v"))
    assert response.status_code == 403
    assert response.json() == problem(
        "forbidden", "a void is made through POST /v1/voids (it needs the void right)"
    )
    batch = env.client.post("/v1/batches", content=json.dumps(void).encode(),
                            headers=env.auth("m1"))  # fmt: skip
    assert [json.loads(line) for line in batch.text.splitlines()] == [
        {
            "line": 1,
            "status": "invalid",
            "error": "a void is made through POST /v1/voids (it needs the void right)",
            "kind": "void",
        }
    ]
    assert env.service.store.tree_size() == 1


@pytest.mark.parametrize("protocol", ["ProblemH11Protocol", "ProblemHttpToolsProtocol"])
def test_both_protocols_answer_malformed_http_with_a_problem(protocol: str) -> None:
    """Both of uvicorn's HTTP/1.1 parsers (pricecalc/service/protocols.py) answer a
    request they cannot parse with the bad-request problem document and close."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from pricecalc.service import protocols

    class Transport:
        def __init__(self) -> None:
            self.data = b""
            self.closed = False

        def get_extra_info(self, name: str) -> Any:
            return ("127.0.0.1", 8000) if name in ("sockname", "peername") else None

        def write(self, data: bytes) -> None:
            self.data += data

        def close(self) -> None:
            self.closed = True

        def is_closing(self) -> bool:
            return self.closed

    config = Config(app=lambda scope, receive, send: None, log_level="critical")
    config.load()

    async def exchange() -> Transport:
        made = getattr(protocols, protocol)(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        made.connection_made(transport)
        made.data_received(b"NOT HTTP AT ALL\r\n\r\n")
        return transport

    transport = asyncio.run(exchange())
    head, _, body = transport.data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["detail"] == protocols.MALFORMED
    assert transport.closed


def test_a_serving_process_tunes_the_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A serving process (uvicorn's factory) raises the collector's thresholds and freezes
    what it loaded, so no full collection over the growing heap stalls every request
    (docs/performance.md, the service)."""
    import gc

    from pricecalc.service import server, tokens as tokens_file

    tokens = tmp_path / "tokens.json"
    tokens_file.add(tokens, "t", "op", ["decide"])
    settings = {"audit": str(tmp_path / "audit.jsonl"), "tokens": str(tokens)}
    monkeypatch.setenv(server.SETTINGS_ENV, json.dumps(settings))
    before = gc.get_threshold()
    try:
        app = server.app_from_environment()
        assert gc.get_threshold() == (10_000, 10, 10) == server.GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        app.state.service.close()
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
