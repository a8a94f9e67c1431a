"""Turn a request into decoded images, or a 4xx with a JSON error; every limit enforced here."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from typing import Any

from cvspec.preprocess import as_rgb

RAW_TYPES = ("image/", "application/octet-stream")
# A body must keep coming: no gap between its pieces longer than BODY_GAP_S (the deadline of a
# request head, protocol.py), and all of it within BODY_DEADLINE_S (10 MB at 1.4 Mbit/s), or
# 408: a client that trickles a body (slowloris) holds a request slot that long at most.
BODY_GAP_S = 5.0
BODY_DEADLINE_S = 60.0


class InputError(Exception):
    """A request the server refuses: HTTP status, a short code, and a message for the client."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def guard_pixels(max_pixels: int) -> None:
    """Make PIL refuse images over max_pixels before decoding them (decompression bombs)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)


async def read_images(request: Any, max_bytes: int, max_images: int) -> list[bytes]:
    """The images of a request: a raw image body, or every file part of a multipart form."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    multipart = ctype == "multipart/form-data"
    if not multipart and not ctype.startswith(RAW_TYPES):
        raise InputError(
            415,
            "unsupported_media_type",
            f"send an image (image/*, application/octet-stream) or multipart/form-data, "
            f"not {ctype or 'no content type'!r}",
        )
    body = await _read_body(request, max_bytes)
    if not multipart:
        images = [body]
    else:
        images = await _file_parts(request.headers, body, max_images)
    if not images or any(not data for data in images):
        raise InputError(400, "empty", "the request holds no image bytes")
    if len(images) > max_images:
        raise InputError(413, "too_many_images", f"at most {max_images} images per request")
    return images


async def _read_body(request: Any, max_bytes: int) -> bytes:
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise InputError(
            413, "too_large", f"the body is {declared} bytes; the limit is {max_bytes}"
        )
    chunks, size = [], 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BODY_DEADLINE_S
    # One timeout for the whole body, moved on after each piece (no task per piece, as
    # asyncio.wait_for makes on Python 3.11: two a request, most of them for a body that has
    # already arrived whole).
    window = asyncio.timeout_at(min(loop.time() + BODY_GAP_S, deadline))
    try:
        async with window:
            while True:  # the ASGI messages themselves: request.stream() adds a generator
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_bytes:
                    raise InputError(
                        413, "too_large", f"the body exceeds the limit of {max_bytes} bytes"
                    )
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
                window.reschedule(min(loop.time() + BODY_GAP_S, deadline))
    except TimeoutError:
        why = (
            f"the body did not arrive within {BODY_DEADLINE_S:g} s ({size} bytes by then)"
            if window.when() == deadline
            else f"the body stopped: nothing came for {BODY_GAP_S:g} s after {size} bytes"
        )
        raise InputError(408, "body_timeout", why) from None
    return b"".join(chunks)


async def _file_parts(headers: Any, body: bytes, max_images: int) -> list[bytes]:
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream() -> AsyncIterator[bytes]:
        yield body

    parser = MultiPartParser(headers, stream(), max_files=max_images, max_fields=100)  # type: ignore[arg-type]
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if str(exc).startswith("Too many files"):
            msg = f"at most {max_images} images per request"
            raise InputError(413, "too_many_images", msg) from None
        raise InputError(400, "bad_multipart", f"cannot parse the multipart body: {exc}") from None
    files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    try:
        return [await f.read() for f in files]
    finally:
        await form.close()


def open_header(data: bytes, index: int) -> Any:
    """Read one image's header (format, size): a bomb -> 413, not an image -> 400."""
    import io

    from PIL import Image

    try:
        return Image.open(io.BytesIO(data))
    except Exception as exc:
        raise input_error(exc, index) from None


def decode(img: Any, index: int) -> Any:
    """Decode an image open_header opened, as RGB; a truncated or corrupt one -> 400."""
    try:
        return as_rgb(img)
    except Exception as exc:
        raise input_error(exc, index) from None


def input_error(exc: Exception, index: int) -> InputError:
    """What a client is told when PIL fails on image `index`."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return InputError(413, "too_many_pixels", f"image {index}: {exc}")
    if isinstance(exc, UnidentifiedImageError):
        return InputError(400, "bad_image", f"image {index}: not an image format PIL reads")
    # PIL raises many types on malformed files; all mean "bad input"
    kind = type(exc).__name__
    return InputError(400, "bad_image", f"image {index} cannot be decoded ({kind}: {exc})")
