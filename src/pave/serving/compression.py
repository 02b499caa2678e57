"""gzip and deflate bodies on the gateway's REST routes.

A request body with ``Content-Encoding: gzip`` (or ``deflate``, the zlib format, as tritonclient
sends it) is inflated before it is parsed, never past the gateway's body limit: a small
compressed body cannot blow up into gigabytes. An answer is compressed when the caller accepts
the encoding and the body is large enough for compression to pay (small JSON answers go out as
they are: compressing them costs more time than the bytes it saves).
"""

from __future__ import annotations

import zlib

from pave.errors import InvalidInput, PayloadTooLarge

# Below this many bytes an answer is not worth compressing.
MIN_SIZE = 1024
_WBITS = {b"gzip": 16 + zlib.MAX_WBITS, b"x-gzip": 16 + zlib.MAX_WBITS, b"deflate": zlib.MAX_WBITS}


def accepted(content_encoding: bytes) -> bool:
    return content_encoding.strip().lower() in (*_WBITS, b"identity")


def inflate(body: bytes, content_encoding: bytes, limit: int) -> bytes:
    """The body a ``Content-Encoding`` (gzip, deflate, identity) stands for, at most ``limit`` bytes.

    Raises:
        InvalidInput: an unknown encoding, or bytes that are not in it.
        PayloadTooLarge: the inflated body is over ``limit``.
    """
    encoding = content_encoding.strip().lower()
    if encoding == b"identity":
        return body
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise _UnsupportedEncoding(
            f"content encoding {encoding.decode('latin-1')[:40]!r} is not accepted",
            hint="send the body as it is, or compressed with gzip or deflate",
        )
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"the request body is not valid {encoding.decode()} data: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the inflated request body is over the limit of {limit} bytes")
    if not inflater.eof:
        raise InvalidInput(f"the {encoding.decode()} request body is cut off")
    return out


def choose(accept_encoding: bytes | None) -> bytes | None:
    """The encoding to answer in (gzip first) from an ``Accept-Encoding`` header, or None."""
    if not accept_encoding:
        return None
    offered = {}
    for part in accept_encoding.lower().split(b","):
        token, _, params = part.strip().partition(b";")
        quality = 1.0
        if params.strip().startswith(b"q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        offered[token.strip()] = quality
    for encoding in (b"gzip", b"deflate"):
        if offered.get(encoding, 0.0) > 0:
            return encoding
    return None


def deflate(body: bytes, encoding: bytes) -> bytes:
    """``body`` compressed in ``encoding`` (a value :func:`choose` returned)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, _WBITS[encoding])
    return compressor.compress(body) + compressor.flush()


class _UnsupportedEncoding(InvalidInput):
    status_code = 415
    code = "unsupported_media_type"
