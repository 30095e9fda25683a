"""Schemathesis hooks (loaded through schemathesis.toml): real images for the image/* bodies and parts.

Positive cases need an image that decodes, as a client would send; negative cases still get arbitrary bytes.
"""

import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image


def _image(kind: str):
    def encode(size, colour):
        out = io.BytesIO()
        Image.new("RGB", size, colour).save(out, kind)
        return out.getvalue()

    sides = st.integers(min_value=8, max_value=96)
    colours = st.tuples(*[st.integers(0, 255)] * 3)
    return st.builds(encode, st.tuples(sides, sides), colours)


schemathesis.openapi.media_type("image/jpeg", _image("JPEG"))
schemathesis.openapi.media_type("image/png", _image("PNG"))
