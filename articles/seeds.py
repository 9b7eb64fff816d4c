"""Reading seed files: bytes in, a ``SeedArticle`` or a ``SeedError`` out. No database here.

The format, as it arrives from the wire service::

    <title>

    Originally published at: <title> | <publisher>

    <paragraph>

    <paragraph>

    Read the full report at <outlet>.

Real files are messier than that: other encodings, CRLF or CR line endings, stray control
characters, missing metadata lines. Each rule below either repairs a harmless difference (with a
warning where an editor should know) or rejects the file with a reason a person can act on.
"""

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

MAX_SEED_BYTES = 5 * 1024 * 1024
MAX_TITLE_LENGTH = 300
MAX_SOURCE_NAME_LENGTH = 200
SUMMARY_LENGTH = 280

_ORIGIN_LINE = re.compile(r"^originally published at\s*:\s*(?P<rest>.*)$", re.IGNORECASE)
_CITED_LINE = re.compile(r"^read the full report at\s+(?P<outlet>.+?)\s*\.?$", re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n[ \t]*\n+")
# C0/C1 control characters other than tab and newline: junk from copy-paste and old converters.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")


class SeedError(Exception):
    """A seed file that cannot be imported, with the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        # Errors travel back from the parsing worker process; pickle the two arguments, not the message.
        return (SeedError, (self.path, self.reason))


@dataclass(frozen=True)
class SeedArticle:
    """What a seed file says, normalised and validated."""

    identity: str
    title: str
    summary: str
    body: str
    publisher: str | None
    cited_outlet: str | None
    sha256: str
    warnings: tuple[str, ...] = field(default=())

    def field_values(self) -> dict[str, str | None]:
        """The values in the shape ``Article.seed_field_values()`` returns, for a three-way merge."""
        return {
            "title": self.title,
            "summary": self.summary,
            "body": self.body,
            "source": self.publisher,
            "cited_source": self.cited_outlet,
        }


def seed_identity(path: Path | str) -> str:
    """A seed's identity is its file name without the extension."""
    return Path(path).stem


def decode_seed(data: bytes, path) -> tuple[str, list[str]]:
    """Decode bytes as UTF-8 (BOM optional), falling back to cp1252 with a warning."""
    warnings: list[str] = []
    if len(data) > MAX_SEED_BYTES:
        raise SeedError(path, f"file is {len(data):,} bytes; the limit is {MAX_SEED_BYTES:,} (5 MB)")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SeedError(path, "file is UTF-16 encoded; save it as UTF-8")
    if b"\x00" in data:
        raise SeedError(path, "file contains NUL bytes (a binary file, not a text seed)")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise SeedError(
                path, f"not valid UTF-8 (byte {err.start}) and not valid cp1252 either"
            ) from err
        warnings.append(f"not valid UTF-8 (byte {err.start}); decoded as cp1252")
    return text, warnings


def normalise_line_endings(text: str) -> str:
    """CRLF (Windows, and browsers' textareas) and CR (old Mac) line breaks become LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def first_paragraph(body: str) -> str:
    return next((block for block in _BLANK_LINES.split(body) if block.strip()), "")


def normalise_text(text: str) -> str:
    """One form for every file: LF line endings, NFC, no control junk, no trailing whitespace."""
    text = normalise_line_endings(text)
    text = _CONTROL_CHARS.sub("", text)
    text = unicodedata.normalize("NFC", text)
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n")


def _collapse_spaces(value: str) -> str:
    return _SPACES.sub(" ", value).strip()


def default_summary(first_paragraph: str, limit: int = SUMMARY_LENGTH) -> str:
    """The start of the first paragraph, cut at a word boundary."""
    text = _collapse_spaces(first_paragraph)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-–—") + "…"


def _source_name(value: str, path, what: str) -> str:
    name = _collapse_spaces(value)
    if len(name) > MAX_SOURCE_NAME_LENGTH:
        raise SeedError(path, f"{what} name is {len(name)} characters; the limit is {MAX_SOURCE_NAME_LENGTH}")
    return name


def parse_seed(data: bytes, path: Path | str) -> SeedArticle:
    """Parse one seed file's bytes; raise ``SeedError(path, reason)`` if it cannot be imported."""
    text, warnings = decode_seed(data, path)
    text = normalise_text(text)
    if not text.strip():
        raise SeedError(path, "file is empty")

    blocks = [block.strip("\n") for block in _BLANK_LINES.split(text) if block.strip()]
    title_block = blocks.pop(0)
    title_line, _, rest_of_block = title_block.partition("\n")
    title = _collapse_spaces(title_line)
    if _ORIGIN_LINE.match(title):
        raise SeedError(path, "line 1 is the “Originally published at” line: the title is missing")
    if len(title) > MAX_TITLE_LENGTH:
        raise SeedError(path, f"title (line 1) is {len(title)} characters; the limit is {MAX_TITLE_LENGTH}")
    if rest_of_block.strip():
        # The title ran straight into the next line without a blank line: keep that line as content.
        blocks.insert(0, rest_of_block)

    publisher = None
    if blocks and (origin := _ORIGIN_LINE.match(blocks[0].split("\n", 1)[0])):
        first_block_rest = blocks.pop(0).partition("\n")[2]
        if first_block_rest.strip():
            blocks.insert(0, first_block_rest)
        origin_title, separator, origin_publisher = origin["rest"].rpartition(" | ")
        if not separator:
            origin_title, origin_publisher = origin["rest"], ""
        origin_publisher = origin_publisher.strip()
        if origin_publisher:
            publisher = _source_name(origin_publisher, path, "publisher")
        else:
            warnings.append("“Originally published at” line names no publisher; imported without a source")
        if origin_title.strip() and _collapse_spaces(origin_title) != title:
            warnings.append(
                f"title in “Originally published at” ({_collapse_spaces(origin_title)!r}) differs from line 1; kept line 1"
            )
    else:
        warnings.append("no “Originally published at” line; imported without a source")

    cited_outlet = None
    if blocks and "\n" not in blocks[-1] and (cited := _CITED_LINE.match(blocks[-1])):
        cited_outlet = _source_name(cited["outlet"], path, "cited outlet")
        blocks.pop()

    if not blocks:
        raise SeedError(path, "no body text: at least one paragraph is required after the title")
    body = "\n\n".join(blocks)
    return SeedArticle(
        identity=seed_identity(path),
        title=title,
        summary=default_summary(blocks[0]),
        body=body,
        publisher=publisher,
        cited_outlet=cited_outlet,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        warnings=tuple(warnings),
    )
