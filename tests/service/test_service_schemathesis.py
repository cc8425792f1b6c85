"""schemathesis against /openapi.json (SPEC §11, issue 23): requests generated from the
document — valid and not — never get a 5xx, and every response conforms to it (status
code documented, content type, body valid against its schema). Examples are bounded so
the run stays well under a minute."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service_support import Env

from pricecalc.service.app import create_app

# A /v1/batches body is JSON Lines text: sent as the text schemathesis makes.
schemathesis.serializer.alias("application/jsonl", "text/plain")

# schemathesis' pytest integration loads the schema when the module is collected
# (its lazy fixture loader does not run on this pytest), so the service under test is
# made here, in a folder of its own removed at exit.
_FOLDER = Path(tempfile.mkdtemp(prefix="pricecalc-schemathesis-"))
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)
ENV = Env(_FOLDER)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(ENV.service, close=False))


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms(case: schemathesis.Case) -> None:
    """No 5xx; every response as documented (schemathesis' checks)."""
    case.call_and_validate(
        headers={**ENV.auth("all"), **(case.headers or {})},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
