"""An uploaded image's bytes, from the multipart part ``image`` or the raw body, never more than ``max_body``.

Its pixels are bounded later, where it is decoded (``features.load_image``, from the header, before decoding).
"""

from __future__ import annotations

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect


async def read_image(request: Request, max_body: int) -> tuple[bytes, str]:
    """The image bytes and a label, from the multipart field ``image`` or the raw body, never over ``max_body``."""
    too_large = HTTPException(413, f"request body over the limit of {max_body:,} bytes (see --max-body)")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_body:
        raise too_large  # before reading any of it
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:  # chunked uploads declare no length: stop as soon as it is passed
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise HTTPException(400, "the client went away before the body was complete") from None
    body = b"".join(chunks)
    label = "body"
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body, label = await _image_part(request, body)
    if not body:
        raise HTTPException(400, "no image: the body (or its 'image' field) is empty")
    return body, label


async def _image_part(request: Request, body: bytes) -> tuple[bytes, str]:
    request._body = body  # starlette parses the form from the body we already hold
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception as e:  # starlette's MultiPartException and friends: a malformed request
        raise HTTPException(400, f"malformed multipart body: {e}") from None
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        raise HTTPException(400, "multipart body without a file field named 'image'")
    return await upload.read(), upload.filename or "image"
