"""``pricecalc audit keygen / checkpoint / prove / verify-proof``: signed checkpoints and
the proofs a merchant checks alone (SPEC §9, docs/audit.md)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

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
from audit.protocol import AuditStore, Record
from pricecalc import records
from pricecalc.beijing import beijing_text
from pricecalc.cli.app import App, bad_file, hmac_key
from pricecalc.cli.audit import audit_group
from pricecalc.cli.options import read_text_file
from pricecalc.files.target import write_file
from pricecalc.i18n import N_, _, chinese, language
from pricecalc.messages import describe, foreign, os_reason
from pricecalc.money import fmt
from pricecalc.registry import Declarations

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
        raise bad_file(
            "--signing-key", _("no signing key at {path}").format(path=key_file)
        ) from exc
    except NoteError as exc:
        raise click.ClickException(describe(exc)) from exc


def sign_store(app: App, store: AuditStore, key: SigningKey) -> tuple[str, int]:
    """Verify the whole store, then sign its tree: the note and the tree size it names.
    Only a root the log itself gives is signed."""
    with app.store_errors():
        report = store.verify()
        if not report.ok or report.root is None:
            where = (
                _("record {seq}").format(seq=report.bad_seq)
                if report.bad_seq is not None
                else _("the store")
            )
            raise click.ClickException(
                _(
                    "not signing: the audit store {path} failed verification at {where}: {problem}"
                ).format(path=app.audit, where=where, problem=foreign(report.problem or ""))
            )
        if store.root(report.count) != report.root:
            raise click.ClickException(_("not signing: the store's tree does not match its log"))
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
        raise click.BadParameter(describe(exc), param_hint="NAME") from exc
    key = SigningKey.generate(name)
    try:
        write_signing_key(output, key)
    except FileExistsError as exc:
        raise click.ClickException(
            _("{path} already exists; a signing key is never overwritten").format(path=output)
        ) from exc
    except OSError as exc:
        raise click.ClickException(
            _("cannot write {path}: {reason}").format(path=output, reason=os_reason(exc))
        ) from exc
    click.echo(str(key.verifier))  # data: the verifier key itself


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
        raise click.UsageError(
            _("name the signing key with --signing-key or ${env}").format(env=SIGNING_KEY_ENV)
        )
    key = load_signing_key(key_file)
    store = app.store()
    note, size = sign_store(app, store, key)
    _write(output, note)
    if output not in (None, "-"):
        click.echo(
            _("checkpoint of {size} records signed by {name} saved to {path}").format(
                size=size, name=key.name, path=output
            )
        )


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
        raise click.UsageError(_("give either SEQ or --consistency OLD"))
    note = read_text_file(checkpoint_file, "--checkpoint") if checkpoint_file else None
    store = app.store()
    with app.store_errors():
        if note is not None:
            try:
                cp = published_checkpoint(
                    store, note, _("the checkpoint {path}").format(path=checkpoint_file)
                )
            except CheckpointProblem as exc:
                if exc.foreign:  # a checkpoint, but of another store: a domain problem
                    raise click.ClickException(describe(exc)) from exc
                raise bad_file("--checkpoint", describe(exc)) from exc
            if size is not None and size != cp.size:
                raise click.BadParameter(
                    _("--size {size} is not the checkpoint's size {cp}").format(
                        size=size, cp=cp.size
                    ),
                    param_hint="--size",
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
            raise click.ClickException(describe(exc)) from exc
    _write(output, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    if output not in (None, "-"):
        click.echo(_("proof written to {path}").format(path=output))


#: How a decision's ``settlement`` reads for a merchant (SPEC §10's column names).
SETTLEMENT_WORDS: dict[str, str] = {
    "deduct_from_payout": N_("deducted from the merchant's payout"),
    "merchant_pays": N_("paid by the merchant to the buyer directly"),
}
STATUS_WORDS: dict[str, str] = {"approved": "已批准 approved", "rejected": "已驳回 rejected"}


def _proven_record(doc: Mapping[str, Any]) -> Record | None:
    """The record an inclusion proof document carries (call only once it is verified)."""
    raw = doc.get("record")
    if not isinstance(raw, dict) or not isinstance(raw.get("payload"), dict):
        return None
    tags = raw.get("tags")
    return Record(
        seq=int(raw["seq"]), id=str(raw.get("id", "")), recorded_at=str(raw.get("recorded_at")),
        key=raw.get("key") if isinstance(raw.get("key"), str) else None,
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        payload=raw["payload"], prev_hash=str(raw.get("prev_hash", "")),
        hash=str(raw.get("hash", "")),
    )  # fmt: skip


def decided_lines(record: Record, declarations: Declarations) -> list[str]:
    """What a proven record decided, in the merchant's terms (issue 24): the kind, the
    order, each money figure by its SPEC §10 name and labels (as the installed rules
    declare them: a plugin's kind shows its own), the settlement and the recorded time in
    Beijing time — read from the record alone. Empty for a record pricecalc did not write."""
    decided = records.read(record, declarations)
    if not decided.is_decision:
        return []
    english = language() != "zh"

    def both(label: str) -> str:
        """A label in both languages for a merchant (English first), or in Chinese."""
        return f"{label} {chinese(label)}" if english else _(label)

    heading = N_("record {seq} decided")
    lines = [
        f"{heading.format(seq=decided.seq)} / {chinese(heading).format(seq=decided.seq)}:"
        if english
        else f"{_(heading).format(seq=decided.seq)}:"
    ]

    def say(label: str, value: object) -> None:
        if value is not None and value != "":
            lines.append(f"  {label}: {value}")

    say(both(N_("kind")), declarations.kind_label(decided.kind))
    say(both(N_("order")), decided.order_id)
    say(both(N_("request_id")), decided.key)
    say(both(N_("merchant")), decided.merchant_id)
    say(both(N_("campaign")), decided.campaign)
    say(both(N_("status")), STATUS_WORDS.get(decided.status, decided.status))
    for reason in decided.reasons:
        explained = declarations.explain(reason.code, decided.kind)
        say(both(N_("reason")), reason.code if explained is None
            else f"{reason.code} {explained.zh} ({explained.en})" if english
            else f"{reason.code} {explained.zh}")  # fmt: skip
    if decided.withdraws is not None:
        say(both(N_("withdraws")), decided.withdraws)
    for figure, value in decided.figures(declarations):
        say(f"{figure.zh} {figure.en} ({figure.name})" if english
            else f"{figure.zh} ({figure.name})", fmt(value))  # fmt: skip
    settlement = decided.result.get("settlement")
    if decided.approved and isinstance(settlement, str):
        words = SETTLEMENT_WORDS.get(settlement)
        said = (f"{chinese(words)} {words}" if english else _(words)) if words else None
        say(both(N_("settlement")), f"{settlement} — {said}" if said else settlement)
    beijing = beijing_text(decided.recorded_at)
    zone = f"{chinese(N_('Beijing time'))} Beijing time" if english else _("Beijing time")
    say(
        both(N_("recorded at")),
        f"{beijing} +08:00 {zone} (recorded_at {decided.recorded_at})"
        if beijing is not None else decided.recorded_at,
    )  # fmt: skip
    return lines


@audit_group.command(name="verify-proof")
@click.argument("proof_file", metavar="PROOF.json", type=click.Path(dir_okay=False))
@click.option("--checkpoint", "checkpoint_file", metavar="CP.txt",
              help="The signed checkpoint (default: the one the proof embeds).")  # fmt: skip
@click.option("--old-checkpoint", "old_file", metavar="CP.txt",
              help="For a consistency proof: the older signed checkpoint.")  # fmt: skip
@click.option("--verifier-key", "vkey", required=True, metavar="VKEY",
              help="The log's verifier key (name+hex+base64), or a file with it.")  # fmt: skip
@click.pass_obj
def verify_proof(
    app: App, proof_file: str, checkpoint_file: str | None, old_file: str | None, vkey: str
) -> None:
    """Check a proof document without the store: exit 0 saying what was proven, or 1
    naming what failed (signature, root, path length, sizes, record). After the OK line
    of a record's proof, what that record decided: kind, order, each money figure by its
    name (Chinese and English), settlement and the time recorded, in Beijing time.

    Example:

    \b
        pricecalc audit verify-proof proof-17.json --checkpoint cp-2026-11-11.txt \\
            --verifier-key 'finance.example/chaozhigou-2026+1a2b3c4d+AbC…'
    """
    try:
        verifier = load_verifier_key(vkey)
    except (NoteError, OSError) as exc:
        raise bad_file("--verifier-key", describe(exc)) from exc
    text = read_text_file(proof_file)
    checkpoint_text = read_text_file(checkpoint_file, "--checkpoint") if checkpoint_file else None
    old_text = read_text_file(old_file, "--old-checkpoint") if old_file else None
    try:
        document = load_document(text)
        line = verify_document(document, verifier, checkpoint_text, old_text)
    except ProofError as exc:
        raise click.ClickException(
            _("proof refused: {reason}").format(reason=describe(exc))
        ) from exc
    click.echo(foreign(line))
    proven = _proven_record(document) if "consistency_path" not in document else None
    if proven is not None:  # verified above: its content is the leaf the checkpoint signs
        for decided in decided_lines(proven, app.registry().declarations()):
            click.echo(decided)
