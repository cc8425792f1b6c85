"""Attacks on the decision service, each pinned by the hole it found (SPEC §11, §7, §8;
issue 23): a merchant-limited token learning or touching another merchant's records, a
key the header smuggles past SPEC §1, and answers that were not problem documents."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from service_support import Env, split
from test_service_process import Server, keys_in_store, verify

from pricecalc.envelope import Envelope
from pricecalc.service import tokens as tokens_file
from pricecalc.service.problems import TYPE_BASE, TYPES


def problem(name: str, detail: str, **extra: object) -> dict[str, object]:
    status, title = TYPES[name]
    return {"type": TYPE_BASE + name, "title": title, "status": status, "detail": detail,
            **extra}  # fmt: skip


@pytest.mark.parametrize("seq", ["1", " 1", "+1", "01"])
def test_merchant_token_cannot_void_another_merchant_by_seq_text(env: Env, seq: str) -> None:
    """SPEC §11: a merchant-limited token may void only that merchant's records. The seq
    written as integer text (which SPEC §1 reads as the count 1) is that record too, so
    another merchant's record answers 404 as if absent — nothing recorded, nothing of it
    (its request_id, kind) shown."""
    env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("all", "k2"))
    for target in ("k2", "wrong"):
        response = env.client.post(
            "/v1/voids", json={"seq": seq, "reason": "x", "target": target},
            headers=env.auth("m1", f"v-{target}"),
        )  # fmt: skip
        assert response.status_code == 404
        assert response.json() == problem("not-found", "there is no record 1")
    assert env.service.store.tree_size() == 1
    shown = env.client.get("/v1/decisions/k2", headers=env.auth("m2")).json()
    assert "voided_by" not in shown


def test_merchant_token_void_with_bad_seq_text_is_invalid_input(env: Env) -> None:
    """SPEC §11/§1: a merchant-limited token's void whose seq is not a count is 422
    invalid-input naming input.seq, as for any token."""
    response = env.client.post("/v1/voids", json={"seq": "１", "reason": "x", "target": "k"},
                               headers=env.auth("m1", "v"))  # fmt: skip
    assert response.status_code == 422
    assert response.json() == problem(
        "invalid-input",
        "input.seq: must be written with ASCII digits 0-9 (such as 2) (got '１')",
        field="input.seq",
        value="１",
    )


def test_merchant_token_never_takes_over_another_merchants_voided_key(env: Env) -> None:
    """SPEC §11/§7: a key held by another merchant's request answers a merchant-limited
    token 422 with no seq — also once that request was voided. The void releases the key
    for a corrected request of *its* merchant; a stranger deciding under it would be told
    the successor key ``<key>~void-<seq>``, i.e. the other merchant's void seq."""
    env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("m2", "shared"))
    env.client.post("/v1/voids", json={"seq": 1, "reason": "x", "target": "shared"},
                    headers=env.auth("m2", "v2"))  # fmt: skip
    for key, request_id in (("shared", None), (" shared", None), (None, "ｓｈａｒｅｄ ")):
        request = split("M-1") if request_id is None else {**split("M-1"), "request_id": request_id}
        response = env.client.post("/v1/decisions", json=request, headers=env.auth("m1", key))
        assert response.status_code == 422
        assert response.json() == problem(
            "idempotency-conflict",
            "this idempotency key is already used for another request; "
            "send this request under a new key",
        )
    assert env.service.store.tree_size() == 2
    corrected = env.client.post("/v1/decisions", json=split("M-2", cost_price="61.00"),
                                headers=env.auth("m2", "shared"))  # fmt: skip
    assert corrected.status_code == 201
    assert corrected.json()["request_id"] == "shared~void-2"


@pytest.mark.parametrize(
    ("key", "detail"),
    [
        ("a" * 129, "the Idempotency-Key header: must be at most 128 characters (it has 129)"),
        ("1.2E+5", "the Idempotency-Key header: Excel turned a long number into 1.2E+5: "
         "its digits are lost — format the column as text"),
        ("   ", "the Idempotency-Key header is empty"),
    ],
)  # fmt: skip
def test_header_key_is_an_identifier_too(env: Env, key: str, detail: str) -> None:
    """SPEC §11 + §1: the Idempotency-Key header names the request as request_id would,
    so it is held to SPEC §1's identifier rules (at most 128 characters, never Excel's
    scientific notation): 400 idempotency-key-invalid, nothing recorded — on
    /v1/decisions and /v1/voids alike."""
    env.client.post("/v1/decisions", json=split("M-1"), headers=env.auth("all", "k1"))
    for path, body in (
        ("/v1/decisions", split()),
        ("/v1/voids", {"seq": 1, "reason": "x", "target": "k1"}),
    ):
        response = env.client.post(path, json=body, headers=env.auth("all", key))
        assert response.status_code == 400
        assert response.json() == problem("idempotency-key-invalid", detail)
    assert env.service.store.tree_size() == 1


@pytest.mark.parametrize(
    ("body", "detail", "field", "value"),
    [
        (b'{"kind":"subsidy_split","request_id":"\\ud800","input":{}}',
         "request_id: is not valid Unicode text (a lone surrogate U+D800 at character 1) "
         "(got '\\ud800')", "request_id", "'\\ud800'"),
        (b'{"kind":"subsidy_split","request_id":' + b"9" * 30 + b',"input":{}}',
         "request_id: is too large a number (at most 9223372036854775807) "
         "(got an integer of 30 digits)", "request_id", "9" * 30),
    ],
)  # fmt: skip
def test_unencodable_values_are_problem_documents(
    env: Env, body: bytes, detail: str, field: str, value: str
) -> None:
    """SPEC §11: every error is an RFC 9457 problem document — also when the bad value
    is one JSON output cannot carry as given (a lone surrogate, an integer beyond 64
    bits): ``value`` is then its text. Before, the answer was
    Starlette's bare ``500 Internal Server Error`` in text/plain."""
    response = env.client.post("/v1/decisions", content=body, headers=env.auth("all"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == problem("invalid-input", detail, field=field, value=value)


def test_merchant_void_never_takes_over_another_merchants_voided_key(env: Env) -> None:
    """SPEC §11/§7: POST /v1/voids under an Idempotency-Key another merchant held and
    voided is the same hidden 422 — never a void recorded under ``<key>~void-<seq>``."""
    env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("m2", "shared"))
    env.client.post("/v1/voids", json={"seq": 1, "reason": "x", "target": "shared"},
                    headers=env.auth("m2", "v2"))  # fmt: skip
    env.client.post("/v1/decisions", json=split("M-1"), headers=env.auth("m1", "k1"))
    response = env.client.post("/v1/voids", json={"seq": 3, "reason": "x", "target": "k1"},
                               headers=env.auth("m1", "shared"))  # fmt: skip
    assert response.status_code == 422
    assert response.json() == problem(
        "idempotency-conflict",
        "this idempotency key is already used for another request; "
        "send this request under a new key",
    )
    assert env.service.store.tree_size() == 3


def test_merchant_batch_never_takes_over_another_merchants_voided_key(env: Env) -> None:
    """SPEC §11/§8: in a batch, a merchant-limited token's line under a key another
    merchant held (voided or not) is a conflict row with no seq or audit — never decided
    under ``<key>~void-<seq>``; the other lines run."""
    env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("m2", "shared"))
    env.client.post("/v1/voids", json={"seq": 1, "reason": "x", "target": "shared"},
                    headers=env.auth("m2", "v2"))  # fmt: skip
    lines = [
        {**split("M-1"), "request_id": "shared"},
        {**split("M-1"), "request_id": " ｓｈａｒｅｄ"},
        {**split("M-1"), "request_id": "v2"},
        {**split("M-1"), "request_id": "mine"},
    ]
    body = "\n".join(json.dumps(line) for line in lines).encode()
    response = env.client.post("/v1/batches", content=body, headers=env.auth("m1"))
    rows = [json.loads(line) for line in response.text.splitlines()]
    hidden = "this request_id is already used for another request"
    assert rows[:3] == [
        {"line": 1, "status": "conflict", "error": hidden, "request_id": "shared",
         "kind": "subsidy_split"},
        {"line": 2, "status": "conflict", "error": hidden, "request_id": " ｓｈａｒｅｄ",
         "kind": "subsidy_split"},
        {"line": 3, "status": "conflict", "error": hidden, "request_id": "v2",
         "kind": "subsidy_split"},
    ]  # fmt: skip
    assert (rows[3]["request_id"], rows[3]["status"], rows[3]["audit"]["seq"]) == (
        "mine", "approved", 3
    )  # fmt: skip
    assert env.service.store.tree_size() == 3


def test_metrics_labels_never_carry_user_data(env: Env) -> None:
    """SPEC §11: /metrics labels are bounded — route templates, methods the routes
    answer, status codes, installed kinds — never a request id, a path as sent, an
    unknown kind or a merchant: a caller cannot blow up its cardinality or read data
    from it."""
    for n in range(3):
        made_up = {"kind": f"made-up-{n}", "merchant_id": "M-9", "input": {}}
        env.client.post("/v1/decisions", json=made_up, headers=env.auth("all", f"id-{n}"))
        env.client.get(f"/v1/decisions/secret-{n}", headers=env.auth("all"))
        env.client.get(f"/v1/records/{n + 7}/proof", headers=env.auth("all"))
        env.client.request("PURGE", f"/v1/x-{n}")
    env.client.post("/v1/decisions", json=split(), headers=env.auth("all", "ok"))
    env.client.post("/v1/batches", content=json.dumps({**split(), "request_id": "b"}).encode(),
                    headers=env.auth("all"))  # fmt: skip
    text = env.client.get("/metrics").text
    labels = {
        line[: line.rindex("}") + 1]
        for line in text.splitlines()
        if line.startswith("pricecalc_") and "{" in line and "_bucket{" not in line
    }
    assert labels == {
        'pricecalc_decisions_total{kind="subsidy_split",replayed="false",status="approved"}',
        'pricecalc_decisions_created{kind="subsidy_split",replayed="false",status="approved"}',
        'pricecalc_http_requests_total{method="POST",route="/v1/decisions",status="422"}',
        'pricecalc_http_requests_created{method="POST",route="/v1/decisions",status="422"}',
        'pricecalc_http_requests_total{method="POST",route="/v1/decisions",status="201"}',
        'pricecalc_http_requests_created{method="POST",route="/v1/decisions",status="201"}',
        'pricecalc_http_requests_total{method="GET",route="/v1/decisions/{request_id:path}",'
        'status="404"}',
        'pricecalc_http_requests_created{method="GET",route="/v1/decisions/{request_id:path}",'
        'status="404"}',
        'pricecalc_http_requests_total{method="GET",route="/v1/records/{seq}/proof",status="404"}',
        'pricecalc_http_requests_created{method="GET",route="/v1/records/{seq}/proof",'
        'status="404"}',
        'pricecalc_http_requests_total{method="POST",route="/v1/batches",status="200"}',
        'pricecalc_http_requests_created{method="POST",route="/v1/batches",status="200"}',
        'pricecalc_http_request_seconds_count{route="/v1/decisions"}',
        'pricecalc_http_request_seconds_sum{route="/v1/decisions"}',
        'pricecalc_http_request_seconds_created{route="/v1/decisions"}',
        'pricecalc_http_request_seconds_count{route="/v1/decisions/{request_id:path}"}',
        'pricecalc_http_request_seconds_sum{route="/v1/decisions/{request_id:path}"}',
        'pricecalc_http_request_seconds_created{route="/v1/decisions/{request_id:path}"}',
        'pricecalc_http_request_seconds_count{route="/v1/records/{seq}/proof"}',
        'pricecalc_http_request_seconds_sum{route="/v1/records/{seq}/proof"}',
        'pricecalc_http_request_seconds_created{route="/v1/records/{seq}/proof"}',
        'pricecalc_http_request_seconds_count{route="/v1/batches"}',
        'pricecalc_http_request_seconds_sum{route="/v1/batches"}',
        'pricecalc_http_request_seconds_created{route="/v1/batches"}',
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("OPTIONS", "/v1/decisions", None, 405),
        ("PUT", "/v1/voids", b"{}", 405),
        ("POST", "/metrics", b"", 405),
        ("GET", "/v1/records/0/proof", None, 404),
        ("GET", "/v1/records/x/proof", None, 404),
        ("GET", "/v1/records/1/proof?size=%FF", None, 400),
        ("GET", "/v1/consistency?from=-1", None, 400),
        ("POST", "/v1/voids", b"x" * (1024 * 1024 + 1), 413),
        ("POST", "/v1/voids", b'{"seq": 1, "reason": "x"', 400),
        ("POST", "/v1/voids", b'{"seq": 99999999999999999999999, "reason": "x"}', 422),
        ("POST", "/v1/decisions", b'{"kind":"void","input":{"seq":1}}', 400),
        ("POST", "/v1/decisions", b"\xef\xbb\xbf{}", 400),
        ("POST", "/v1/decisions", b'{"kind":"subsidy_split","input":' + b"[" * 40 + b"]" * 40
         + b"}", 422),
    ],
)  # fmt: skip
def test_every_error_is_a_problem_document(
    env: Env, method: str, path: str, body: bytes | None, status: int
) -> None:
    """SPEC §11: every 4xx/5xx answer is ``application/problem+json`` with RFC 9457's
    members (type, title, status, detail) — routing errors, limits, unreadable bodies,
    values out of range — and carries no stack trace or token."""
    response = env.client.request(method, path, content=body, headers=env.auth("all"))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    document = response.json()
    assert document["status"] == status
    assert document["type"] == TYPE_BASE + next(n for n, (s, t) in TYPES.items()
                                                 if t == document["title"])  # fmt: skip
    assert isinstance(document["detail"], str) and document["detail"]
    for secret in (*env.secrets.values(), "Traceback", 'File "'):
        assert secret not in response.text


def test_tokens_file_gone_on_reload_refuses_every_token(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """SPEC §11: the tokens file is who may call. Revoking by removing the file (or a file
    that no longer reads as one) must not leave the old tokens working after SIGHUP —
    as `--workers`, whose restarted workers cannot start without it, already do. Every
    token is 401 until a readable file is back and re-read; the reason goes to stderr
    without a token or digest."""
    url = "/v1/consistency?from=0"
    assert env.client.get(url, headers=env.auth("reader")).status_code == 200
    kept = env.tokens.read_text()
    env.tokens.unlink()
    env.service.reload_tokens()
    for name in env.secrets:
        assert env.client.get(url, headers=env.auth(name)).status_code == 401
    env.tokens.write_text('{"format": "pricecalc-tokens-1", "tokens": 1}')
    env.service.reload_tokens()
    assert env.client.get(url, headers=env.auth("reader")).status_code == 401
    env.tokens.write_text(kept)
    env.service.reload_tokens()
    assert env.client.get(url, headers=env.auth("reader")).status_code == 200
    err = capsys.readouterr().err
    assert err == (
        f"pricecalc serve: tokens not reloaded, every token refused until they are: "
        f"there is no tokens file at {env.tokens} (make one with `pricecalc token add`)\n"
        f"pricecalc serve: tokens not reloaded, every token refused until they are: "
        f"{env.tokens}: its tokens are not a list\n"
    )
    for secret in env.secrets.values():
        assert secret not in err


@pytest.mark.parametrize(("target", "status"), [("k2", "approved"), ("wrong", "rejected")])
def test_a_void_concerns_the_merchant_of_what_it_withdraws(
    env: Env, target: str, status: str
) -> None:
    """SPEC §11: a merchant-limited token sees its merchant's records "and the voids of
    them". A void labelled with another merchant_id (as `pricecalc batch --merchant M-1`
    of a voids file would record it) still concerns the merchant of the record it names:
    its result carries that record's request_id and kind, so M-1 must get 404 and M-2
    must see it — by key and by proof."""
    env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("all", "k2"))
    void = Envelope.parse({"kind": "void", "request_id": "cli-void", "merchant_id": "M-1",
                           "input": {"seq": 1, "reason": "x", "target": target}})  # fmt: skip
    decided = env.service.calculator("clerk").decide(void)
    assert (decided.status, decided.result["voided_request_id"]) == (status, "k2")
    assert env.client.get("/v1/decisions/cli-void", headers=env.auth("m1")).json() == problem(
        "not-found", "no decision is recorded under this key"
    )
    assert env.client.get("/v1/records/2/proof", headers=env.auth("m1")).status_code == 404
    assert env.client.get("/v1/decisions/cli-void", headers=env.auth("m2")).status_code == 200
    assert env.client.get("/v1/records/2/proof", headers=env.auth("m2")).status_code == 200


def test_a_digest_from_the_tokens_file_is_no_token(env: Env) -> None:
    """SPEC §11: the tokens file holds SHA-256 digests only, so whoever reads it cannot
    call: a digest (or its upper-case spelling) as the bearer is 401, and no response or
    log line ever shows a token or a digest."""
    entries = json.loads(env.tokens.read_text())["tokens"]
    digests = [entry["sha256"] for entry in entries]
    for digest in (*digests, digests[0].upper()):
        response = env.client.get("/v1/consistency?from=0",
                                  headers={"Authorization": f"Bearer {digest}"})  # fmt: skip
        assert response.status_code == 401
    env.client.post("/v1/decisions", json=split(), headers=env.auth("all", "k"))
    env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("m1", "k"))
    seen = env.log.getvalue() + env.client.get("/metrics").text
    for secret in (*env.secrets.values(), *digests):
        assert secret not in seen


def test_merchant_batch_lines_with_unreadable_keys_are_invalid_rows(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """SPEC §8/§1: a merchant-limited token's batch line whose request_id is not a valid
    identifier (a lone surrogate, U+0000, 1e400) is an invalid row naming it, and the rest
    of the batch runs — the key is never looked up in the store (a lone surrogate there
    made the file store distrust and rebuild its index, then stop the batch)."""
    lines = [
        b'{"kind":"subsidy_split","request_id":"\\ud800","input":{}}',
        b'{"kind":"subsidy_split","request_id":"\\u0000","input":{}}',
        b'{"kind":"subsidy_split","request_id":1e400,"input":{}}',
        json.dumps({**split("M-1"), "request_id": "fine"}).encode(),
    ]
    response = env.client.post("/v1/batches", content=b"\n".join(lines), headers=env.auth("m1"))
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert rows[:3] == [
        {"line": 1, "status": "invalid", "kind": "subsidy_split", "error": "request_id: is "
         "not valid Unicode text (a lone surrogate U+D800 at character 1) (got '\\ud800')"},
        {"line": 2, "status": "invalid", "kind": "subsidy_split",
         "error": "request_id: must not contain the character U+0000 (got '\\x00')"},
        {"line": 3, "status": "invalid", "kind": "subsidy_split", "error": "request_id: must "
         "be text or a whole number (a JSON integer) (got 1E+400)"},
    ]  # fmt: skip
    assert (rows[3]["request_id"], rows[3]["status"]) == ("fine", "approved")
    assert capsys.readouterr().err == ""


def test_merchant_reads_of_respelled_keys_are_404_alike(env: Env) -> None:
    """SPEC §11/§1: another merchant's key respelled (full-width, surrounding spaces) is
    the same key: 404 for M-1 with the very body of an absent key, 200 for M-2."""
    env.client.post("/v1/decisions", json=split("M-2"), headers=env.auth("all", "k2"))
    absent = env.client.get("/v1/decisions/never", headers=env.auth("m1"))
    for path in ("k2", "%EF%BD%8B%EF%BC%92", "%20k2%20"):
        other = env.client.get(f"/v1/decisions/{path}", headers=env.auth("m1"))
        assert (other.status_code, other.content, other.headers["content-type"]) == (
            404, absent.content, "application/problem+json"
        )  # fmt: skip
        assert env.client.get(f"/v1/decisions/{path}", headers=env.auth("m2")).status_code == 200


def _claim(merchant: str) -> dict[str, object]:
    """SPEC §3's worked example (refund 42.00) for order O-2001, naming ``merchant``."""
    return {
        "kind": "price_protection", "merchant_id": merchant,
        "input": {
            "order_id": "O-2001", "paid_at": "2026-11-11T10:00",
            "claimed_at": "2026-11-12T09:00", "order_status": "paid",
            "event": {"start": "2026-11-10T00:00", "end": "2026-11-12T23:59:59"},
            "lines": [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00"}],
            "offers": [
                {"type": "coupon", "amount": "10.00", "threshold": "100.00"},
                {"type": "direct_drop", "sku": "A", "unit_price": "90.00",
                 "at": "2026-11-11T20:00"},
                {"type": "flash_sale", "sku": "A", "unit_price": "79.00",
                 "start": "2026-11-11T12:00", "end": "2026-11-11T14:00"},
            ],
        },
    }  # fmt: skip


def test_merchant_token_never_reads_another_merchants_order_history(env: Env) -> None:
    """SPEC §11: a merchant never learns what others were decided. The once-only rules
    (SPEC §3–§5) read every decision about an order, whoever it was for, and show what
    they counted (``already_refunded_recorded``: M-2's 42.00 refund). A merchant-limited
    token deciding about an order that has records of another merchant is refused 403
    with no amount, seq or merchant, nothing recorded — on /v1/decisions and in a batch;
    the order's own merchant still decides (a second claim pays 0)."""
    env.client.post("/v1/decisions", json=_claim("M-2"), headers=env.auth("m2", "pp-2"))
    refused = "order_id 'O-2001' has decisions recorded for another merchant: the token " \
        "'m1' decides only orders of merchant_id 'M-1'"  # fmt: skip
    response = env.client.post("/v1/decisions", json=_claim("M-1"), headers=env.auth("m1", "pp-1"))
    assert response.status_code == 403
    assert response.json() == problem("forbidden", refused)
    batch = env.client.post(
        "/v1/batches",
        headers=env.auth("m1"),
        content=json.dumps({**_claim("M-1"), "request_id": "b"}).encode(),
    )
    assert [json.loads(line) for line in batch.text.splitlines()] == [
        {"line": 1, "status": "invalid", "error": refused, "request_id": "b",
         "kind": "price_protection"}
    ]  # fmt: skip
    assert env.service.store.tree_size() == 1
    again = env.client.post("/v1/decisions", json=_claim("M-2"), headers=env.auth("m2", "pp-3"))
    assert (again.status_code, again.json()["result"]["refund_total"]) == (201, "0.00")
    unlimited = env.client.post("/v1/decisions", json=_claim("M-1"),
                                headers=env.auth("all", "pp-4"))  # fmt: skip
    assert unlimited.status_code == 201


# -- a real `pricecalc serve` process -------------------------------------------------------
@pytest.mark.slow
def test_one_key_across_two_workers_is_one_record(tmp_path: Path) -> None:
    """SPEC §11/§7: with --workers 2 the in-flight set is each process's own, so the
    store must hold the line: many clients on fresh connections sending one key — spelt
    as the header, as the body's request_id, and full-width (§1 NFKC) — get one 201 and
    otherwise a 200 replay or a 409; the store holds the key once and verifies."""
    server = Server(tmp_path, "--workers", "2")
    answers: list[int] = []
    barrier = threading.Barrier(16)

    def send(n: int) -> None:
        headers = server.headers("k-1" if n % 3 == 0 else None)
        request = split() if n % 3 == 0 else {**split(), "request_id": ["k-1", "ｋ-１"][n % 3 - 1]}
        barrier.wait()
        with httpx.Client(timeout=60) as client:
            response = client.post(f"{server.url}/v1/decisions", json=request, headers=headers)
        answers.append(response.status_code)

    try:
        threads = [threading.Thread(target=send, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        assert server.stop() == 0
    assert answers.count(201) == 1
    assert set(answers) <= {200, 201, 409}
    assert keys_in_store(server.store) == ["k-1"]
    assert verify(server.store).returncode == 0


@pytest.mark.slow
def test_sighup_with_workers_forgets_a_removed_token(tmp_path: Path) -> None:
    """SPEC §11: `token remove` then SIGHUP to a server run with --workers 2: the removed
    token is refused (401) by every worker, the others still work, and SIGTERM exits 0."""
    server = Server(tmp_path, "--workers", "2")
    try:
        gone = tokens_file.add(server.tokens, "gone", "op-gone", ["read"])
        server.process.send_signal(signal.SIGHUP)
        url = f"{server.url}/v1/consistency?from=0"
        deadline = time.monotonic() + 30
        while not all(
            httpx.get(url, headers=server.headers(secret=gone), timeout=10).status_code == 200
            for _ in range(8)
        ):
            assert time.monotonic() < deadline, "the new token was not loaded"
            time.sleep(0.2)
        tokens_file.remove(server.tokens, "gone")
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while not all(
            httpx.get(url, headers=server.headers(secret=gone), timeout=10).status_code == 401
            for _ in range(8)
        ):
            assert time.monotonic() < deadline, "the removed token is still accepted"
            time.sleep(0.2)
        assert server.process.poll() is None
        assert server.decide("after").status_code == 201
    finally:
        assert server.stop() == 0
    log = server.log.read_text(encoding="utf-8")
    assert gone not in log and server.secret not in log


@pytest.mark.slow
def test_batch_client_gone_mid_stream_then_retry(tmp_path: Path) -> None:
    """SPEC §11/§8: a client that hangs up after the first rows of a /v1/batches stream
    loses nothing and doubles nothing: every key is recorded once, the chain verifies,
    and the retried batch answers every line as a replay of what was recorded (the rows
    seen before the hang-up with the same seq)."""
    server = Server(tmp_path)
    count = 1000
    body = "".join(
        json.dumps({**split(), "request_id": f"s-{n}"}) + "\n" for n in range(count)
    ).encode()
    seen: dict[str, int] = {}
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            head = (
                f"POST /v1/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.secret}"
                f"\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            sock.sendall(head + body)
            data = b""
            while data.count(b"\n{") < 5:
                data += sock.recv(65536)
        for line in data.split(b"\r\n\r\n", 1)[1].splitlines():
            if line.startswith(b"{") and line.endswith(b"}"):
                row = json.loads(line)
                seen[row["request_id"]] = row["audit"]["seq"]
        assert seen
        deadline = time.monotonic() + 60
        while len(keys_in_store(server.store)) < count:  # the rest still goes through
            assert time.monotonic() < deadline, "the batch stopped when its client left"
            time.sleep(0.2)
        retry = httpx.post(f"{server.url}/v1/batches", content=body, headers=server.headers(),
                           timeout=120)  # fmt: skip
        rows = [json.loads(line) for line in retry.text.splitlines()]
    finally:
        assert server.stop() == 0
    assert [row["request_id"] for row in rows] == [f"s-{n}" for n in range(count)]
    assert all(row["replayed"] is True for row in rows)
    assert {k: row["audit"]["seq"] for row in rows if (k := row["request_id"]) in seen} == seen
    stored = keys_in_store(server.store)
    assert sorted(stored) == sorted(f"s-{n}" for n in range(count))
    assert verify(server.store).returncode == 0


@pytest.mark.slow
def test_batch_and_single_requests_race_on_keys(tmp_path: Path) -> None:
    """SPEC §7: a /v1/batches body and single POST /v1/decisions with the same keys at
    once (batches hold no in-flight keys) still record each key once."""
    server = Server(tmp_path)
    count = 300
    body = "".join(
        json.dumps({**split(), "request_id": f"r-{n}"}) + "\n" for n in range(count)
    ).encode()
    singles: list[int] = []

    def single(start: int) -> None:
        with httpx.Client(timeout=60) as client:
            for n in range(start, count, 4):
                response = client.post(f"{server.url}/v1/decisions", json=split(),
                                       headers=server.headers(f"r-{n}"))  # fmt: skip
                singles.append(response.status_code)

    try:
        threads = [threading.Thread(target=single, args=(s,)) for s in range(4)]
        for thread in threads:
            thread.start()
        batch = httpx.post(f"{server.url}/v1/batches", content=body, headers=server.headers(),
                           timeout=120)  # fmt: skip
        for thread in threads:
            thread.join()
    finally:
        assert server.stop() == 0
    rows = [json.loads(line) for line in batch.text.splitlines()]
    assert [row["status"] for row in rows] == ["approved"] * count
    assert set(singles) <= {200, 201, 409}
    stored = keys_in_store(server.store)
    assert sorted(stored) == sorted(f"r-{n}" for n in range(count))
    assert verify(server.store).returncode == 0
