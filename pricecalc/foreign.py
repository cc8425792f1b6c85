"""Messages pricecalc shows but does not write, as templates its catalog translates.

The audit store never imports pricecalc (it could be published on its own), so it cannot
mark its messages for pricecalc's catalog; click marks its own for a gettext domain of its
process. Both are translated at the command line's edge, without changing them:

- :data:`AUDIT_MESSAGES` — the audit store's sentences with their variable parts as
  ``{name}`` placeholders. :func:`pricecalc.i18n.foreign` finds the template a message
  matches and fills its Chinese translation with the values found there (themselves
  translated the same way). What ``audit`` says to a library user, and what it stores,
  stay exactly as they are; a sentence with no template here stays English.
  tests/test_foreign_messages.py checks each template's words are still audit's own.
- :data:`CLICK_MESSAGES` — click's own messages for a command line it cannot parse (click
  looks each up with :func:`gettext.gettext` as it builds it): while a command runs in
  Chinese, :mod:`pricecalc.cli.language` answers those lookups from pricecalc's catalog.
- :data:`OS_ERRORS` — what the operating system says about a file, by ``errno`` name.

Every text here is marked with ``N_`` and so is in the catalog (``make catalog``), whose
completeness test covers it like any other message.
"""

from __future__ import annotations

from pricecalc.i18n import N_

#: The audit store's messages (audit/*.py), variable parts as ``{name}``; a text matching
#: several is read by the one with the most words of its own.
AUDIT_MESSAGES: tuple[str, ...] = (
    N_("audit store tampered at record {seq}: {problem}"),
    N_("audit store tampered at the store: {problem}"),
    N_("idempotency key {key} is already recorded as record {seq}; keys are unique in a store"),
    N_("idempotency key {key} is already recorded; keys are unique in a store"),
    N_(
        "idempotency key {key} is pending in this transaction (or batch); keys are unique in a "
        "store"
    ),
    N_("record {seq} is unreadable: {problem}"),
    N_("seq gap: expected {expected}, found {found}: {why}"),
    N_("records were reordered (record {seq} comes before {upcoming})"),
    N_("record {seq} is missing (deleted)"),
    N_("records {first}..{last} are missing (deleted)"),
    N_("record {seq} appears twice (duplicated)"),
    N_(
        "seq repeat: expected {expected}, found {found} again: a record was duplicated, inserted "
        "or moved"
    ),
    N_(
        "record {seq} prev_hash does not match record {before}'s hash: a record before it was "
        "replaced or inserted, or the chain was forked"
    ),
    N_("record {seq} was rewritten since the checkpoint (hash {hash}…, checkpoint {checkpoint}…)"),
    N_(
        "the store ends at record {seq} but the checkpoint names record {named}: records were cut "
        "off (truncated) since the checkpoint"
    ),
    N_("the checkpoint is invalid: seq 0 must carry the genesis hash"),
    N_("not valid JSON ({problem})"),
    N_("not a JSON object"),
    N_("wrong fields (missing {missing}, unexpected {extra})"),
    N_("seq is not a positive integer ({value})"),
    N_("id and recorded_at must be strings"),
    N_("key is not a string ({key})"),
    N_("tags is not a list of strings"),
    N_("payload is not an object"),
    N_("prev_hash and hash must be strings"),
    N_("record {seq}: prev_hash and hash must be 64 lowercase hex digits"),
    N_("record {seq} has no canonical form ({problem})"),
    N_(
        "record {seq} hash mismatch: its content was edited (or it was hashed with a different "
        "hmac_key)"
    ),
    N_("record {seq} is not stored in canonical form: the line was edited"),
    N_("record {seq} has an unreadable recorded_at ({recorded_at})"),
    N_("a float ({text}) has no canonical form"),
    N_("the audit store cannot store the character U+0000 (NUL) in text; remove it from {what}"),
    N_("the last line of the log (offset {offset}) is not a record: {problem}"),
    N_("record {seq} is the first line but does not start the chain"),
    N_(
        "record {seq} does not chain to the line before it (a record was removed, replaced or "
        "moved)"
    ),
    N_("record {seq} does not chain to record {before}"),
    N_("expected record {expected}, found {found}"),
    N_("{problem}; refusing to append on top of it"),
    N_("could not take the writer lock {path} within {seconds}s: another process holds it"),
    N_("could not lock the audit log {path} within {seconds}s: another writer holds it"),
    N_("another thread held the audit store {path} for more than {seconds}s"),
    N_("the writer lock {path}: {problem}"),
    N_(
        "the audit log {path} was replaced or removed while this handle had it open; open the "
        "store again"
    ),
    N_("the audit store {path} is closed"),
    N_(
        "the log shrank from {before} to {size} bytes while this handle had it open: acknowledged "
        "records were removed"
    ),
    N_(
        "the audit log {path} was rolled back: record {seq} (hash {hash}) was written to it, but "
        "the log now ends at record {head} and does not hold it (restored from an older copy, cut "
        "back, or replaced). Records up to {last} may be lost; appends are refused until an "
        "operator accepts the rollback (audit accept-rollback)"
    ),
    N_(
        "the high-water mark {mark} is unreadable: the audit log {path} may have been rolled back "
        "with it. Appends are refused until an operator accepts the rollback (audit "
        "accept-rollback)"
    ),
    N_("could not write the high-water mark {mark}"),
    N_(
        "the audit log {path} has {links} names (hard links): its high-water mark, index and lock "
        "sit beside one name, so a writer through another would not see them. Appends are refused "
        "until the other links are removed (keep a copy with cp instead)"
    ),
    N_(
        "the audit store {path} could not record {count} record(s): {problem}. They are NOT "
        "recorded. This handle refuses further appends; open the store again once the cause is "
        "fixed"
    ),
    N_(
        "an append to the audit store {path} was interrupted; nothing was acknowledged. This "
        "handle refuses further appends; open the store again"
    ),
    N_(
        "the audit store {path} could not record {count} record(s): {problem}. Whether they "
        "are recorded is unknown: a retry under the same key replays them if they are. This "
        "handle refuses further appends; open the store again once the cause is fixed"
    ),
    N_(
        "the audit store {path} could not sync what other writers appended: fsync failed: "
        "{problem}. This handle refuses further appends; open the store again once the cause "
        "is fixed"
    ),
    N_(
        "{problem} (a sync of this handle failed before; whether what it read or wrote is "
        "durable is unknown)"
    ),
    N_(
        "{doing}: the records were committed but their flush to disk could not be confirmed "
        "({problem}); look them up by key before retrying (a keyed record is never recorded "
        "twice)"
    ),
    N_("the index {path} is unavailable: {problem}"),
    N_("the index {path} disagrees with the log even after a rebuild: {problem}"),
    N_("the index {path} could not be rebuilt from the log: {problem}"),
    N_(
        "the Merkle tree kept in {path} does not match the log: {problem}; it was reset and will "
        "be rebuilt from the log, try again"
    ),
    N_(
        "the Merkle tree kept in {path} cannot be read ({problem}); it was reset and will be "
        "rebuilt from the log, try again"
    ),
    N_("cannot cut the incomplete last record off {path}: {problem}"),
    N_(
        "this audit store handle was opened in another process (before a fork); open the store "
        "again in this process"
    ),
    N_(
        "a transaction is open on this store in this thread: append through it (tx.append), not "
        "through the store"
    ),
    N_("a transaction is already open on this store in this thread"),
    N_("the audit log cannot be rewritten (TinyDB Storage.write); records are only ever appended"),
    N_("record {seq} is not in the tree of size {size}"),
    N_("{what} {size} is not between 0 and the tree's size {have}"),
    N_("tree size"),
    N_("old tree size"),
    N_("the old tree size {old} is larger than the new {new}"),
    N_("the stored tree does not match record {seq} ({problem})"),
    N_("the stored tree is not consistent with itself ({problem})"),
    N_("record {seq} does not check out ({problem}); run verify()"),
    N_("record {seq} does not check out; run verify()"),
    N_("created the audit store {path}."),
    N_("audit store {path} already exists ({count} records); nothing to do."),
    N_(
        "accepted the rollback of the audit store {path}: its log ends at {where}; record {seq} "
        "(hash {hash}), which was written to it, is no longer there. Appends are allowed again; "
        "nothing else was recorded."
    ),
    N_("record {seq} (hash {hash})"),
    N_("no record (empty)"),
    N_(
        "the audit store {path} is not behind its high-water mark; it ends at {where}. Nothing to "
        "accept."
    ),
    N_("app_role applies to PostgreSQL stores only"),
    N_("accept-rollback applies to the file store (a path) only"),
    N_("there is no audit store at {path} to migrate from"),
    N_(
        "{store} cannot take records made elsewhere (it has no import_records); migrate into a "
        "PostgreSQL store"
    ),
    N_("the target store already holds {count} records; migrate into an empty store"),
    N_("the source does not verify, nothing copied: {problem}"),
    N_(
        "the copy ends at record {seq} but the source's verified head is record {head}: records "
        "went missing on the way"
    ),
    N_("the copy does not verify against the source's head: {problem}"),
    N_(
        "unknown audit store URL scheme {scheme}; known: {known}, or a plain path for the "
        "embedded TinyDB store"
    ),
    N_("file URLs must name a local file, not host {host}"),
    N_(
        "a PostgreSQL audit store needs psycopg ({problem}); install it with pip install "
        "'chaozhigou-pricecalc[postgres]'"
    ),
    N_("cannot connect to the audit database {where}: {problem}"),
    N_("cannot connect to the audit database: {problem}"),
    N_("cannot open the audit store at {where}: {problem}"),
    N_(
        "no audit store at {where}: table {table} not found; create it with `pricecalc audit init "
        "URL` (audit.init_store)"
    ),
    N_(
        "the audit schema in {schema} is at version {version}, this pricecalc needs {needed}: run "
        "`pricecalc audit init URL` (audit.init_store)"
    ),
    N_(
        "could not take the audit chain lock of {where} within {seconds}s ({doing}): another "
        "writer holds it"
    ),
    N_("not a PostgreSQL URL or connection string: {problem}"),
    N_("a key name must be non-empty text"),
    N_(
        "the key name {name} may not contain {ch}: a signed-note key name holds neither '+' nor "
        "spaces nor control characters (e.g. finance.example/log-2026)"
    ),
    N_("{what} is not valid base64"),
    N_("{what} is not canonical base64"),
    N_("the verifier key's key data"),
    N_("the signing key's key data"),
    N_(
        "a verifier key is <name>+<8 hex digits>+<base64 key>, e.g. "
        "finance.example/log+1a2b3c4d+AQ…"
    ),
    N_("the key ID {id} of a verifier key is 8 lowercase hex digits"),
    N_("the verifier key is not an Ed25519 key (0x01 and 32 bytes)"),
    N_(
        "the verifier key's ID {id} does not match its name and key (the key was copied wrongly "
        "or altered)"
    ),
    N_("a signing key is PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>"),
    N_("the key ID of a signing key is 8 lowercase hex digits"),
    N_("the signing key is not an Ed25519 key (0x01 and a 32-byte seed)"),
    N_("the signing key's ID does not match its name and key"),
    N_("{path} is not a signing key"),
    N_(
        "the signing key {path} may be read by others (mode {mode}); make it readable by its "
        "owner only: chmod 600 {file}"
    ),
    N_("{what} is not valid UTF-8 (a lone surrogate)"),
    N_(
        "{what} holds a carriage return (CR): a note's lines end in a line feed only (C2SP "
        "signed-note; saved with Windows line ends?)"
    ),
    N_("{what} holds the control character {ch}"),
    N_(
        "malformed note: it holds a carriage return (CR): a note's lines end in a line feed only "
        "(C2SP signed-note; saved with Windows line ends?)"
    ),
    N_("malformed note: it is not valid UTF-8 (a lone surrogate)"),
    N_("malformed note: it holds the control character {ch}"),
    N_("the note text"),
    N_("malformed note: {problem}"),
    N_("malformed note: not valid UTF-8"),
    N_("malformed note: no blank line before the signatures"),
    N_("malformed note: no signature lines, or the last one has no newline"),
    N_("malformed note: more than {count} signatures"),
    N_("malformed note: a signature line must start with '— ': {line}"),
    N_("malformed note: the signature line of {name} is too short"),
    N_(
        "signature: the signature line of {name}+{id} does not verify (the text or the signature "
        "was altered)"
    ),
    N_(
        "signature: the note is not signed by {name}+{id} (signed by another key, or a key with "
        "the same name that is not ours)"
    ),
    N_("checkpoint: the text must end in a newline"),
    N_("checkpoint: at least three non-empty lines (origin, size, root)"),
    N_("checkpoint: the tree size {text} is not a decimal number"),
    N_("checkpoint: the root hash"),
    N_("checkpoint: the root hash has {count} bytes, not {expected}"),
    N_("checkpoint: its origin {origin} is not the log {name} of the verifier key"),
    N_("an Ed25519 public key has 32 bytes, not {count}"),
    N_("{where} is not a signed checkpoint ({problem})"),
    N_("{where} is not signed (it has no signature line)"),
    N_("{where} is not of this store (its root at size {size} differs, or the store is smaller)"),
    N_("the checkpoint"),
    N_("the old checkpoint"),
    N_("the checkpoint: {problem}"),
    N_("the old checkpoint: {problem}"),
    N_("not a proof document: {problem}"),
    N_("not a proof document: not a JSON object"),
    N_("sizes: {name} must be a non-negative integer, got {value}"),
    N_("{name} must be a list of base64 hashes"),
    N_("path: {name}[{n}] is not base64"),
    N_("path: {name}[{n}] is not canonical base64"),
    N_("{what} is missing: there is nothing to check the proof against"),
    N_(
        "sizes: the proof is from {old} to {new}, the checkpoints are of sizes {old_size} and "
        "{new_size}"
    ),
    N_("record: the document holds no record"),
    N_("sizes: the proof is for tree size {size}, the checkpoint's is {checkpoint}"),
    N_(
        "sizes: leaf_index {index}, seq {seq} and the record's seq {record} do not agree (leaf "
        "index = seq - 1)"
    ),
    N_("record: it has no canonical form ({problem})"),
    N_("record: unknown hash_rule {rule}"),
    N_("record: its hash field is not the SHA-256 of its content"),
    N_("a float ({text}) has no place in a proof document"),
    N_(
        "OK: record {seq} (hash {hash}…) is in the log {log} at tree size {size}, unchanged; "
        "{signed}"
    ),
    N_(
        "OK: record {seq} (content SHA-256 {digest}…) is in the log {log} at tree size {size}, "
        "unchanged; its hash field is the store's HMAC, which only the store's keeper can check "
        "(not checked here); {signed}"
    ),
    N_("checkpoint signed by {name}+{id}"),
    N_(
        "OK: the log {log} at size {new} is an extension of the log at size {old}: nothing in the "
        "first {count} records was changed or removed"
    ),
    N_("leaf index {index} and tree size {size} must not be negative"),
    N_("leaf index {index} is not below the tree size {size}"),
    N_(
        "path length: {count} hashes, but a leaf {index} of a tree of size {size} has a path of "
        "{expected}"
    ),
    N_("path length: the path is longer than the tree is high"),
    N_("path length: the path is shorter than the tree is high"),
    N_("root: the path does not lead to the checkpoint's root hash"),
    N_("sizes {old} and {new} must not be negative"),
    N_("sizes: the old size {old} is larger than the new {new}"),
    N_("path length: from size {old} to {new} the path must be empty, got {count} hashes"),
    N_("root: two different roots for the same size {size}"),
    N_("root: the root of size 0 must be the empty tree's"),
    N_("path length: {count} hashes, but from size {old} to {new} the path has {expected}"),
    N_("path length: the path is longer than the trees are high"),
    N_("path length: the path is shorter than the trees are high"),
    N_("root: the path does not lead to the old checkpoint's root hash"),
    N_("root: the path does not lead to the new checkpoint's root hash"),
    N_("{what}: element {n} is not a {size}-byte hash"),
    N_("leaf index {index} is not in a tree of size {size}"),
    N_("no consistency proof from size {old} to size {new}"),
    N_("audit index {path} cannot be trusted ({problem}); rebuilding it from the log"),
    N_("audit index {path} lost the tree's edge; rebuilding"),
    N_("audit index {path} unavailable ({problem})"),
    N_(
        "audit store {path}: its index knew record {seq} (hash {hash}), which the log does not "
        "hold; the high-water mark is raised to it"
    ),
    N_("audit store {path}: its high-water mark is unreadable"),
    N_("audit store {path}: could not write its high-water mark ({problem})"),
    N_(
        "audit store {path}: cut off an incomplete last record ({size} bytes at offset {offset}); "
        "it was never acknowledged"
    ),
    N_("audit: {problem}; reading the log instead"),
    N_("audit: {problem}; its tree was not checked"),
    N_("audit: {problem}; the tree is recomputed from the log"),
    N_("audit: the index's tree was not checked ({problem})"),
    N_("it does not match the log (its head is not the log's)"),
    N_(
        "audit store {path}: the last record ({seq}) had lost its newline; restored (the "
        "high-water mark names that record)"
    ),
    N_("malformed note: it"),
    N_(
        "its head (record {seq} ending at offset {offset}) is not the log's (record {last} ending "
        "at offset {end})"
    ),
    N_("its running digest is not the digest of the log's rows"),
    N_("record {seq} has no row"),
    N_("record {seq}'s row is wrong {at}"),
    N_("a row for record {seq}, which the log does not hold"),
    N_("the {what} row of record {seq} is missing"),
    N_("a {what} row for record {seq} that the log does not hold"),
    N_("the link after the {what} row of record {seq}"),
)

#: click's messages for a command line it cannot parse (click/core.py, parser.py, types.py,
#: exceptions.py), each exactly as click marks it; plural forms are two entries.
CLICK_MESSAGES: frozenset[str] = frozenset(
    {
        N_("Missing argument"),
        N_("Missing option"),
        N_("Missing parameter"),
        N_("Missing {param_type}"),
        N_("Missing command."),
        N_("No such option {name!r}."),
        N_("No such command {name!r}."),
        N_("Did you mean {possibility}?"),
        N_("(Did you mean one of: {possibilities}?)"),
        N_("Option {name!r} requires an argument."),
        N_("Option {name!r} requires {nargs} arguments."),
        N_("Option {name!r} does not take a value."),
        N_("Argument {name!r} takes {nargs} values."),
        N_("Got unexpected extra argument ({args})"),
        N_("Got unexpected extra arguments ({args})"),
        N_("Invalid value: {message}"),
        N_("{value!r} is not {choice}."),
        N_("{value!r} is not one of {choices}."),
        N_("{value!r} is not a valid {number_type}."),
        N_("{value} is not in the range {range}."),
        N_("{value!r} is not a valid boolean. Recognized values: {states}"),
        N_("{value!r} does not match the format {format}."),
        N_("{value!r} does not match the formats {formats}."),
        N_("file"),
        N_("directory"),
        N_("path"),
        N_("{name} {filename!r} does not exist."),
        N_("{name} {filename!r} is a file."),
        N_("{name} {filename!r} is a directory."),
        N_("{name} {filename!r} is not readable."),
        N_("{name} {filename!r} is not writable."),
        N_("Could not open file {filename!r}: {message}"),
        N_("unknown error"),
        N_("Aborted!"),
        N_("Takes {nargs} values but 1 was given."),
        N_("Takes {nargs} values but {len} were given."),
        # the frame of every usage error (pricecalc's own errors use the same words)
        N_("Error: {message}"),
        N_("Try '{command} {option}' for help."),
        N_("Invalid value for {param_hint}: {message}"),
    }
)

#: The operating system's errors a clerk meets with files, by ``errno`` name.
OS_ERRORS: dict[str, str] = {
    "ENOENT": N_("no such file or folder"),
    "EACCES": N_("permission denied"),
    "EPERM": N_("operation not permitted"),
    "EISDIR": N_("it is a folder"),
    "ENOTDIR": N_("a part of the path is not a folder"),
    "ENOSPC": N_("the disk is full"),
    "EDQUOT": N_("the disk quota is used up"),
    "EROFS": N_("the disk is read-only"),
    "EEXIST": N_("it already exists"),
    "ENAMETOOLONG": N_("the name is too long"),
    "ELOOP": N_("too many symbolic links"),
    "EIO": N_("an input/output error (a disk or network failure)"),
}

#: Python's json module's phrases (``Expecting value``), shown through the catalog by
#: :func:`pricecalc.files.reading.json_problem` and ``pricecalc decide``.
JSON_MESSAGES: tuple[str, ...] = (
    N_("Expecting value"),
    N_("Expecting property name enclosed in double quotes"),
    N_("Expecting ',' delimiter"),
    N_("Expecting ':' delimiter"),
    N_("Extra data"),
    N_("Unterminated string starting at"),
    N_("Invalid control character at"),
    N_("Invalid \\escape"),
    N_("Invalid \\uXXXX escape"),
    N_("Illegal trailing comma before end of object"),
    N_("Illegal trailing comma before end of array"),
)

#: Python's csv module's phrases, shown through the catalog by
#: :func:`pricecalc.files.reading.csv_problem`.
CSV_MESSAGES: tuple[str, ...] = (
    N_("unexpected end of data"),
    N_("',' expected after '\"'"),
    N_("line contains NUL"),
)

#: Python's TOML reader's sentences (a policy file that is not TOML), matched as
#: :data:`AUDIT_MESSAGES` are (:func:`pricecalc.i18n.foreign`).
TOML_MESSAGES: tuple[str, ...] = (
    N_("{problem} (at line {line}, column {column})"),
    N_("{problem} (at end of document)"),
    N_("Invalid statement"),
    N_("Expected {what}"),
    N_("Found invalid character {ch}"),
    N_("Cannot declare {key} twice"),
    N_("Cannot overwrite a value"),
    N_("Expected ']' at the end of a table declaration"),
    N_("Expected ']]' at the end of an array declaration"),
    N_("Expected '=' after a key in a key/value pair"),
    N_("Invalid initial character for a key part"),
    N_("Unclosed array"),
    N_("Unclosed inline table"),
    N_("Duplicate inline table key {key}"),
    N_("Unterminated string"),
    N_("Illegal character {ch}"),
    N_("Invalid date or datetime"),
    N_("Invalid value"),
    N_("Cannot mutate immutable namespace {key}"),
    N_("Cannot redefine namespace {key}"),
    N_("Invalid hex value"),
    N_("Unescaped '\\' in a string"),
    N_("Escaped character is not a Unicode scalar value"),
)
