"""Text encodings: detect them, decode strictly, and never let mojibake through.

Exports from Chinese systems come as UTF-8 (with or without a byte-order mark), GBK/GB18030 or
Big5. Detection uses ``charset_normalizer`` on a sample; decoding is always strict, so a byte that
is not valid in the chosen encoding is an :class:`~crmlens.errors.EncodingError` naming the file
and line. A wrong encoding can still decode without a single invalid byte (Big5 bytes are nearly
all valid GBK): :func:`check_plausible` catches that by measuring how garbled the decoded text is,
and the replacement character U+FFFD (the trace of an earlier broken conversion) is refused too.

>>> canonical_encoding("GBK"), canonical_encoding("utf8"), canonical_encoding("UTF-8-SIG")
('gb18030', 'utf-8', 'utf-8-sig')
"""

from __future__ import annotations

import codecs
import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes
from charset_normalizer.md import mess_ratio

from crmlens.errors import EncodingError

CHUNK = 1 << 20  # bytes per read when decoding: memory stays bounded whatever the file size
SAMPLE = 1 << 20  # bytes charset_normalizer looks at
#: Above this share of suspicious characters (charset_normalizer's own threshold) text is garbled.
MESS_LIMIT = 0.2
UTF8 = ("utf-8", "utf-8-sig", "ascii")
#: Tried first by detection (charset_normalizer's names); anything else only if none decodes.
PREFERRED = ("utf_8", "gb18030", "big5")
# GBK and GB2312 files are decoded as GB18030, their superset, so a stray newer character passes
_SUPERSETS = {"gbk": "gb18030", "gb2312": "gb18030"}
_REPLACEMENT = "\ufffd"


def canonical_encoding(name: str) -> str:
    """The Python codec name, with GBK and GB2312 widened to GB18030."""
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise EncodingError(f"expected a known text encoding, found {name!r}") from None
    return _SUPERSETS.get(codec, codec)


@dataclass(frozen=True)
class Detected:
    """A detected encoding and how sure the detector is (0-1; 1.0 for a byte-order mark)."""

    encoding: str
    confidence: float


def _sample(path: Path, size: int = SAMPLE) -> tuple[bytes, int]:
    """A sample of up to ``size`` bytes in whole lines, and the number of its first line.

    The first ``size`` bytes, or, when they are plain ASCII, ``size`` bytes from the line where
    the first non-ASCII byte is: a Chinese value deep in a file still decides its encoding.
    """
    with path.open("rb") as fh:
        head = fh.read(size)
        if not head.isascii():
            return _whole_lines(head, fh.read(1) != b""), 1
        offset, lines = len(head), head.count(b"\n")
        while chunk := fh.read(CHUNK):
            if not chunk.isascii():
                first = next(i for i, b in enumerate(chunk) if b >= 0x80)
                start = chunk.rfind(b"\n", 0, first) + 1
                fh.seek(offset + start)
                more = fh.read(size)
                return _whole_lines(more, fh.read(1) != b""), lines + chunk.count(
                    b"\n", 0, start
                ) + 1
            offset, lines = offset + len(chunk), lines + chunk.count(b"\n")
    return head, 1


def _whole_lines(sample: bytes, truncated: bool) -> bytes:
    """Cut a truncated sample after its last line break, so that no character is cut in two."""
    if not truncated:
        return sample
    end = sample.rfind(b"\n")
    return sample[: end + 1] if end > 0 else sample


def detect(path: Path) -> Detected:
    """The encoding of a text file, from its byte-order mark or ``charset_normalizer``.

    Pure ASCII counts as UTF-8. Raises :class:`EncodingError` when nothing decodes the sample.
    """
    with path.open("rb") as fh:
        if fh.read(3) == codecs.BOM_UTF8:
            return Detected("utf-8-sig", 1.0)
    sample, _ = _sample(path)
    if sample.isascii():
        return Detected("utf-8", 1.0)
    # the encodings of the product's users first: on a short sample a Western or Japanese code
    # page may decode Chinese bytes with no more garbling than the right one
    best = from_bytes(sample, cp_isolation=list(PREFERRED)).best() or from_bytes(sample).best()
    if best is None:
        raise EncodingError(
            "cannot determine the text encoding (not UTF-8, GBK/GB18030 or Big5); "
            "give the encoding explicitly",
            path=path,
        )
    encoding = canonical_encoding(best.encoding)
    if encoding in _CHINESE and _decodes(sample, _CHINESE):
        encoding = gb_or_big5(sample)
    return Detected("utf-8" if encoding == "ascii" else encoding, round(1.0 - best.chaos, 3))


_CHINESE = ("gb18030", "big5")


def _decodes(sample: bytes, encodings: tuple[str, ...]) -> bool:
    try:
        for encoding in encodings:
            sample.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def gb_or_big5(sample: bytes) -> str:
    """For bytes valid in both GBK and Big5 (nearly every Big5 text is): the one whose common
    characters the two-byte codes fall among, ties to GB18030.

    GB2312's hanzi (lead byte 0xB0-0xF7, trail 0xA1-0xFE) hold the characters of mainland text;
    Big5's frequent hanzi (0xA440-0xC67E) those of Taiwanese and Hong Kong text. A short sample
    fools a general detector: simplified 王 (GBK CD F5) decodes as a rare Big5 character.

    >>> gb_or_big5("烟台会员".encode("gbk")), gb_or_big5("煙臺會員".encode("big5"))
    ('gb18030', 'big5')
    """
    gb = big5 = 0
    i, n = 0, len(sample)
    while i < n - 1:
        lead = sample[i]
        if lead < 0x80:
            i += 1
            continue
        trail = sample[i + 1]
        gb += 0xB0 <= lead <= 0xF7 and 0xA1 <= trail <= 0xFE
        big5 += 0xA440 <= (lead << 8 | trail) <= 0xC67E
        i += 2
    return "big5" if big5 > gb else "gb18030"


def detect_encoding(path: Path) -> str:
    """The Python codec name of a text file's encoding (see :func:`detect`)."""
    return detect(path).encoding


def resolve(path: Path, encoding: str) -> str:
    """``encoding`` made canonical, or detected when it is ``auto``; an explicit encoding must
    give plausible text (:func:`check_plausible`)."""
    if encoding == "auto":
        return detect(path).encoding
    codec = canonical_encoding(encoding)
    if codec == "utf-8":
        with path.open("rb") as fh:
            if fh.read(3) == codecs.BOM_UTF8:
                codec = "utf-8-sig"
    check_plausible(path, codec)
    return codec


def check_plausible(path: Path, encoding: str) -> None:
    """Refuse an encoding that decodes a file's sample into garbled text.

    Only lines with non-ASCII bytes are measured: ASCII digits would dilute the garbling.
    Invalid bytes are left to the strict decoding of the whole file, which names their line.
    """
    sample, first = _sample(path)
    if sample.isascii():
        return
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
        try:
            # the sample may end inside a character: an incremental decode, not final
            codecs.getincrementaldecoder("utf-8")(errors="strict").decode(sample, final=False)
        except UnicodeDecodeError:
            pass  # invalid bytes: measured below, and the strict decoding names their line
        else:
            # multi-byte UTF-8 is too regular to arise by chance from another encoding, so valid
            # UTF-8 is taken as meant, control characters, joiners and odd symbols included
            return
    text = sample.decode(encoding, errors="replace")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), first) if not line.isascii()]
    probe = "\n".join(line for _, line in lines)[:32_768]
    if mess_ratio(probe, MESS_LIMIT) < MESS_LIMIT:
        return
    number, garbled = lines[0]
    best = from_bytes(sample).best()
    hint = ""
    if best is not None and canonical_encoding(best.encoding) != encoding:
        hint = f"; the file looks like {canonical_encoding(best.encoding)}"
    raise EncodingError(
        f"expected {encoding} text, but decoding as {encoding} gives garbled text "
        f"{garbled[:40]!r}{hint}",
        path=path,
        row=number,
    )


def decode_lines(src: Path, encoding: str, *, chunk_size: int = CHUNK) -> Iterator[tuple[int, str]]:
    """Yield ``(first_line_number, text)`` chunks of ``src`` decoded strictly, line ends kept.

    Raises :class:`EncodingError` naming the line of the first byte that is not valid
    ``encoding`` or of a replacement character U+FFFD.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    line = 1
    with src.open("rb") as fin:
        while True:
            chunk = fin.read(chunk_size)
            final = not chunk
            try:
                text = decoder.decode(chunk, final=final)
            except UnicodeDecodeError as exc:
                if final:
                    raise EncodingError(
                        f"expected {encoding}, the file ends inside a character", path=src, row=line
                    ) from exc
                # "\n" is never part of a multi-byte GBK/GB18030/Big5 character: counting is safe
                at = line + chunk.count(b"\n", 0, max(exc.start, 0))
                bad = exc.object[exc.start : exc.start + 4]
                raise EncodingError(
                    f"expected {encoding}, found bytes {bad!r} that are not valid {encoding}",
                    path=src,
                    row=at,
                ) from exc
            if _REPLACEMENT in text:
                at = line + text.count("\n", 0, text.index(_REPLACEMENT))
                raise EncodingError(
                    "found the replacement character U+FFFD: the file was garbled by an earlier "
                    "conversion",
                    path=src,
                    row=at,
                )
            if text:
                yield line, text
            if final:
                return
            line += text.count("\n")


def iter_lines(src: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """``(number, text)`` of every line of ``src`` decoded strictly, without its line end."""
    pending, number = "", 0
    for _, text in decode_lines(src, encoding):
        parts = (pending + text).split("\n")
        pending = parts.pop()
        for part in parts:
            number += 1
            yield number, part.removesuffix("\r")
    if pending:
        yield number + 1, pending.removesuffix("\r")


def transcode(src: Path, dst: Path, encoding: str, *, chunk_size: int = CHUNK) -> None:
    """Copy ``src`` in ``encoding`` to ``dst`` in UTF-8, a chunk at a time; line ends are kept.

    Raises :class:`EncodingError` as :func:`decode_lines` does.
    """
    with dst.open("w", encoding="utf-8", newline="") as fout:
        for _, text in decode_lines(src, encoding, chunk_size=chunk_size):
            fout.write(text)


def validate(src: Path, encoding: str, *, chunk_size: int = CHUNK) -> None:
    """Decode all of ``src`` strictly without keeping it: :class:`EncodingError` if it fails."""
    for _ in decode_lines(src, encoding, chunk_size=chunk_size):
        pass


def check_not_garbled(src: Path) -> None:
    """:class:`EncodingError` naming the line if a UTF-8 file holds U+FFFD (the trace of an earlier
    broken conversion), found by a byte search over the mapped file: no decoding.

    What else strict decoding would find, an invalid byte, DuckDB finds as it reads the file, and
    a load failing on one decodes the file with :func:`validate` to name the line.
    """
    if src.stat().st_size == 0:
        return
    with src.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        at = mm.find(_REPLACEMENT.encode())
        if at < 0:
            return
        row = mm[:at].count(b"\n") + 1
    raise EncodingError(
        "found the replacement character U+FFFD: the file was garbled by an earlier conversion",
        path=src,
        row=row,
    )
