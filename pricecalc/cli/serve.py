"""``pricecalc serve`` and ``pricecalc token add/remove``: the decision service (SPEC §11).

The service uses the same audit store, policy and plugins as every other command (the
global options); docs/service.md shows how to start it, make tokens and call it.
"""

from __future__ import annotations

import click

from pricecalc.cli.app import App, store_sentence
from pricecalc.cli.main import cli
from pricecalc.errors import PricecalcError
from pricecalc.i18n import _
from pricecalc.messages import describe
from pricecalc.service import tokens as tokens_file
from pricecalc.service.app import MAX_BATCH, Service, Settings


@cli.command()
@click.option(
    "--tokens",
    "tokens",
    required=True,
    metavar="FILE",
    help="The tokens file (`pricecalc token add`); there is no open mode.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="N",
    help="Server processes sharing the one store.",
)
@click.option(
    "--signing-key",
    metavar="FILE",
    envvar="PRICECALC_AUDIT_SIGNING_KEY",
    help="Sign /v1/checkpoint and proofs with this key (`audit keygen`).",
)
@click.option("--certfile", metavar="PEM", help="Serve HTTPS with this certificate.")
@click.option("--keyfile", metavar="PEM", help="The certificate's private key.")
@click.option(
    "--max-batch-bytes",
    default=MAX_BATCH,
    show_default=True,
    type=click.IntRange(min=1),
    help="The largest /v1/batches body.",
)
@click.option("--access-log", metavar="FILE",
              help="Append the JSON Lines access log here (default: standard error; "
              "- for none).")  # fmt: skip
@click.pass_obj
def serve(
    app: App,
    tokens: str,
    host: str,
    port: int,
    workers: int,
    signing_key: str | None,
    certfile: str | None,
    keyfile: str | None,
    max_batch_bytes: int,
    access_log: str | None,
) -> None:
    """Answer SPEC §8 requests over HTTP (SPEC §11) until SIGTERM.

    Every call carries a bearer token from --tokens; every decision is recorded in the
    audit store before its response. Without --certfile, serve plain HTTP on
    127.0.0.1 behind a reverse proxy that terminates TLS (docs/service.md).

    Example:

    \b
        pricecalc token add checkout --tokens tokens.json --operator checkout-svc \\
            --rights decide,read
        pricecalc --audit /srv/pricecalc/audit.jsonl serve --tokens tokens.json --port 8080
    """
    from pricecalc.service.server import serve as run

    if (certfile is None) != (keyfile is None):
        raise click.UsageError(_("give --certfile and --keyfile together"))
    settings = Settings(
        audit=app.audit,
        tokens=tokens,
        policy_file=app.policy_file,
        disabled=app.disabled,
        signing_key=signing_key,
        max_batch=max_batch_bytes,
        access_log=access_log,
    )
    try:  # everything checked once here, before any worker starts
        Service(settings).close()
    except PricecalcError as exc:
        raise click.ClickException(describe(exc)) from exc
    except OSError as exc:
        raise click.ClickException(store_sentence(app.audit, exc)) from exc
    run(settings, host=host, port=port, workers=workers, certfile=certfile, keyfile=keyfile)


@cli.group()
def token() -> None:
    """Make and withdraw the service's bearer tokens (SPEC §11).

    Example:

    \b
        pricecalc token add checkout --tokens tokens.json --operator checkout-svc \\
            --rights decide,read
        pricecalc token remove checkout --tokens tokens.json
    """


@token.command("add")
@click.argument("name")
@click.option("--tokens", "path", required=True, metavar="FILE", help="The tokens file.")
@click.option("--operator", required=True, help="The operator recorded on its decisions.")
@click.option("--rights", required=True, metavar="LIST",
              help="Comma-separated: decide, read, void.")  # fmt: skip
@click.option(
    "--merchant",
    metavar="MERCHANT_ID",
    help="Limit the token to this merchant's requests and records.",
)
def token_add(name: str, path: str, operator: str, rights: str, merchant: str | None) -> None:
    """Add a token to FILE and print it once (only its SHA-256 digest is kept).

    Example:

    \b
        pricecalc token add shop-1001 --tokens tokens.json --operator shop-1001 \\
            --rights decide,read --merchant M-1001
    """
    wanted = [r.strip() for r in rights.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in tokens_file.RIGHTS]
    if unknown or not wanted:
        raise click.BadParameter(
            _("rights are some of {rights} (got {given!r})").format(
                rights=", ".join(tokens_file.RIGHTS), given=rights
            ),
            param_hint="--rights",
        )
    for what, value in (("--operator", operator), ("--merchant", merchant)):
        if value is not None and (not value.strip() or len(value) > 128):
            raise click.BadParameter(_("must be 1 to 128 characters"), param_hint=what)
    try:
        secret = tokens_file.add(path, name, operator, wanted, merchant)
    except PricecalcError as exc:
        raise click.ClickException(describe(exc)) from exc
    click.echo(secret)
    click.echo(
        _(
            "token {name!r} added to {path}; it is shown only now: keep it secret "
            "(send SIGHUP to a running server to load it)"
        ).format(name=name, path=path),
        err=True,
    )


@token.command("remove")
@click.argument("name")
@click.option("--tokens", "path", required=True, metavar="FILE", help="The tokens file.")
def token_remove(name: str, path: str) -> None:
    """Remove the token NAME from FILE (a running server forgets it on SIGHUP).

    Example:

    \b
        pricecalc token remove shop-1001 --tokens tokens.json
    """
    try:
        tokens_file.remove(path, name)
    except PricecalcError as exc:
        raise click.ClickException(describe(exc)) from exc
    click.echo(_("token {name!r} removed from {path}").format(name=name, path=path), err=True)
