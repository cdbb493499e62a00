"""Unlabelled text lines for prediction, read as they arrive (a file, or stdin from a pipe).

`tunecard predict` answers each line as soon as it is read, so it can sit in a pipeline: lines come in groups of
whatever one read returns (one line typed or written by another program, up to thousands from a file), never
waiting for the end of the input. Bytes are decoded with the given encoding; an undecodable byte is a coded
error naming the input, the line and the fix, after every line before it has been given out.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator

from tunecard.data.textfile import container_error
from tunecard.errors import DataError

READ_SIZE = 1 << 16  # bytes asked of one read: a pipe gives at most what is in it, a file this much
DEFAULT_ENCODING = "utf-8"
STDIN = "<stdin>"


def check_encoding(encoding: str | None, name: str) -> str:
    """The codec's name, or E101 for an unknown one (checked before a model is loaded)."""
    try:
        return codecs.lookup(encoding or DEFAULT_ENCODING).name
    except LookupError:
        raise DataError("E101", f"unknown encoding {encoding!r}", path=name,
                        fix="use a Python codec name such as utf-8, latin-1, cp1252 or gb18030.") from None


def line_groups(read: Callable[[int], bytes], name: str, encoding: str | None = None,
                max_lines: int = 1024) -> Iterator[list[str]]:
    """The lines of a byte stream (without line endings), in groups of those available at once.

    Args:
        read: returns up to n bytes, at least one unless the input has ended, without waiting for more than
            one arrival (`BufferedReader.read1`): a line is given out as soon as its newline is read.
        name: the input in error messages (a path, or "<stdin>").
        encoding: a Python codec (default utf-8, where a leading byte order mark is dropped).
        max_lines: most lines per group.

    Raises:
        DataError: E101 for an unknown encoding, or a byte the encoding cannot decode (line and byte named); E102
            for a compressed file or an archive (gzip, zip/xlsx, Parquet, ...), in any encoding.
    """
    codec = check_encoding(encoding, name)
    decoding = "utf-8-sig" if codec == "utf-8" else codec
    decoder = codecs.getincrementaldecoder(decoding)("strict")
    pending = ""  # decoded text after the last newline
    number = 0  # lines given out so far
    offset = 0  # bytes read before this read
    while True:
        data = read(READ_SIZE)
        if offset == 0 and data:
            container = container_error(data[:16], name)
            if container is not None:
                raise container
        state = decoder.getstate()  # (bytes kept from the last read, flags)
        error = None
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:  # give out the lines before the bad byte, then say where it is
            error = exc
            before = codecs.getincrementaldecoder(decoding)("strict")
            before.setstate((b"", state[1]))  # the state before this read, without its undecoded bytes
            text = before.decode(exc.object[:exc.start])
        pending += text
        *complete, pending = pending.split("\n")
        for start in range(0, len(complete), max_lines):
            group = [line[:-1] if line.endswith("\r") else line for line in complete[start:start + max_lines]]
            number += len(group)
            yield group
        if error is not None:
            # the error's offsets count from the bytes kept from the last read, after a BOM the decoder dropped
            bom = decoding == "utf-8-sig" and state[1] and (state[0] + data).startswith(codecs.BOM_UTF8)
            at = offset - len(state[0]) + error.start + (len(codecs.BOM_UTF8) if bom else 0)
            raise _undecodable(error, at, number + 1, pending, codec, name, encoding)
        offset += len(data)
        if not data:
            if pending:
                yield [pending[:-1] if pending.endswith("\r") else pending]
            return


def _undecodable(error: UnicodeDecodeError, offset: int, line: int, before: str, codec: str, name: str,
                 encoding: str | None) -> DataError:
    """E101 for the byte at `offset` (line `line`, after the text `before` on that line), as the readers say it."""
    shown = error.object[error.start:error.start + 1].hex()
    if offset == 0 and error.object.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return DataError("E101", "the input is UTF-16 (it starts with a UTF-16 byte order mark), not UTF-8",
                         path=name, line=1, fix="pass --encoding utf-16, or save it as UTF-8.")
    column = "" if codec.startswith(("utf-16", "utf-32")) else \
        f", byte {len(before.encode(codec, errors='replace')) + 1} of the line"
    return DataError("E101", f"not valid {encoding or DEFAULT_ENCODING}: byte 0x{shown} at byte offset {offset} "
                     f"(line {line}{column})", path=name, line=line,
                     fix="give its encoding, e.g. --encoding latin-1, or save it as UTF-8.")


def document_groups(groups: Iterator[list[str]]) -> Iterator[list[str]]:
    """Documents from groups of lines (`line_groups`): blank (or whitespace-only) lines separate documents, the
    lines of a document are joined with \\n. Each group of documents is given out as soon as its last document
    is complete (a blank line after it, or the end of the input), so `predict --document` answers a document
    when it ends; runs of blank lines make no empty documents."""
    lines: list[str] = []
    for group in groups:
        complete = []
        for line in group:
            if line.strip():
                lines.append(line)
            elif lines:
                complete.append("\n".join(lines))
                lines = []
        if complete:
            yield complete
    if lines:
        yield ["\n".join(lines)]
