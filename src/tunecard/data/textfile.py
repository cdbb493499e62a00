"""Open a data file as text: encoding, BOM, line endings, binary and empty files.

Every reader goes through :func:`read_text_file` so that these problems give the same error everywhere.
Lines are split on ``\\n`` only (after turning CRLF, or CR in a file without LF, into LF): ``str.splitlines``
would also split on form feeds, ``\\x1c``-``\\x1e``, NEL and U+2028, which can occur inside tokens and would
shift line numbers.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path

from tunecard.errors import DataError

_UTF8_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_ENCODING_FIX = (
    "save the file as UTF-8, or give its encoding, e.g. --encoding latin-1 (ReadOptions(encoding='latin-1'))."
)


@dataclass
class TextFile:
    """A decoded data file."""

    path: str
    text: str  # BOM removed, CRLF turned into LF
    encoding: str
    warnings: list[str] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        """The lines without line endings; ``lines[i]`` is line ``i + 1`` of the file."""
        lines = self.text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final newline does not start a line
        return lines


def read_text_file(path: str | Path, encoding: str | None = None) -> TextFile:
    """Read and decode ``path``, raising a :class:`DataError` that says how to fix any problem.

    Args:
        path: the file to read.
        encoding: its encoding; ``None`` means UTF-8 (a UTF-8 BOM is accepted with a warning).

    Raises:
        DataError: E107 missing file, E102 binary file (NUL bytes), E101 not decodable, E103 empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("E107", "file not found", path=path,
                        fix="check the path (it is relative to the current folder).")
    data = path.read_bytes()
    warnings: list[str] = []
    if encoding is None:
        if data.startswith(_UTF16_BOMS):
            raise DataError("E101", "file is UTF-16 (it starts with a UTF-16 byte order mark), not UTF-8", path=path,
                            line=1, fix="save it as UTF-8, or pass --encoding utf-16.")
        if data.startswith(_UTF8_BOM):
            data = data[len(_UTF8_BOM):]
            warnings.append(f"{path}: starts with a UTF-8 byte order mark (BOM); it was ignored.")
        _reject_binary(path, data)
    text = _decode(path, data, encoding or "utf-8")
    if encoding is not None and text.startswith("\ufeff"):
        text = text[1:]
        warnings.append(f"{path}: starts with a byte order mark (BOM); it was ignored.")
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
        warnings.append(f"{path}: has Windows (CRLF) line endings; they were read as LF.")
    elif "\r" in text and "\n" not in text:
        # Classic Mac line endings: read as one huge line, every sentence would merge into one.
        text = text.replace("\r", "\n")
        warnings.append(f"{path}: has old Mac (CR) line endings; they were read as LF.")
    if not text.strip():
        raise DataError("E103", "empty split: the file has no examples (it is empty or only blank lines)", path=path,
                        fix="point to the right file, or leave this split out.")
    return TextFile(path=str(path), text=text, encoding=encoding or "utf-8", warnings=warnings)


def preview(value: object, limit: int = 80) -> str:
    """``repr`` of a value read from a file, cut to ``limit`` characters: a 1 MB line must not become a 1 MB
    error message.

    Args:
        value: a token, tag, label, JSON value or list of names.
        limit: most characters kept.
    """
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}... ({len(text)} characters)"


def _reject_binary(path: Path, data: bytes) -> None:
    """NUL bytes never occur in UTF-8 text files; they mean a binary file (or UTF-16/32 without a BOM)."""
    position = data.find(b"\x00")
    if position >= 0:
        line = data.count(b"\n", 0, position) + 1
        raise DataError(
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
