"""The importer as a hostile user meets it: links out of the seed folders, FIFOs, half-written files,
terminal escapes in file names, and the progress bar on a real pseudo-terminal."""

import os
import pty
import signal
import socket
import stat
import threading
import time
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from articles import seed_files
from articles.models import Article, ImportOutcome, ImportRun
from articles.search import search_articles
from articles.seed_files import SeedFile, display_path, read_seed_file

from .test_importing import run, seed_text, summary_line, write

pytestmark = pytest.mark.django_db

SECRET = "DJANGO_SECRET_KEY=do-not-publish-me-1234567890"


@contextmanager
def fails_instead_of_hanging(seconds=10):
    """A blocking open would hang the suite; make it a failure instead."""

    def hung(signum, frame):
        raise AssertionError(f"the import blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_nothing_published(text):
    assert not Article.objects.filter(body__contains=text).exists()
    assert not Article.objects.filter(title__contains=text).exists()


# --- 1. Links out of the seed folders ------------------------------------------------------------


def secret_file(tmp_path) -> Path:
    return write(tmp_path / "elsewhere", "secrets.txt", f"Secrets\n\n{SECRET}\n")


@pytest.mark.parametrize(
    "make_link",
    [
        pytest.param(lambda seeds, secret: (seeds / "passwd.txt").symlink_to("/etc/passwd"), id="link-to-etc-passwd"),
        pytest.param(lambda seeds, secret: (seeds / "key.txt").symlink_to(secret), id="link-to-secret-file"),
        pytest.param(
            lambda seeds, secret: (seeds / "key.txt").symlink_to(os.path.relpath(secret, seeds)), id="relative-link-out"
        ),
        pytest.param(lambda seeds, secret: (seeds / "folder").symlink_to(secret.parent), id="link-to-outside-folder"),
        pytest.param(
            lambda seeds, secret: ((seeds / "sub").mkdir(), (seeds / "sub" / "up").symlink_to(secret.parent)),
            id="nested-link-to-outside-folder",
        ),
    ],
)
def test_links_out_of_the_seed_folders_are_rejected_and_never_read(tmp_path, make_link):
    seeds = tmp_path / "seeds"
    write(seeds, "good.txt", seed_text(title="Good"))
    secret = secret_file(tmp_path)
    make_link(seeds, secret)
    stdout, stderr, status = run(seeds)
    assert status == 1
    assert "points outside the seed folders" in stderr
    assert "rejected 1" in summary_line(stdout)
    assert list(Article.objects.values_list("title", flat=True)) == ["Good"]
    assert_nothing_published("DJANGO_SECRET_KEY")
    assert_nothing_published("root:")
    assert not search_articles("DJANGO_SECRET_KEY").exists()


def test_a_link_inside_the_folders_is_imported_once_where_it_lives(tmp_path):
    seeds = tmp_path / "seeds"
    write(seeds / "real", "story.txt", seed_text(title="Story"))
    (seeds / "alias.txt").symlink_to(seeds / "real" / "story.txt")
    (seeds / "again").symlink_to(seeds / "real")
    stdout, stderr, status = run(seeds)
    assert status == 0, stderr
    assert summary_line(stdout).startswith("created 1,")
    assert Article.objects.get().seed_identity == "story"


def test_a_file_named_on_the_command_line_may_be_a_link(tmp_path):
    """The operator named it: the link is theirs to follow (and only that file is read)."""
    target = write(tmp_path / "wire", "story.txt", seed_text(title="Named"))
    (tmp_path / "named.txt").symlink_to(target)
    _, stderr, status = run(tmp_path / "named.txt")
    assert status == 0, stderr
    assert Article.objects.get().title == "Named"


def test_a_link_swapped_in_after_the_walk_is_not_followed(tmp_path):
    seeds = tmp_path / "seeds"
    path = write(seeds, "story.txt", seed_text())
    secret = secret_file(tmp_path)
    seed_file = SeedFile(path=path, allowed=seeds.resolve())
    path.unlink()
    path.symlink_to(secret)  # after the walk saw a regular file
    with pytest.raises(seed_files.SeedError, match="symbolic link"):
        read_seed_file(seed_file, settle_seconds=0)


def test_a_folder_swapped_for_a_link_after_the_walk_is_caught(tmp_path):
    seeds = tmp_path / "seeds"
    path = write(seeds / "sub", "secrets.txt", seed_text())
    secret = secret_file(tmp_path)
    seed_file = SeedFile(path=path, allowed=seeds.resolve())
    (seeds / "sub" / "secrets.txt").unlink()
    (seeds / "sub").rmdir()
    (seeds / "sub").symlink_to(secret.parent)  # the last component is a real file: O_NOFOLLOW alone passes it
    with pytest.raises(seed_files.SeedError, match="points outside the seed folders"):
        read_seed_file(seed_file, settle_seconds=0)


# --- 2. Files that are not regular files ------------------------------------------------------------


def make_fifo(path):
    os.mkfifo(path)


def make_socket(path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    return server


def make_device(path):
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("this machine does not allow mknod")


@pytest.mark.parametrize("make", [make_fifo, make_socket, make_device], ids=["fifo", "socket", "device"])
@pytest.mark.parametrize("dry_run", [False, True], ids=["import", "dry-run"])
def test_special_files_are_rejected_without_blocking(tmp_path, make, dry_run):
    write(tmp_path, "good.txt", seed_text(title="Good"))
    keep = make(tmp_path / "special.txt")
    with fails_instead_of_hanging():
        stdout, stderr, status = run(tmp_path, dry_run=dry_run)
    assert status == 1
    assert f"{tmp_path / 'special.txt'}: not a regular file" in stderr
    assert "created 1," in summary_line(stdout)
    if keep is not None:
        keep.close()


# --- 3. Files still being written ---------------------------------------------------------------------


def test_a_file_open_for_writing_is_skipped_and_the_stored_article_untouched(tmp_path):
    path = write(tmp_path, "story.txt", seed_text(title="Old title", paragraphs=("The whole old story.",)), mtime=1e9)
    run(tmp_path)
    article = Article.objects.get()
    with path.open("w") as writer:  # the wire service starts replacing the file and pauses
        writer.write("New title\n\nOriginally published at: New title | The Publisher\n\nThe first half")
        writer.flush()
        stdout, stderr, status = run(tmp_path)
        assert status == 0, stderr
        assert f"{path}: still being written; skipped" in stderr
        assert summary_line(stdout) == (
            "created 0, updated 0, unchanged 0, conflicts 0, duplicates 0, skipped 1, rejected 0"
        )
        writer.write(" and the second half.\n")
    os.utime(path, (1e9, 1e9))
    article.refresh_from_db()
    assert article.title == "Old title"
    stdout, _, status = run(tmp_path)
    assert status == 0
    article.refresh_from_db()
    assert article.title == "New title"
    assert article.body == "The first half and the second half."


def test_a_file_modified_within_the_settle_time_is_left_for_the_next_run(tmp_path, settings):
    settings.NEWSROOM_IMPORT_SETTLE_SECONDS = 30
    fresh = write(tmp_path, "fresh.txt", seed_text(title="Fresh"))  # written just now, writer gone
    write(tmp_path, "settled.txt", seed_text(title="Settled"), mtime=time.time() - 60)
    write(tmp_path, "scheduled.txt", seed_text(title="Scheduled"), mtime=time.time() + 3600)
    stdout, stderr, status = run(tmp_path)
    assert status == 0
    assert f"{fresh}: still being written; skipped" in stderr
    assert set(Article.objects.values_list("title", flat=True)) == {"Settled", "Scheduled"}
    os.utime(fresh, (time.time() - 60,) * 2)
    run(tmp_path)
    assert Article.objects.filter(title="Fresh").exists()


def test_a_file_that_changes_while_it_is_read_is_skipped(tmp_path, monkeypatch):
    path = write(tmp_path, "story.txt", seed_text())
    real_fstat = os.fstat
    calls = []

    def growing_fstat(fd):
        result = real_fstat(fd)
        calls.append(fd)
        if len(calls) == 2:  # the check after reading sees a larger file
            values = list(result)
            values[stat.ST_SIZE] += 100
            return os.stat_result(values)
        return result

    monkeypatch.setattr(seed_files.os, "fstat", growing_fstat)
    with pytest.raises(seed_files.StillBeingWritten):
        read_seed_file(SeedFile(path=path, allowed=tmp_path.resolve()), settle_seconds=0)


# --- 4. File names on the operator's terminal ----------------------------------------------------------


@pytest.mark.parametrize(
    "name, shown",
    [
        ("red\x1b[31mALERT\x1b[0m.txt", "red\\x1b[31mALERT\\x1b[0m.txt"),
        ("forged\nok.txt: created.txt", "forged\\nok.txt: created.txt"),
        ("carriage\rreturn.txt", "carriage\\rreturn.txt"),
        ("bidi\u202etxt.exe.txt", "bidi\\u202etxt.exe.txt"),
        ("back\\slash.txt", "back\\\\slash.txt"),
    ],
)
def test_file_names_are_printed_escaped_on_one_line(tmp_path, name, shown):
    write(tmp_path, name, b"")  # empty: rejected, so its name is printed
    write(tmp_path, "good.txt", seed_text())
    stdout, stderr, status = run(tmp_path, verbosity=2)
    assert status == 1
    rejection = [line for line in stderr.splitlines() if "file is empty" in line or "empty" in line]
    assert rejection == [f"{tmp_path}/{shown}: " + rejection[0].split(f"{shown}: ", 1)[1]]
    assert "\x1b" not in stdout + stderr and "\r" not in stdout + stderr and "\u202e" not in stdout + stderr
    assert len(stderr.splitlines()) == 2  # the rejection and the closing "1 file(s) rejected"
    run_record = ImportRun.objects.get()
    assert ImportOutcome.objects.get(run=run_record, outcome="rejected").path == f"{tmp_path}/{shown}"


def test_a_file_name_that_is_not_utf8_is_rejected_by_name(tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    with open(raw, "wb") as handle:
        handle.write(seed_text().encode())
    write(tmp_path, "good.txt", seed_text(title="Good"))
    stdout, stderr, status = run(tmp_path)
    assert status == 1
    assert f"{tmp_path}/caf\\xe9.txt: the file name is not valid UTF-8; rename the file" in stderr
    assert list(Article.objects.values_list("title", flat=True)) == ["Good"]


def test_display_path_leaves_ordinary_names_alone():
    assert display_path("seeds/Zürich — 東京 report.txt") == "seeds/Zürich — 東京 report.txt"


# --- 5. The progress bar on a real terminal ---------------------------------------------------------------


def test_progress_bar_redraws_in_place_on_a_terminal(tmp_path):
    for index in range(30):
        write(tmp_path, f"story-{index:02d}.txt", seed_text(title=f"Story {index}"))
    write(tmp_path, "bad.txt", b"")
    primary, secondary = pty.openpty()
    chunks = []
    reader = threading.Thread(target=lambda: _drain(primary, chunks), daemon=True)
    reader.start()
    terminal = os.fdopen(secondary, "w", buffering=1)
    stdout = StringIO()
    try:
        call_command("import_seeds", str(tmp_path), stdout=stdout, stderr=terminal)
    except Exception:  # one file is rejected: exit status 1
        pass
    terminal.close()
    reader.join(timeout=5)
    os.close(primary)
    shown = b"".join(chunks).decode()
    bars = [part for part in shown.split("\r") if part.startswith("[")]
    assert bars, shown
    assert bars[-1].startswith("[" + "#" * 30 + "] 31/31 files")
    for bar in bars:  # redrawn with a carriage return, never a new line, never in the error colour
        assert "\n" not in bar and "\x1b[31" not in bar
    assert shown.count("\n") == 1  # the rejected file's line, alone on its line
    assert f"\n{tmp_path / 'bad.txt'}: file is empty\r\n" in "\n" + shown


def _drain(fd, chunks):
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            return
        if not data:
            return
        chunks.append(data)
