"""Shared pieces of the service tests (SPEC §11): a tokens file with one token of each
kind, a Service on a fresh file store, and Starlette's TestClient over it."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

with warnings.catch_warnings():  # starlette announces httpx2; httpx is what it runs on
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from pricecalc.service import tokens as tokens_file
from pricecalc.service.app import Service, Settings, create_app

SPLIT_INPUT = {
    "list_price": "100.00",
    "registration_price": "90.00",
    "subsidy_price": "80.00",
    "floor_price": "70.00",
    "cost_price": "60.00",
}


def split(merchant: str | None = "M-1", **changes: Any) -> dict[str, Any]:
    """A SPEC §2 subsidy_split request (approved), naming ``merchant``."""
    request: dict[str, Any] = {"kind": "subsidy_split", "input": {**SPLIT_INPUT, **changes}}
    if merchant is not None:
        request["merchant_id"] = merchant
    return request


class Env:
    """A service under test: its client, tokens (name → bearer headers) and log."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.path = tmp_path
        self.tokens = tmp_path / "tokens.json"
        self.secrets: dict[str, str] = {}
        for name, rights, merchant in (
            ("all", ["decide", "read", "void"], None),
            ("reader", ["read"], None),
            ("m1", ["decide", "read", "void"], "M-1"),
            ("m2", ["decide", "read", "void"], "M-2"),
        ):
            self.secrets[name] = tokens_file.add(self.tokens, name, f"op-{name}", rights, merchant)
        self.log = io.StringIO()
        self.service = Service(
            Settings(audit=str(tmp_path / "audit.jsonl"), tokens=str(self.tokens), **settings),
            log_stream=self.log,
        )
        self.client = TestClient(create_app(self.service), raise_server_exceptions=False)

    def auth(self, name: str, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.secrets[name]}"}
        if key is not None:
            headers["Idempotency-Key"] = f'"{key}"'
        return headers
