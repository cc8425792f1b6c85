"""Attacks on the decision service, each pinned by the hole it found (SPEC §11, §7, §8;
issue 23): a merchant-limited token learning or touching another merchant's records, a
key the header smuggles past SPEC §1, and answers that were not problem documents."""

from __future__ import annotations

import json

import pytest
from service_support import Env, split

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
