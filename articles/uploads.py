"""Unpacking seed files uploaded in the admin into a folder of their own; no database here.

An upload is one or more ``.txt`` seed files or ``.zip`` archives of them. The rules keep a hostile
archive harmless:

* **Sizes.** The upload as a whole is limited (``NEWSROOM_UPLOAD_MAX_BYTES``), and so is what it
  unpacks to: the sizes an archive declares are checked first, and the bytes actually written are
  counted as they are written, so an archive that lies about its sizes (a zip bomb) stops at the
  limit. Each seed is at most 5 MB, as on the command line; at most ``NEWSROOM_UPLOAD_MAX_FILES``.
* **Paths.** A member's path must stay inside the folder: absolute paths, ``..``, drive letters and
  backslashes are refused, links inside the archive are refused, and nothing is ever extracted
  with ``extractall``. Other members (not ``.txt``) are skipped.
Any refusal raises :class:`UploadError` with the file and the reason; the folder is then removed.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .seeds import MAX_SEED_BYTES

_COPY_CHUNK = 64 * 1024


class UploadError(Exception):
    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason
        super().__init__(f"{name}: {reason}")


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its name as sent, and its content."""

    name: str
    size: int
    stream: BinaryIO


class _Budget:
    """What the upload may still unpack to, in bytes and files."""

    def __init__(self, max_bytes: int, max_files: int):
        self.bytes_left = max_bytes
        self.files_left = max_files

    def take_file(self, name: str) -> None:
        if self.files_left <= 0:
            raise UploadError(name, "too many files in this upload")
        self.files_left -= 1

    def take_bytes(self, name: str, count: int) -> None:
        self.bytes_left -= count
        if self.bytes_left < 0:
            raise UploadError(name, "the upload unpacks to more than the size limit allows")


def unpack(uploads: Iterable[Upload], into: Path, *, max_bytes: int, max_files: int) -> int:
    """Write the seed files of ``uploads`` under ``into`` (created); return how many were written."""
    uploads = list(uploads)
    total = sum(upload.size for upload in uploads)
    if total > max_bytes:
        raise UploadError("upload", f"{total:,} bytes; the limit is {max_bytes:,}")
    into.mkdir(parents=True, exist_ok=False)
    budget = _Budget(max_bytes, max_files)
    written = 0
    try:
        for index, upload in enumerate(uploads):
            name = _safe_name(upload.name)
            lowered = name.lower()
            if lowered.endswith(".zip"):
                written += _unpack_zip(upload, into / f"{index:03d}-{Path(name).stem}", budget)
            elif lowered.endswith(".txt"):
                budget.take_file(name)
                _copy_limited(upload.stream, into / f"{index:03d}" / name, name, budget)
                written += 1
            else:
                raise UploadError(name, "only .txt seed files and .zip archives of them can be uploaded")
    except BaseException:
        shutil.rmtree(into, ignore_errors=True)
        raise
    if not written:
        shutil.rmtree(into, ignore_errors=True)
        raise UploadError("upload", "no .txt seed files in it")
    return written


def _unpack_zip(upload: Upload, folder: Path, budget: _Budget) -> int:
    try:
        archive = zipfile.ZipFile(upload.stream)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise UploadError(upload.name, f"not a readable zip archive ({err})") from err
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        declared = sum(info.file_size for info in members)
        if declared > budget.bytes_left:
            raise UploadError(upload.name, f"unpacks to {declared:,} bytes; the limit is {budget.bytes_left:,}")
        written = 0
        for info in members:
            where = f"{upload.name}: {info.filename}"
            relative = _safe_member_path(info.filename, where)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UploadError(where, "links inside archives are not accepted")
            if relative.suffix.lower() != ".txt":
                continue
            if info.flag_bits & 0x1:
                raise UploadError(where, "encrypted members are not accepted")
            if info.file_size > MAX_SEED_BYTES:
                raise UploadError(where, f"{info.file_size:,} bytes; a seed file is at most {MAX_SEED_BYTES:,}")
            budget.take_file(where)
            try:
                with archive.open(info) as member:
                    _copy_limited(member, folder.joinpath(*relative.parts), where, budget, limit=MAX_SEED_BYTES)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as err:
                raise UploadError(where, f"cannot be unpacked ({err})") from err
            written += 1
    return written


def _safe_name(name: str) -> str:
    """The uploaded file's own name, without any folders a browser may send."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if not base or base in (".", "..") or not base.isprintable():
        raise UploadError(repr(name), "not a usable file name")
    return base


def _safe_member_path(filename: str, where: str) -> PurePosixPath:
    path = PurePosixPath(filename)
    if (
        "\\" in filename
        or path.is_absolute()
        or any(part in ("", "..") for part in path.parts)
        or (path.parts and ":" in path.parts[0])
        or not filename.isprintable()
    ):
        raise UploadError(where, "unsafe path in the archive (absolute, '..', or a drive)")
    return path


def _copy_limited(source: BinaryIO, target: Path, name: str, budget: _Budget, *, limit: int = MAX_SEED_BYTES) -> None:
    """Copy counting every byte, so declared sizes that lie stop at the limits."""
    target.parent.mkdir(parents=True, exist_ok=True)
    copied = 0
    with target.open("xb") as out:
        while chunk := source.read(_COPY_CHUNK):
            copied += len(chunk)
            if copied > limit:
                raise UploadError(name, f"more than {limit:,} bytes; a seed file is at most {MAX_SEED_BYTES:,}")
            budget.take_bytes(name, len(chunk))
            out.write(chunk)
