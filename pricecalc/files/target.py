"""Where an output file goes: the one atomic writer of every file pricecalc writes and the
one check of an output path.

:class:`AtomicFile` writes every output file (batch output, ``audit export``,
``statement``, ``report``, proofs, checkpoints): a fresh temporary with a random name
created in the target's folder without following links (``mkstemp``: ``O_CREAT | O_EXCL |
O_NOFOLLOW``), written, fsynced, then renamed onto the target with ``os.replace`` — a
planted ``.NAME.partial`` symlink is never opened, an existing file is never truncated in
place, a reader never finds half a file. A folder, a missing or read-only folder is refused
(:class:`OutputProblem`) naming the path as the user typed it, never the hidden one
(:func:`writable_target`). An output that is the audit store, its index, its lock or any
file of the store beside it (by name, by resolved path or as a hard link) is refused
(:func:`refuse_store_files`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Literal

from pricecalc.i18n import msg

OutputFormat = Literal["jsonl", "csv", "xlsx"]
Headers = Literal["zh", "en"]


class OutputProblem(ValueError):
    """The output cannot be written where asked (a folder, a folder that does not exist or
    cannot be written, Excel to standard output). The message names the path as the user
    typed it; it is raised before anything is decided."""


def writable_target(name: str, example: str) -> Path:
    """The file ``name`` names, when it can be one: not a folder, in a folder that exists.
    ``example`` is a file name to suggest (``decisions.xlsx``)."""
    target = Path(name)
    if name.endswith(("/", os.sep)) or target.is_dir():
        suggestion = str(Path(name) / example)
        raise OutputProblem(
            msg(
                "{name!r} is a folder; give the name of a file to write, such as {suggestion!r}",
                name=name,
                suggestion=suggestion,
            )
        )
    folder = target.parent
    if not folder.exists():
        raise OutputProblem(
            msg(
                "the folder {folder!r} does not exist (for {name!r}): create it first, "
                "or write somewhere else",
                folder=str(folder),
                name=name,
            )
        )
    if not folder.is_dir():
        raise OutputProblem(
            msg(
                "{folder!r} is a file, not a folder, so {name!r} cannot be written",
                folder=str(folder),
                name=name,
            )
        )
    return target


def cannot_create(name: str, target: Path, exc: OSError) -> str:
    folder = str(target.parent)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return msg(
            "cannot write {name!r}: the folder {folder!r} is read-only for you "
            "(permission denied)",
            name=name, folder=folder,
        )  # fmt: skip
    if exc.errno == errno.EROFS:
        return msg(
            "cannot write {name!r}: the folder {folder!r} is on a read-only disk",
            name=name, folder=folder,
        )  # fmt: skip
    if exc.errno == errno.ENOSPC:
        return msg("cannot write {name!r}: the disk is full", name=name)
    return msg(
        "cannot write {name!r}: {reason}", name=name, reason=(exc.strerror or str(exc)).lower()
    )


def refuse_store_files(name: str, store: str | None) -> None:
    """Refuse (:class:`OutputProblem`, naming both) an output ``name`` that would land on
    the audit store at ``store`` or a file of it: the log itself, and every file beside it
    whose name starts with the log's name and a dot (its index, lock, high-water mark,
    SQLite sidecars) — compared by resolved path (``realpath``: symlinks followed) and as
    the same file (``samefile``: hard links). A store URL has no files to protect."""
    if store is None or name == "-" or "://" in store:
        return
    log = Path(os.path.realpath(store))
    target = Path(os.path.realpath(name))
    folder = log.parent

    def refuse(what: Path) -> OutputProblem:
        return OutputProblem(
            msg(
                "{name!r} is the audit store's own file {what!r}: an output never "
                "overwrites the store, its index or its lock — write somewhere else",
                name=name,
                what=str(what),
            )
        )

    if target == log or (target.parent == folder and target.name.startswith(f"{log.name}.")):
        raise refuse(target)
    try:
        written = os.stat(target)
    except OSError:
        return  # nothing there yet: a new file cannot be a link to the store
    try:
        neighbours = [log, *(folder / n for n in os.listdir(folder) if n.startswith(log.name))]
    except OSError:
        neighbours = [log]
    for path in neighbours:
        with contextlib.suppress(OSError):
            found = os.stat(path)
            if (found.st_dev, found.st_ino) == (written.st_dev, written.st_ino):
                raise refuse(path)


class AtomicFile:
    """One output file written whole or not at all (module docstring): a temporary with a
    random name in ``target``'s folder, created without following links and never over
    an existing file; :meth:`commit` fsyncs it, gives it the mode a new file would have
    (the umask's) and renames it onto ``target``; :meth:`discard` removes it.

    Raises ``OSError`` when the temporary cannot be created."""

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{self.target.name}.", suffix=".partial", dir=self.target.parent or "."
        )
        self.path = Path(temporary)
        self.file: IO[bytes] = os.fdopen(handle, "wb")

    def commit(self) -> None:
        try:
            if not self.file.closed:
                self.file.flush()
                os.fsync(self.file.fileno())
                self.file.close()
            else:  # written by a library through its path (a workbook): sync that
                fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            umask = os.umask(0)  # mkstemp makes the file 0600; an output is as readable
            os.umask(umask)  # as any new file
            os.chmod(self.path, 0o666 & ~umask)
            os.replace(self.path, self.target)
        except BaseException:
            self.discard()
            raise
        with contextlib.suppress(OSError):  # the rename itself, durable
            fd = os.open(self.target.parent or ".", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def discard(self) -> None:
        """Drop the temporary (never raises for it)."""
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


def write_file(
    name: str | os.PathLike[str], data: str | bytes, *, store: str | None = None
) -> None:
    """Write a whole output file at once through :class:`AtomicFile` (text as UTF-8),
    refusing the store's files (:func:`refuse_store_files`)."""
    refuse_store_files(os.fspath(name), store)
    out = AtomicFile(name)
    try:
        out.file.write(data.encode("utf-8") if isinstance(data, str) else data)
    except BaseException:
        out.discard()
        raise
    out.commit()
