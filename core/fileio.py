"""File helpers shared by every reader and writer: atomic writes, encodings, safe cells."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from core.errors import DataError

#: Three or more bytes >= 0x80 in a row: text that is not Western cp1252.
_HIGH_BYTE_RUN = re.compile(rb"[\x80-\xff]{3,}")

#: Characters that make a spreadsheet treat a cell as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old or the new file.

    The bytes go to a temporary file in the same folder, are flushed and fsynced, then
    replace the target in one ``os.replace`` (atomic on POSIX and Windows).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def decode_bytes(raw: bytes, source: str = "file") -> str:
    """Decode bytes of unknown encoding: UTF-8 (with or without BOM), else detect.

    Raises :class:`DataError` for binary content.
    """
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError("this is a binary file, not a text/CSV file", path=source)
    for enc in ("utf-8-sig",):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            pass
    # Western exports (Excel, brokers) are cp1252/Latin-1, where an accented letter is one
    # high byte between ASCII ("europ\xe9en"); Cyrillic and CJK text comes in runs of high
    # bytes. Charset detection guesses wrong on short Latin-1 text ("f\xfcr" as Big5,
    # "\xa3" as cp1250's "\u0141"), so that case is decided first.
    if not _HIGH_BYTE_RUN.search(raw):
        try:
            return raw.decode("cp1252").lstrip("\ufeff")
        except UnicodeDecodeError:  # one of the five bytes cp1252 leaves undefined
            pass
    try:
        from charset_normalizer import from_bytes

        matches = from_bytes(raw)
        best = matches.best()
    except ImportError:  # pragma: no cover - declared dependency
        matches, best = [], None
    if best is not None and best.encoding:
        text = str(best)
        # A few high bytes in a row ("\xa1\xba\xbc") read as well in a dozen single-byte
        # pages (latin-9 "¡ºŒ", mac-roman "°∫º", cp1250 "ˇşĽ"); when cp1252 reads them
        # about as well, it wins: Excel and broker exports use Windows' own page.
        single_byte = len(text) == len(raw)
        western = next((m for m in matches if m.encoding == "cp1252"), None)
        if single_byte and western is not None and western.chaos <= best.chaos + 0.1:
            return str(western).lstrip("\ufeff")
        return text.lstrip("\ufeff")
    # cp1252/latin-1 decodes every byte: the last resort for Western broker exports.
    return raw.decode("cp1252", errors="replace")


def read_text_any_encoding(path: str | os.PathLike[str]) -> str:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise DataError("this is a folder, not a file", path=str(path)) from None
    return decode_bytes(raw, str(path))


def neutralise_cell(value: object) -> object:
    """Stop a spreadsheet from running a text cell as a formula (CSV/formula injection).

    Numbers pass through unchanged; text that starts with ``= + - @`` (or tab/CR) gets a
    leading apostrophe, which spreadsheets show as plain text.
    """
    if isinstance(value, str) and _looks_like_formula(value):
        return "'" + value
    return value


def _looks_like_formula(text: str) -> bool:
    """Starts with a formula character, after any apostrophes.

    Text that already starts with apostrophes before one (``'=x``) gets one more too, so
    that :func:`restore_cell` gives back exactly what was written: otherwise ``'=x`` and
    ``=x`` would both be saved as ``'=x``.
    """
    return text.lstrip("'").startswith(_FORMULA_PREFIXES)


def restore_cell(value: str) -> str:
    """Undo :func:`neutralise_cell` on read: drop the apostrophe it put before a formula."""
    if value.startswith("'") and _looks_like_formula(value[1:]):
        return value[1:]
    return value
