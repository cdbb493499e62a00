"""Open a data file as text: encoding, BOM, line endings, binary and empty files.

Every reader goes through :func:`read_text_file` so that these problems give the same error everywhere.
Lines are split on ``\\n`` only (after turning CRLF, or CR in a file without LF, into LF): ``str.splitlines``
would also split on form feeds, ``\\x1c``-``\\x1e``, NEL and U+2028, which can occur inside tokens and would
shift line numbers.

A file is read in one of two ways, with the same checks, errors, warnings and lines:

* whole (the default): decoded once and its lines held, so readers that go over it several times read memory;
* streamed (``stream=True``): checked in one pass over 1 MiB blocks, then each pass over the lines reads the
  file again, so nothing of the file is held (``tunecard evaluate`` on a large file).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tunecard.errors import DataError

_UTF8_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_BLOCK = 1 << 20
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_ENCODING_FIX = (
    "save the file as UTF-8, or give its encoding, e.g. --encoding latin-1 (ReadOptions(encoding='latin-1'))."
)
# Codecs whose reading of UTF-8 bytes is UTF-8 itself: no mojibake to warn about.
_UTF8_NAMES = {"utf-8", "utf-8-sig"}


@dataclass
class TextFile:
    """A decoded data file: its lines, without line endings, from :meth:`iter_lines` (line ``i + 1`` is the
    ``i``-th), as often as needed."""

    path: str
    encoding: str
    warnings: list[str] = field(default_factory=list)
    held_lines: list[str] | None = None  # a whole read: every line (BOM removed, CRLF read as LF); None: streamed
    _codec: str = "utf-8"  # what to open the file with when streamed (utf-8-sig skips a BOM)
    _strip_bom: bool = False  # streamed with a given encoding: the text starts with U+FEFF, to be dropped
    _cr_only: bool = False  # streamed: old Mac line endings (CR, no LF anywhere)

    @property
    def streamed(self) -> bool:
        return self.held_lines is None

    def iter_lines(self) -> Iterator[str]:
        """The lines without line endings; streamed files are read again from disk at every call."""
        if self.held_lines is not None:
            yield from self.held_lines
            return
        with open(self.path, encoding=self._codec, newline="\n") as handle:
            if self._cr_only:  # no LF at all: one line as far as the file object knows
                text = handle.read()
                yield from _split_lines((text[1:] if self._strip_bom else text).replace("\r", "\n"))
                return
            first = True
            for raw in handle:
                if first:
                    first = False
                    if self._strip_bom:
                        raw = raw[1:]
                if raw.endswith("\n"):
                    raw = raw[:-2] if raw.endswith("\r\n") else raw[:-1]
                yield raw


def _split_lines(text: str) -> list[str]:
    """Lines of a text whose line endings are LF."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline does not start a line
    return lines


# Files that are not text but hold it, by their first bytes: (magic, what it is, the fix). None of these byte
# sequences starts a text file (control characters, or bytes that are not UTF-8), PAR1 excepted: it is followed
# by a binary byte in a Parquet file, checked below.
_CONTAINERS = (
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip FILE)"),
    (b"PK\x03\x04", "a zip archive (an .xlsx, .ods or .docx file is one)",
     "unzip it, or export the sheet as CSV (File > Save as > CSV UTF-8)"),
    (b"PK\x05\x06", "an empty zip archive", "point to the text file"),
    (b"BZh", "bzip2-compressed", "decompress it first (bunzip2 FILE)"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz FILE)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first (unzstd FILE)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract it first (7z x FILE)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office file (.xls, .doc)", "export the sheet as CSV (UTF-8)"),
    (b"PAR1", "a Parquet file", "export it as JSON Lines or CSV (pandas: read_parquet(FILE).to_json(OUT, "
     "orient='records', lines=True)), or save it with datasets (save_to_disk) and pass that folder"),
)


def container_error(head: bytes, name: str | Path) -> DataError | None:
    """E102 when the first bytes of an input say it is compressed or an archive (gzip, zip/xlsx, Parquet, ...),
    whatever encoding was asked for (latin-1 would decode any bytes); None for anything else."""
    for magic, what, fix in _CONTAINERS:
        if head.startswith(magic):
            if magic == b"BZh" and not (head[3:4].isdigit() and head[4:10] == b"1AY&SY"):
                continue
            if magic == b"PAR1" and (len(head) < 5 or head[4] >= 0x20 or head[4] in b"\t\n\r"):
                continue
            return DataError("E102", f"not a text data file: it is {what}", path=name, line=1, fix=f"{fix}.")
    return None


def read_text_file(path: str | Path, encoding: str | None = None, stream: bool = False) -> TextFile:
    """Read and decode ``path``, raising a :class:`DataError` that says how to fix any problem.

    Args:
        path: the file to read.
        encoding: its encoding; ``None`` means UTF-8 (a UTF-8 BOM is accepted with a warning).
        stream: check the file in blocks and hold nothing of it; its lines are read again at every pass.

    Raises:
        DataError: E107 missing file, E102 binary file (NUL bytes), E101 not decodable, E103 empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("E107", "file not found", path=path,
                        fix="check the path (it is relative to the current folder).")
    with open(path, "rb") as handle:
        container = container_error(handle.read(16), path)
    if container is not None:
        raise container
    if stream and _line_safe(encoding):
        try:
            return _scan(path, encoding)
        except UnicodeError:  # a codec whose block-by-block decoding fails: the whole read locates the error
            pass
    data = path.read_bytes()
    warnings: list[str] = []
    if encoding is None:
        if data.startswith(_UTF16_BOMS):
            raise _utf16_error(path)
        if data.startswith(_UTF8_BOM):
            data = data[len(_UTF8_BOM):]
            warnings.append(f"{path}: starts with a UTF-8 byte order mark (BOM); it was ignored.")
        _reject_binary(path, data)
    else:
        _lookup(path, encoding)
    text = _decode(path, data, encoding or "utf-8")
    if encoding is not None:
        warnings.extend(_mojibake_warnings(path, encoding, data))
        if text.startswith("\ufeff"):
            text = text[1:]
            warnings.append(f"{path}: starts with a byte order mark (BOM); it was ignored.")
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
        warnings.append(_CRLF.format(path=path))
    elif "\r" in text and "\n" not in text:
        # Classic Mac line endings: read as one huge line, every sentence would merge into one.
        text = text.replace("\r", "\n")
        warnings.append(_CR.format(path=path))
    if not text.strip():
        raise _empty_error(path)
    return TextFile(path=str(path), held_lines=_split_lines(text), encoding=encoding or "utf-8", warnings=warnings)


_CRLF = "{path}: has Windows (CRLF) line endings; they were read as LF."
_CR = "{path}: has old Mac (CR) line endings; they were read as LF."


def _scan(path: Path, encoding: str | None) -> TextFile:
    """The checks of a whole read, block by block: BOMs, NUL bytes, decoding, line endings, blank files."""
    warnings: list[str] = []
    codec = encoding or "utf-8"
    if encoding is not None:
        _lookup(path, encoding)
    decoder = codecs.getincrementaldecoder(codec)()
    utf8 = codecs.getincrementaldecoder("utf-8")() if encoding is not None and not _is_utf8(encoding) else None
    utf8_valid, non_ascii = True, None  # for the mojibake check: the first non-ASCII bytes' place
    has_crlf = has_cr = has_lf = content = False
    previous_cr = False
    newlines = 0  # LF bytes before the current block, for the line of a NUL byte
    first = True
    strip_bom = False
    consumed = 0
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_BLOCK)
            final = not block
            if first and encoding is None:
                if block.startswith(_UTF16_BOMS):
                    raise _utf16_error(path)
                if block.startswith(_UTF8_BOM):
                    block = block[len(_UTF8_BOM):]
                    codec = "utf-8-sig"
                    warnings.append(f"{path}: starts with a UTF-8 byte order mark (BOM); it was ignored.")
            if encoding is None and b"\x00" in block:
                position = block.index(b"\x00")
                line = newlines + block.count(b"\n", 0, position) + 1
                raise _binary_error(path, consumed + position, line)
            newlines += block.count(b"\n")
            if utf8 is not None and utf8_valid:
                if non_ascii is None and not block.isascii():
                    non_ascii = _word_at(block, _NON_ASCII.search(block).start())
                try:
                    utf8.decode(block, final)
                except UnicodeDecodeError:
                    utf8_valid = False
            chunk = decoder.decode(block, final)  # an error: read_text_file reads it whole to locate it
            if first and encoding is not None and chunk.startswith("\ufeff"):
                chunk = chunk[1:]
                strip_bom = True
                warnings.append(f"{path}: starts with a byte order mark (BOM); it was ignored.")
            if chunk:
                first = False
                has_crlf = has_crlf or "\r\n" in chunk or (previous_cr and chunk[0] == "\n")
                has_cr = has_cr or "\r" in chunk
                has_lf = has_lf or "\n" in chunk
                content = content or bool(chunk.strip())
                previous_cr = chunk[-1] == "\r"
            consumed += len(block)
            if final:
                break
    if utf8 is not None and utf8_valid and non_ascii is not None:
        warnings.append(_mojibake_message(path, encoding, non_ascii))
    if has_crlf:
        warnings.append(_CRLF.format(path=path))
    elif has_cr and not has_lf:
        warnings.append(_CR.format(path=path))
    if not content:
        raise _empty_error(path)
    return TextFile(path=str(path), encoding=encoding or "utf-8", warnings=warnings, _codec=codec,
                    _strip_bom=strip_bom, _cr_only=has_cr and not has_lf)


def _line_safe(encoding: str | None) -> bool:
    """Whether a file in this encoding can be read line by line at LF bytes (not UTF-16/32, not EBCDIC)."""
    try:
        return encoding is None or " \r\n".encode(encoding) == b" \r\n"
    except (LookupError, UnicodeError):
        return False


def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name in _UTF8_NAMES
    except LookupError:
        return False


def _lookup(path: Path, encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError("E101", f"unknown encoding {encoding!r}", path=path,
                        fix="use a Python codec name such as utf-8, latin-1, cp1252 or gb18030.") from None


def _word_at(data: bytes, position: int) -> bytes:
    """The whitespace-delimited word of ``data`` around ``position`` (at most 40 bytes each side)."""
    start = position
    while start > 0 and position - start < 40 and data[start - 1:start] not in (b" ", b"\t", b"\n", b"\r"):
        start -= 1
    end = position
    while end < len(data) and end - position < 40 and data[end:end + 1] not in (b" ", b"\t", b"\n", b"\r"):
        end += 1
    return data[start:end]


def _mojibake_warnings(path: Path, encoding: str, data: bytes) -> list[str]:
    """A file given as latin-1 (or cp1252, any codec but UTF-8) that is valid UTF-8 with non-ASCII text."""
    if _is_utf8(encoding) or data.isascii():
        return []
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return []
    return [_mojibake_message(path, encoding, _word_at(data, _NON_ASCII.search(data).start()))]


def _mojibake_message(path: Path, encoding: str, word: bytes) -> str:
    as_given = word.decode(encoding, errors="replace")
    as_utf8 = word.decode("utf-8", errors="replace")
    return (f"{path}: read as {encoding} as asked, but the file is valid UTF-8 with non-ASCII text, so it may be "
            f"UTF-8 read wrongly: {preview(as_given)} as {encoding} would be {preview(as_utf8)} as UTF-8. If it is "
            "UTF-8, give this file encoding utf-8 (per split: encoding: {train: latin-1, validation: utf-8}).")


def _utf16_error(path: Path) -> DataError:
    return DataError("E101", "file is UTF-16 (it starts with a UTF-16 byte order mark), not UTF-8", path=path,
                     line=1, fix="save it as UTF-8, or pass --encoding utf-16.")


def _empty_error(path: Path) -> DataError:
    return DataError("E103", "empty split: the file has no examples (it is empty or only blank lines)", path=path,
                     fix="point to the right file, or leave this split out.")


def preview(value: object, limit: int = 80) -> str:
    """``repr`` of a value read from a file, cut to ``limit`` characters: a 1 MB line must not become a 1 MB
    error message.

    Args:
        value: a token, tag, label, JSON value or list of names.
        limit: most characters kept.
    """
    try:
        text = repr(value)
    except RecursionError:  # a value nested deeper than repr goes: the outer levels are enough
        import reprlib

        text = reprlib.repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}... ({len(text)} characters)"


def _reject_binary(path: Path, data: bytes) -> None:
    """NUL bytes never occur in UTF-8 text files; they mean a binary file (or UTF-16/32 without a BOM)."""
    position = data.find(b"\x00")
    if position >= 0:
        raise _binary_error(path, position, data.count(b"\n", 0, position) + 1)


def _binary_error(path: Path, position: int, line: int) -> DataError:
    return DataError(
        "E102",
        f"binary file: NUL byte at byte offset {position} (line {line}); this is not a text data file",
        path=path,
        line=line,
        fix="point to the text file (CoNLL, JSONL, CSV/TSV); if it is UTF-16 text, pass --encoding utf-16.",
    )


def _decode(path: Path, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except LookupError:
        raise DataError("E101", f"unknown encoding {encoding!r}", path=path,
                        fix="use a Python codec name such as utf-8, latin-1, cp1252 or gb18030.") from None
    except UnicodeDecodeError as error:
        offset = error.start
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        bad = data[offset:offset + 1].hex()
        raise DataError(
            "E101",
            f"not valid {encoding}: byte 0x{bad} at byte offset {offset} (line {line}, byte {column} of the line)",
            path=path,
            line=line,
            fix=_ENCODING_FIX,
        ) from None


