"""The seed parser: every rule, and every kind of bad input, without a database."""

import hashlib
import pickle
from pathlib import Path

import pytest

from articles.seeds import MAX_SEED_BYTES, SeedError, default_summary, parse_seed

SEEDS_DIR = Path(__file__).resolve().parent.parent / "seeds"

GOOD = (
    "A Title\n"
    "\n"
    "Originally published at: A Title | The Publisher\n"
    "\n"
    "First paragraph.\n"
    "\n"
    "Second paragraph\n"
    "with a second line.\n"
    "\n"
    "Read the full report at Some Outlet.\n"
)


def parse(text: str | bytes, name: str = "story.txt"):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_seed(data, Path("/seeds") / name)


def test_the_real_seed_file():
    (path,) = SEEDS_DIR.glob("000_*.txt")
    seed = parse_seed(path.read_bytes(), path)
    assert seed.title == "LIFELINE LOST? Russia Withdraws Key Military Support for Venezuela’s Socialist Regime"
    assert seed.publisher == "Sean Hannity"
    assert seed.cited_outlet == "Fox News"
    assert len(seed.body.split("\n\n")) == 8
    assert seed.identity == "000_8394c518063b806e"
    assert seed.warnings == ()
    assert seed.summary.startswith("Russia withdrew key military advisers")


def test_good_seed_fields_and_metadata_are_not_body():
    seed = parse(GOOD)
    assert seed.title == "A Title"
    assert seed.publisher == "The Publisher"
    assert seed.cited_outlet == "Some Outlet"
    assert seed.body == "First paragraph.\n\nSecond paragraph\nwith a second line."
    assert "Originally published" not in seed.body and "Read the full report" not in seed.body
    assert seed.summary == "First paragraph."
    assert seed.identity == "story"
    assert seed.warnings == ()


def test_hash_is_of_the_normalised_text():
    seed = parse(GOOD)
    assert seed.sha256 == hashlib.sha256(GOOD.strip("\n").encode()).hexdigest()


@pytest.mark.parametrize(
    "variant",
    [
        GOOD.replace("\n", "\r\n"),
        GOOD.replace("\n", "\r"),
        GOOD.replace("\n", "  \t\n"),
        "\ufeff" + GOOD,
        "\n\n" + GOOD + "\n\n\n",
    ],
    ids=["crlf", "cr", "trailing-whitespace", "bom", "surrounding-blank-lines"],
)
def test_line_endings_bom_and_trailing_whitespace_are_normalised(variant):
    reference = parse(GOOD)
    seed = parse(variant)
    assert (seed.title, seed.body, seed.publisher, seed.cited_outlet) == (
        reference.title,
        reference.body,
        reference.publisher,
        reference.cited_outlet,
    )
    # Same text once normalised: the importer treats the variant as a duplicate, not new content.
    assert seed.sha256 == reference.sha256


def test_cp1252_falls_back_with_a_warning():
    data = GOOD.replace("First paragraph.", "Caf\u00e9 \u201cquoted\u201d \u20ac5.").encode("cp1252")
    seed = parse(data)
    assert seed.body.startswith("Café “quoted” €5.")
    assert any("cp1252" in warning for warning in seed.warnings)


def test_control_characters_are_removed_but_text_kept():
    seed = parse(GOOD.replace("First paragraph.", "First\x07 para\x1bgraph.\x0c"))
    assert seed.body.startswith("First paragraph.")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"   \n\n \t \r\n", "empty"),
        (b"Just a title\n", "no body text"),
        (b"Title\n\nOriginally published at: Title | Pub\n", "no body text"),
        (b"Title\n\nOriginally published at: Title | Pub\n\nRead the full report at Fox News.\n", "no body text"),
        (GOOD.replace("A Title\n", "x" * 301 + "\n", 1).encode(), "title (line 1) is 301 characters"),
        (b"Title\x00\n\nBody\n", "NUL bytes"),
        ("Title\n\nBody\n".encode("utf-16"), "UTF-16"),
        (b"Title\n\nBody \x81\x8d\xff\n", "not valid UTF-8"),
        (b"Originally published at: Title | Pub\n\nBody.\n", "title is missing"),
        (GOOD.replace("The Publisher", "P" * 201).encode(), "publisher name is 201 characters"),
    ],
    ids=[
        "empty",
        "whitespace-only",
        "title-only",
        "metadata-only",
        "metadata-and-cited-only",
        "title-too-long",
        "nul-byte",
        "utf16",
        "undecodable",
        "missing-title-line",
        "publisher-too-long",
    ],
)
def test_bad_input_is_rejected_with_the_file_and_reason(data, reason):
    with pytest.raises(SeedError) as caught:
        parse(data, name="bad.txt")
    assert caught.value.path == "/seeds/bad.txt"
    assert reason in caught.value.reason
    assert str(caught.value).startswith("/seeds/bad.txt: ")


def test_file_over_five_megabytes_is_rejected():
    data = b"Title\n\n" + b"word " * (MAX_SEED_BYTES // 5 + 1)
    with pytest.raises(SeedError, match="limit is 5,242,880"):
        parse(data)


def test_title_of_exactly_300_characters_is_accepted():
    assert len(parse(GOOD.replace("A Title", "t" * 300, 1)).title) == 300


def test_missing_origin_line_imports_without_source_and_warns():
    seed = parse("A Title\n\nJust a paragraph.\n")
    assert seed.publisher is None
    assert seed.body == "Just a paragraph."
    assert any("no “Originally published at” line" in w for w in seed.warnings)


@pytest.mark.parametrize(
    "line", ["Originally published at: A Title", "Originally published at: A Title | ", "Originally published at:"]
)
def test_origin_line_without_publisher_warns(line):
    seed = parse(GOOD.replace("Originally published at: A Title | The Publisher", line))
    assert seed.publisher is None
    assert "Originally published" not in seed.body
    assert any("names no publisher" in w for w in seed.warnings)


def test_origin_line_splits_on_the_last_separator():
    seed = parse(GOOD.replace("A Title | The Publisher", "A Title | With a Pipe | The Publisher").replace("A Title\n", "A Title | With a Pipe\n", 1))
    assert seed.publisher == "The Publisher"
    assert seed.title == "A Title | With a Pipe"
    assert seed.warnings == ()


def test_origin_title_differing_from_line_one_keeps_line_one_and_warns():
    seed = parse(GOOD.replace("Originally published at: A Title", "Originally published at: Another Title"))
    assert seed.title == "A Title"
    assert seed.publisher == "The Publisher"
    assert any("differs from line 1" in w for w in seed.warnings)


def test_origin_line_is_matched_case_insensitively():
    seed = parse(GOOD.replace("Originally published at:", "ORIGINALLY PUBLISHED AT :"))
    assert seed.publisher == "The Publisher"


def test_cited_line_only_counts_as_the_final_paragraph():
    text = GOOD.replace("First paragraph.", "Read the full report at Not Metadata.")
    seed = parse(text)
    assert seed.body.startswith("Read the full report at Not Metadata.")
    assert seed.cited_outlet == "Some Outlet"


def test_cited_line_without_final_period():
    seed = parse(GOOD.replace("Read the full report at Some Outlet.", "Read the full report at Some Outlet"))
    assert seed.cited_outlet == "Some Outlet"


def test_markup_is_kept_as_text():
    payload = "<script>alert(1)</script> <img src=x onerror=alert(2)> {{ settings.SECRET_KEY }} {% now 'Y' %}"
    seed = parse(GOOD.replace("First paragraph.", payload))
    assert payload in seed.body
    assert seed.title == "A Title"


def test_summary_is_cut_at_a_word_boundary():
    long_paragraph = "word " * 200
    summary = default_summary(long_paragraph)
    assert summary.endswith("…")
    assert len(summary) <= 280
    assert "  " not in summary and not summary[:-1].endswith(" ")


def test_seed_error_survives_pickling_between_processes():
    error = pickle.loads(pickle.dumps(SeedError("/x.txt", "reason")))
    assert (error.path, error.reason, str(error)) == ("/x.txt", "reason", "/x.txt: reason")
