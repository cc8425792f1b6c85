"""``pricecalc audit keygen / checkpoint / prove / verify-proof``: signed checkpoints and
the proofs a merchant checks alone (SPEC §9, docs/audit.md)."""

from __future__ import annotations

import json
import sys

import click

from audit.merkle import ProofError
from audit.note import (
    NoteError,
    SigningKey,
    check_key_name,
    load_verifier_key,
    read_signing_key,
    sign_checkpoint,
    write_signing_key,
)
from audit.proofdoc import (
    CheckpointProblem,
    consistency_document,
    inclusion_document,
    load_document,
    published_checkpoint,
    verify_document,
)
from audit.protocol import AuditStore
from pricecalc.cli.app import App, hmac_key
from pricecalc.cli.audit import audit_group
from pricecalc.cli.options import read_text_file
from pricecalc.files.writing import write_file

SIGNING_KEY_ENV = "PRICECALC_AUDIT_SIGNING_KEY"


def _write(output: str | None, text: str) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    write_file(output, text)


def load_signing_key(key_file: str) -> SigningKey:
    """The signing key in ``key_file`` (``--signing-key`` or $PRICECALC_AUDIT_SIGNING_KEY)."""
    try:
        return read_signing_key(key_file)
    except FileNotFoundError as exc:
        raise click.BadParameter(
            f"no signing key at {key_file}", param_hint="--signing-key"
        ) from exc
    except NoteError as exc:
        raise click.ClickException(str(exc)) from exc


def sign_store(app: App, store: AuditStore, key: SigningKey) -> tuple[str, int]:
    """Verify the whole store, then sign its tree: the note and the tree size it names.
    Only a root the log itself gives is signed."""
    with app.store_errors():
        report = store.verify()
        if not report.ok or report.root is None:
            where = f"record {report.bad_seq}" if report.bad_seq is not None else "the store"
            raise click.ClickException(
                f"not signing: the audit store {app.audit} failed verification at {where}: "
                f"{report.problem}"
            )
        if store.root(report.count) != report.root:
            raise click.ClickException("not signing: the store's tree does not match its log")
    return sign_checkpoint(key, report.count, report.root), report.count


@audit_group.command()
@click.argument("name")
@click.option(
    "--output", "-o", required=True, type=click.Path(dir_okay=False), metavar="KEYFILE",
    help="Where to write the new signing key (created mode 0600, never overwritten).",
)  # fmt: skip
def keygen(name: str, output: str) -> None:
    """Make a new Ed25519 signing key for the log NAME; print its verifier key.

    NAME is the log's origin (e.g. finance.example/chaozhigou-2026): no '+', no spaces.
    Keep KEYFILE away from the store and its machines; publish the verifier key.

    Example:

    \b
        pricecalc audit keygen finance.example/chaozhigou-2026 --output ~/keys/audit.key
    """
    try:
        check_key_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from exc
    key = SigningKey.generate(name)
    try:
        write_signing_key(output, key)
    except FileExistsError as exc:
        raise click.ClickException(
            f"{output} already exists; a signing key is never overwritten"
        ) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(str(key.verifier))


@audit_group.command()
@click.option(
    "--signing-key", "key_file", envvar=SIGNING_KEY_ENV, metavar="KEYFILE",
    type=click.Path(dir_okay=False), help=f"The log's signing key (or ${SIGNING_KEY_ENV}).",
)  # fmt: skip
@click.option("--output", "-o", metavar="FILE", help="Write the checkpoint to FILE.")
@click.pass_obj
def checkpoint(app: App, key_file: str | None, output: str | None) -> None:
    """Verify the store, then print its signed checkpoint (C2SP tlog-checkpoint).

    The whole chain and tree are checked first: only a root the log itself gives is
    signed. Not to be confused with PRICECALC_AUDIT_KEY, the store's HMAC secret.

    Example:

    \b
        pricecalc audit checkpoint --signing-key ~/keys/audit.key --output cp-2026-11-11.txt
    """
    if key_file is None:
        raise click.UsageError(f"name the signing key with --signing-key or ${SIGNING_KEY_ENV}")
    key = load_signing_key(key_file)
    store = app.store()
    note, size = sign_store(app, store, key)
    _write(output, note)
    if output not in (None, "-"):
        click.echo(f"checkpoint of {size} records signed by {key.name} saved to {output}")


@audit_group.command()
@click.argument("seq", type=click.IntRange(min=1), required=False)
@click.option("--consistency", "old", type=click.IntRange(min=0), metavar="OLD",
              help="A consistency proof from tree size OLD instead.")  # fmt: skip
@click.option("--size", type=click.IntRange(min=0), metavar="N",
              help="The tree size to prove at (default: the checkpoint's, or now).")  # fmt: skip
@click.option("--checkpoint", "checkpoint_file", metavar="FILE",
              help="Embed this signed checkpoint (its size is the default --size).")  # fmt: skip
@click.option("--output", "-o", metavar="FILE", help="Write the proof to FILE (JSON).")
@click.pass_obj
def prove(
    app: App,
    seq: int | None,
    old: int | None,
    size: int | None,
    checkpoint_file: str | None,
    output: str | None,
) -> None:
    """Write the proof that record SEQ is in the log (or, with --consistency, that the
    log only grew since size OLD) as a JSON document a merchant checks alone.

    Example:

    \b
        pricecalc audit prove 17 --checkpoint cp-2026-11-11.txt --output proof-17.json
        pricecalc audit prove --consistency 120 --checkpoint cp-2026-11-12.txt
    """
    if (seq is None) == (old is None):
        raise click.UsageError("give either SEQ or --consistency OLD")
    note = read_text_file(checkpoint_file, "--checkpoint") if checkpoint_file else None
    store = app.store()
    with app.store_errors():
        if note is not None:
            try:
                cp = published_checkpoint(store, note, f"the checkpoint {checkpoint_file}")
            except CheckpointProblem as exc:
                if exc.foreign:  # a checkpoint, but of another store: a domain problem
                    raise click.ClickException(str(exc)) from exc
                raise click.BadParameter(str(exc), param_hint="--checkpoint") from exc
            if size is not None and size != cp.size:
                raise click.BadParameter(
                    f"--size {size} is not the checkpoint's size {cp.size}", param_hint="--size"
                )
            size = cp.size
        try:
            if old is not None:
                doc = consistency_document(store, old, size, checkpoint=note)
            else:
                assert seq is not None
                doc = inclusion_document(
                    store, seq, size, checkpoint=note, keyed=hmac_key() is not None
                )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    _write(output, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    if output not in (None, "-"):
        click.echo(f"proof written to {output}")


@audit_group.command(name="verify-proof")
@click.argument("proof_file", metavar="PROOF.json", type=click.Path(dir_okay=False))
@click.option("--checkpoint", "checkpoint_file", metavar="CP.txt",
              help="The signed checkpoint (default: the one the proof embeds).")  # fmt: skip
@click.option("--old-checkpoint", "old_file", metavar="CP.txt",
              help="For a consistency proof: the older signed checkpoint.")  # fmt: skip
@click.option("--verifier-key", "vkey", required=True, metavar="VKEY",
              help="The log's verifier key (name+hex+base64), or a file with it.")  # fmt: skip
def verify_proof(
    proof_file: str, checkpoint_file: str | None, old_file: str | None, vkey: str
) -> None:
    """Check a proof document without the store: exit 0 saying what was proven, or 1
    naming what failed (signature, root, path length, sizes, record).

    Example:

    \b
        pricecalc audit verify-proof proof-17.json --checkpoint cp-2026-11-11.txt \\
            --verifier-key 'finance.example/chaozhigou-2026+1a2b3c4d+AbC…'
    """
    try:
        verifier = load_verifier_key(vkey)
    except (NoteError, OSError) as exc:
        raise click.BadParameter(str(exc), param_hint="--verifier-key") from exc
    text = read_text_file(proof_file)
    checkpoint_text = read_text_file(checkpoint_file, "--checkpoint") if checkpoint_file else None
    old_text = read_text_file(old_file, "--old-checkpoint") if old_file else None
    try:
        line = verify_document(load_document(text), verifier, checkpoint_text, old_text)
    except ProofError as exc:
        raise click.ClickException(f"proof refused: {exc}") from exc
    click.echo(line)
