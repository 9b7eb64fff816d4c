"""Finding and reading seed files safely: which paths may be imported, and how they are opened.

No database here; ``articles.importing`` turns what this yields into articles. The rules:

* **Nothing outside the seed folders.** A file is read only if it really lives inside one of the
  folders named on the command line, or is one of the files named there. A symbolic link (to a file
  or a folder) that leads anywhere else is reported as ``points outside the seed folders`` and not
  read, so a link to ``/etc/passwd`` or to a file holding a secret is never published. A link that
  leads to a place inside the folders is skipped quietly: the file is imported where it lives.
* **Only regular files, and no open may block.** Files are opened with ``O_NOFOLLOW | O_NONBLOCK``
  and checked with ``fstat`` on the open descriptor: a FIFO, socket or device named ``*.txt`` is
  reported as ``not a regular file`` instead of hanging the import, and a link swapped in after the
  walk is not followed. Where the descriptor's real path can be read back (Linux ``/proc``), it must
  still be inside the folders, so a folder swapped for a link mid-import is caught too.
* **Files still being written are left for the next run.** A file is ``still being written; skipped``
  when another process has it open for writing (a Linux read-lease test), when its size or
  modification time changes while it is read, or when it was modified less than
  ``settle_seconds`` ago (a writer that paused between two writes). Nothing stored is touched; the
  next run imports the whole file.
* **Names are shown, never obeyed.** :func:`display_path` escapes control characters, so a file name
  cannot recolour the operator's terminal or forge a report line.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .seeds import MAX_SEED_BYTES, SeedError

OUTSIDE = "points outside the seed folders"
NOT_REGULAR = "not a regular file"
STILL_BEING_WRITTEN = "still being written; skipped"

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class StillBeingWritten(SeedError):
    """A file another process is still writing: not an error in the file, so it is skipped, not rejected."""

    def __init__(self, path):
        super().__init__(path, STILL_BEING_WRITTEN)

    def __reduce__(self):
        return (StillBeingWritten, (self.path,))


@dataclass(frozen=True)
class SeedFile:
    """A file to read (``path``, as the operator knows it), and the real folder or file it must be.

    ``target`` is what is opened where that differs from ``path``: the real file behind a link the
    operator named on the command line.
    """

    path: Path
    allowed: Path
    target: Path | None = None

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class RawSeed:
    """A file's bytes as read, with its modification time (a new article's publication time)."""

    path: Path
    data: bytes
    mtime: float


def display_path(value: object) -> str:
    """``value`` as text safe to print on one terminal line: control characters escaped ``repr``-style.

    Escapes C0/C1 controls, DEL, format characters such as bidirectional overrides, line and paragraph
    separators, and the bytes of a name that is not valid UTF-8 (shown as ``\\xNN``). A backslash is
    doubled, so an escaped name can never be mistaken for another.
    """
    text = str(value)
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for char in text:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable() or char == " ":
            out.append(char)
        else:
            out.append(repr(char)[1:-1] if code > 0xFF or char in "\t\n\r" else f"\\x{code:02x}")
    return "".join(out)


# --- Finding files -------------------------------------------------------------------------------


def iter_seed_files(paths: Iterable[Path | str]) -> Iterator[SeedFile | SeedError]:
    """Every ``*.txt`` file under the given files and folders, each real file once, in a stable order.

    Links are never followed by the walk: a link inside the folders leads to a file or folder that
    is walked anyway, and a link leading outside them is reported. A named path that is missing, or
    a named file that is not ``.txt``, is reported too. This keeps nothing per file: only the real
    roots and the sorted listing of the folder being walked.
    """
    named = [Path(raw) for raw in paths]
    real_roots = [path.resolve() for path in named if path.is_dir()]

    def inside_roots(real: Path, *, other_than: Path | None = None) -> bool:
        return any(real.is_relative_to(root) for root in real_roots if root != other_than)

    walked: set[Path] = set()
    for root in named:
        if root.is_dir():
            real_root = root.resolve()
            if real_root in walked or inside_roots(real_root, other_than=real_root):
                continue  # the same folder named twice, or a folder inside another one named
            walked.add(real_root)
            yield from _walk(root, real_root, inside_roots)
        elif root.exists():
            real = root.resolve()
            if root.suffix.lower() != ".txt":
                yield SeedError(root, "not a .txt file; only *.txt seed files are imported")
            elif not inside_roots(real):
                # Named by the operator: a link here is trusted to lead to the file they meant.
                yield SeedFile(path=root, allowed=real, target=real)
        elif root.is_symlink():
            yield SeedError(root, "cannot read: it is a link to a missing file")
        else:
            yield SeedError(root, "no such file or folder")


def _walk(root: Path, real_root: Path, inside_roots) -> Iterator[SeedFile | SeedError]:
    unreadable: list[OSError] = []
    for directory, dirnames, filenames in os.walk(root, onerror=unreadable.append):
        yield from _folder_errors(unreadable)
        folder = Path(directory)
        dirnames.sort()
        for name in [name for name in dirnames if (folder / name).is_symlink()]:
            dirnames.remove(name)  # os.walk would not enter it; say so when it leads outside
            if not inside_roots((folder / name).resolve()):
                yield SeedError(folder / name, OUTSIDE)
        for name in sorted(filenames):
            if not name.lower().endswith(".txt"):
                continue
            path = folder / name
            if path.is_symlink():
                real = path.resolve()
                if not inside_roots(real):
                    yield SeedError(path, OUTSIDE)
                elif not real.exists():
                    yield SeedError(path, "cannot read: it is a link to a missing file")
                # else: the real file is yielded where it lives
                continue
            yield SeedFile(path=path, allowed=real_root)
    yield from _folder_errors(unreadable)


def _folder_errors(errors: list[OSError]) -> Iterator[SeedError]:
    """A folder the walk could not list is reported, not skipped in silence."""
    while errors:
        err = errors.pop(0)
        yield SeedError(err.filename, f"cannot read folder: {err.strerror or err}")


# --- Reading one file ------------------------------------------------------------------------------


def read_seed_file(seed_file: SeedFile, *, settle_seconds: float) -> RawSeed:
    """The bytes of one seed file, read without following links or blocking; ``SeedError`` otherwise."""
    path = seed_file.path
    try:
        os.fsencode(path.name).decode("utf-8")
    except UnicodeDecodeError as err:
        raise SeedError(path, "the file name is not valid UTF-8; rename the file") from err
    try:
        fd = os.open(seed_file.target or path, _OPEN_FLAGS)
    except OSError as err:
        raise _open_error(path, err) from err
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise SeedError(path, NOT_REGULAR)
        if not _opened_inside(fd, str(seed_file.allowed)):
            raise SeedError(path, OUTSIDE)
        if before.st_size > MAX_SEED_BYTES:
            raise SeedError(path, f"file is {before.st_size:,} bytes; the limit is {MAX_SEED_BYTES:,} (5 MB)")
        if _open_for_writing_elsewhere(fd) or 0 <= time.time() - before.st_mtime < settle_seconds:
            raise StillBeingWritten(path)
        data = _read_all(fd, path, expected=before.st_size)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or len(data) != before.st_size:
        raise StillBeingWritten(path)
    return RawSeed(path=path, data=data, mtime=before.st_mtime)


def _read_all(fd: int, path: Path, *, expected: int) -> bytes:
    """Up to one byte more than ``expected`` (so a file that grew is noticed), in as few reads as it takes."""
    chunks = []
    wanted = expected + 1
    try:
        while wanted > 0 and (chunk := os.read(fd, wanted)):
            chunks.append(chunk)
            wanted -= len(chunk)
    except OSError as err:
        raise SeedError(path, f"cannot read: {err.strerror or err}") from err
    return b"".join(chunks)


def _open_error(path: Path, err: OSError) -> SeedError:
    if err.errno == errno.ELOOP:  # O_NOFOLLOW met a link that was not there when the folder was walked
        return SeedError(path, "became a symbolic link during the import; not followed")
    if err.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a socket
        return SeedError(path, NOT_REGULAR)
    return SeedError(path, f"cannot read: {err.strerror or err}")


def _opened_inside(fd: int, allowed: str) -> bool:
    """Whether the open file really is ``allowed`` or inside it (where the OS can tell)."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return True  # no /proc: the walk's checks and O_NOFOLLOW are all there is
    return real == allowed or real.startswith(allowed.rstrip(os.sep) + os.sep)


def _open_for_writing_elsewhere(fd: int) -> bool:
    """Whether another process holds the file open for writing (Linux: a read lease is refused).

    The lease is released at once. Where leases are unavailable (another owner without
    ``CAP_LEASE``, a network filesystem, not Linux) the settle time and the size check remain.
    """
    if not hasattr(fcntl, "F_SETLEASE"):
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as err:
        return err.errno == errno.EAGAIN
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return False
