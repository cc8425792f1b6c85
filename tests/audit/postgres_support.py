"""A real PostgreSQL for the audit tests, and the workers the multi-process tests spawn.

Where the server comes from, in order:

1. ``PRICECALC_TEST_PG`` — a superuser URL (default
   ``postgresql://postgres@127.0.0.1:5432/postgres``, the local server of a developer box
   or CI runner);
2. otherwise a throwaway cluster made with ``initdb`` and started with ``pg_ctl`` in a
   temporary directory on a free port (needs the PostgreSQL server binaries; as root they
   run as the ``postgres`` user); stopped and deleted when the session ends;
3. otherwise the PostgreSQL tests are skipped, saying how to enable them — except in CI
   (``CI=true``), where they fail loudly instead, saying what to install or start.

Each session gets its own database (dropped at the end) and each test store its own
schema, initialised with :func:`audit.init_store`, so tests never see each other's records.
Stores are opened as the application role ``pricecalc_app``, as in production. The tests
need PostgreSQL 14 or later (``DROP DATABASE … WITH (FORCE)``, ``pg_terminate_backend``
with a timeout); the store itself works from 11.

Imported by name (pytest's ``pythonpath`` in pyproject.toml), also by the spawned workers,
which inherit the parent's ``sys.path``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import attrs
import psycopg
import pytest
from needs_support import missing
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

import audit
from audit.postgres import APP_ROLE
from audit.protocol import Entry
from audit.records import record_body
from audit.stamps import epoch_micros, parse_timestamp

ENV = "PRICECALC_TEST_PG"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SKIP_MESSAGE = (
    "no PostgreSQL for the audit store tests: nothing answered at {url} ({why}), and no "
    "throwaway cluster could be started ({throwaway}). To run them, point {env} at a "
    "superuser URL of a server (e.g. {env}=postgresql://postgres@127.0.0.1:5432/postgres), "
    "start the local server (pg_ctlcluster <version> main start), or install the "
    "PostgreSQL server binaries (initdb, pg_ctl) so that a throwaway cluster can be made"
)


# -- URLs ----------------------------------------------------------------------------------


def make_url(base: str, **changes: Any) -> str:
    """``base`` (URL or key=value string) with some parameters changed, as a URL.

    ``options`` given here is appended to the base's options.
    """
    params: dict[str, Any] = dict(conninfo_to_dict(base))
    if "options" in changes and params.get("options"):
        changes["options"] = f"{params['options']} {changes['options']}"
    params.update({k: v for k, v in changes.items() if v is not None})
    user = quote(str(params.pop("user", "")), safe="")
    password = params.pop("password", None)
    host = quote(str(params.pop("host", "")), safe="")
    port = params.pop("port", None)
    dbname = quote(str(params.pop("dbname", "")), safe="")
    auth = user + (f":{quote(str(password), safe='')}" if password else "")
    netloc = (f"{auth}@" if auth else "") + host + (f":{port}" if port else "")
    query = urlencode({k: str(v) for k, v in params.items()}, quote_via=quote)
    return f"postgresql://{netloc}/{dbname}" + (f"?{query}" if query else "")


def _probe(url: str) -> str | None:
    """None when ``url`` answers as a superuser, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            row = conn.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not (row and row[0]):
        return "connected, but not as a superuser (the tests create databases and roles)"
    return None


# -- a throwaway cluster -------------------------------------------------------------------


def _server_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class Throwaway:
    """A private cluster in a temporary directory (``stop()`` removes it)."""

    directory: Path
    pg_ctl: str
    user: str | None
    url: str

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.pg_ctl, *args], user=self.user, capture_output=True, text=True, check=False
        )

    def stop(self) -> None:
        self._run("stop", "-D", str(self.directory / "data"), "-m", "immediate", "-w")
        shutil.rmtree(self.directory, ignore_errors=True)


def start_throwaway() -> Throwaway | str:
    """Start a throwaway cluster; return it, or why it could not be started."""
    initdb, pg_ctl = _server_binary("initdb"), _server_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        return "initdb/pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin"
    user: str | None = None
    directory = Path(tempfile.mkdtemp(prefix="pricecalc-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(directory, ignore_errors=True)
            return "running as root and there is no 'postgres' user to run initdb as"
        user = "postgres"
        os.chown(directory, account.pw_uid, account.pw_gid)
    data, port = directory / "data", _free_port()
    init = subprocess.run(
        [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
         "--locale=C", "--no-sync"],
        user=user, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if init.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        return f"initdb failed: {init.stderr.strip()[-300:]}"
    # fsync=off: a test cluster need not survive a power cut (commits still wait for WAL).
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {directory} -c fsync=off -c max_connections=60"
    )
    cluster = Throwaway(directory, pg_ctl, user, f"postgresql://postgres@127.0.0.1:{port}/postgres")
    start = cluster._run("start", "-D", str(data), "-l", str(directory / "log"), "-w",
                         "-t", "60", "-o", options)  # fmt: skip
    if start.returncode != 0:
        log = directory / "log"
        tail = log.read_text(errors="replace")[-300:] if log.exists() else start.stderr
        cluster.stop()
        return f"pg_ctl start failed: {tail.strip()}"
    return cluster


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A superuser URL of a running server (see the module docstring), or a skip."""
    url = os.environ.get(ENV) or DEFAULT_URL
    why = _probe(url)
    if why is None:
        yield url
        return
    cluster = start_throwaway()
    if isinstance(cluster, str):
        message = SKIP_MESSAGE.format(url=url, why=why, throwaway=cluster, env=ENV)
        missing(
            message + "; on Debian: apt-get install postgresql, then "
            "pg_ctlcluster <version> main start"
        )
    try:
        late = _probe(cluster.url)
        if late is not None:
            pytest.fail(f"the throwaway PostgreSQL cluster does not answer: {late}")
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_database(pg_server: str) -> Iterator[str]:
    """A fresh database for this test session (superuser URL); dropped afterwards."""
    name = f"pricecalc_audit_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    try:
        yield make_url(pg_server, dbname=name)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    psycopg.sql.Identifier(name)
                )
            )


@attrs.frozen
class PgStore:
    """One initialised store: its schema, a superuser URL and the application role's URL."""

    schema: str
    admin_url: str
    app_url: str

    def admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A superuser connection with the store's schema on its search_path."""
        return psycopg.connect(self.admin_url, autocommit=True)

    def app(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A connection as the application role (what the store itself uses)."""
        return psycopg.connect(self.app_url, autocommit=True)


_APP_LOGIN: dict[str, bool] = {}


def _app_url(admin_url: str) -> str:
    """The URL as ``pricecalc_app``: a real login where the server lets it in without a
    password (trust, as on test servers), else the superuser session with ``role`` set —
    the same privileges are checked either way."""
    direct = make_url(admin_url, user=APP_ROLE, password="")
    server = make_url(admin_url, options="", dbname="")
    if server not in _APP_LOGIN:
        try:
            psycopg.connect(direct, connect_timeout=3).close()
            _APP_LOGIN[server] = True
        except psycopg.OperationalError:
            _APP_LOGIN[server] = False
    if _APP_LOGIN[server]:
        return direct
    return make_url(admin_url, options=f"-c role={APP_ROLE}")


@pytest.fixture
def pg_store(pg_database: str) -> Iterator[Callable[..., PgStore]]:
    """``pg_store(name="store", init=True)``: a store in a schema of its own for this test.

    The same name within one test gives the same store. ``init=False`` leaves the schema
    empty (no audit tables).
    """
    made: dict[str, PgStore] = {}

    def make(name: str = "store", *, init: bool = True) -> PgStore:
        if name in made:
            return made[name]
        schema = f"t_{secrets.token_hex(4)}_{name}".lower()[:60]
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(schema)))
        admin_url = make_url(pg_database, options=f"-c search_path={schema}")
        if init:
            audit.init_store(admin_url)
        made[name] = PgStore(schema, admin_url, _app_url(admin_url))
        return made[name]

    yield make
    if made:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            for store in made.values():
                conn.execute(
                    psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(
                        psycopg.sql.Identifier(store.schema)
                    )
                )


@pytest.fixture
def pg_store_url(pg_store: Callable[..., PgStore]) -> Callable[[str], str]:
    """``pg_store_url(name)``: the application role's URL of a fresh store (contract suite)."""
    return lambda name: pg_store(name).app_url


# -- workers for the multi-process tests (module-level so that spawned processes find them) --


def append_worker(url: str, worker: int, count: int, start: Any) -> int:
    """Wait for ``start`` (a barrier), then append ``count`` records one durable append at
    a time; return how many were appended."""
    with audit.open_store(url) as store:
        start.wait()
        for i in range(count):
            store.append(Entry(payload={"worker": worker, "i": i}, key=f"w{worker}-{i}"))
    return count


def claim_worker(url: str, worker: int, tags: list[str], start: Any) -> list[str]:
    """For each tag: wait at ``start`` with the other worker, then pay the claim once —
    ``if not tx.find(tag): tx.append(...)`` under the store's transaction. Returns the
    tags this worker paid."""
    paid: list[str] = []
    with audit.open_store(url) as store:
        for tag in tags:
            start.wait()
            with store.transaction() as tx:
                if not tx.find(tag):
                    tx.append(Entry(payload={"claim": tag, "worker": worker}, tags=(tag,)))
                    paid.append(tag)
    return paid


def backends_of(conn: psycopg.Connection[Any], application_name: str) -> list[int]:
    """The backend pids of the sessions with ``application_name`` (other than ``conn``)."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
        (application_name,),
    ).fetchall()
    return [int(row[0]) for row in rows]


def count_rows(store: PgStore) -> int:
    with store.admin() as conn:
        row = conn.execute("SELECT count(*) FROM pricecalc_audit_record").fetchone()
    assert row is not None
    return int(row[0])


# -- the attacker: only the application login, no HMAC key ----------------------------------

FORGED_AT = "2026-11-12T02:00:00.000000Z"


def forge(
    store: PgStore,
    payload: dict[str, Any],
    *,
    key: str | None = None,
    tags: tuple[str, ...] = (),
    recompute: bool = False,
) -> int:
    """Insert a record at the head as ``pricecalc_app`` would, past the store's code (the
    role may INSERT; the triggers only demand the next seq and the head's hash as
    prev_hash). ``recompute``: give it the plain SHA-256 of its body — what a forger
    without the HMAC key can compute; otherwise a hash that does not match. Returns its
    seq."""
    with store.app() as conn:
        head = conn.execute(
            "SELECT seq, hash FROM pricecalc_audit_record ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        seq, prev = (int(head[0]) + 1, str(head[1])) if head else (1, audit.GENESIS_HASH)
        body = record_body(
            seq=seq, id="forged", recorded_at=FORGED_AT, key=key, tags=tags,
            payload=payload, prev_hash=prev,
        )  # fmt: skip
        digest = hashlib.sha256(body).hexdigest() if recompute else "f" * 64
        conn.execute(
            "INSERT INTO pricecalc_audit_record (seq, id, recorded_at, recorded_us, key, "
            "tags, payload, prev_hash, hash) VALUES (%s, 'forged', %s, %s, %s, %s, %s, %s, %s)",
            (seq, FORGED_AT, epoch_micros(parse_timestamp(FORGED_AT)), key, list(tags),
             Jsonb(payload), prev, digest),
        )  # fmt: skip
    return seq
