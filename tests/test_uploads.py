"""Unpacking admin uploads: seed files and zips in, hostile archives refused, nothing left behind."""

import io
import stat
import zipfile

import pytest

from articles.seeds import MAX_SEED_BYTES
from articles.uploads import Upload, UploadError, _Budget, _copy_limited, unpack

from .test_importing import seed_text

LIMITS = {"max_bytes": 10 * 1024 * 1024, "max_files": 50}


def upload(name: str, data: bytes) -> Upload:
    return Upload(name=name, size=len(data), stream=io.BytesIO(data))


def zipped(members: dict[str, bytes], *, symlinks=()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_text_files_and_a_zip_with_folders_are_unpacked(tmp_path):
    archive = zipped({"wire/a.txt": seed_text(title="A").encode(), "b.TXT": b"x", "readme.md": b"skip", "dir/": b""})
    count = unpack([upload("one.txt", seed_text().encode()), upload("batch.zip", archive)], tmp_path / "up", **LIMITS)
    assert count == 3
    assert files_under(tmp_path / "up") == ["000/one.txt", "001-batch/b.TXT", "001-batch/wire/a.txt"]


def test_a_browser_path_in_the_file_name_is_dropped(tmp_path):
    unpack([upload("C:\\Users\\ed\\..\\story.txt", b"text")], tmp_path / "up", **LIMITS)
    assert files_under(tmp_path / "up") == ["000/story.txt"]


@pytest.mark.parametrize(
    "member",
    ["../escape.txt", "/etc/cron.d/evil.txt", "a/../../escape.txt", "C:/windows/evil.txt", "back\\slash.txt", "bad\x1bname.txt"],
)
def test_unsafe_member_paths_are_refused_and_nothing_is_left(tmp_path, member):
    archive = zipped({"good.txt": b"fine", member: b"evil"})
    with pytest.raises(UploadError, match="unsafe path"):
        unpack([upload("batch.zip", archive)], tmp_path / "up", **LIMITS)
    assert not (tmp_path / "up").exists()
    assert not (tmp_path / "escape.txt").exists()


def test_links_inside_an_archive_are_refused(tmp_path):
    with pytest.raises(UploadError, match="links inside archives"):
        unpack([upload("batch.zip", zipped({"good.txt": b"x"}, symlinks=["passwd.txt"]))], tmp_path / "up", **LIMITS)
    assert not (tmp_path / "up").exists()


def test_a_zip_bomb_is_refused_from_its_declared_size(tmp_path):
    bomb = zipped({f"part{n}.txt": b"\0" * (4 * 1024 * 1024) for n in range(5)})  # 20 MB of zeros, tiny zip
    assert len(bomb) < 100_000
    with pytest.raises(UploadError, match="unpacks to 20,971,520 bytes"):
        unpack([upload("bomb.zip", bomb)], tmp_path / "up", **LIMITS)
    assert not (tmp_path / "up").exists()


def test_a_member_larger_than_a_seed_may_be_is_refused(tmp_path):
    big = zipped({"big.txt": b"a" * (MAX_SEED_BYTES + 1)})
    with pytest.raises(UploadError, match="a seed file is at most"):
        unpack([upload("big.zip", big)], tmp_path / "up", max_bytes=50 * 1024 * 1024, max_files=5)


def test_bytes_are_counted_as_written_whatever_an_archive_declares(tmp_path):
    """A lying header cannot get past the budget: the copy itself counts."""
    budget = _Budget(max_bytes=10, max_files=5)
    with pytest.raises(UploadError, match="more than the size limit"):
        _copy_limited(io.BytesIO(b"x" * 20), tmp_path / "out.txt", "lying.txt", budget)
    with pytest.raises(UploadError, match="a seed file is at most"):
        _copy_limited(io.BytesIO(b"x" * 20), tmp_path / "out2.txt", "lying.txt", _Budget(100, 5), limit=10)


@pytest.mark.parametrize(
    "uploads, reason",
    [
        ([upload("photo.jpg", b"\xff\xd8")], "only .txt seed files and .zip"),
        ([upload("broken.zip", b"PK\x03\x04 not really")], "not a readable zip archive"),
        ([upload("empty.zip", zipped({"notes.md": b"x"}))], "no .txt seed files"),
        ([upload(f"s{n}.txt", b"x") for n in range(51)], "too many files"),
        ([upload("huge.txt", b"x" * 100)], "100 bytes; the limit is 99"),
    ],
    ids=["not-a-seed", "bad-zip", "no-seeds", "too-many", "too-large"],
)
def test_bad_uploads_are_refused_with_a_reason(tmp_path, uploads, reason):
    limits = {**LIMITS, "max_bytes": 99} if reason.startswith("100 bytes") else LIMITS
    with pytest.raises(UploadError, match=reason):
        unpack(uploads, tmp_path / "up", **limits)
    assert not (tmp_path / "up").exists()
