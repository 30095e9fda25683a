"""Errors a user can act on. The CLI prints them as one line and exits with ``exit_code``; no traceback."""


class ImgsearchError(Exception):
    """A failure with a message meant for the user (what went wrong, with what, and what to do)."""

    exit_code = 2


class ImageError(ImgsearchError):
    """One input file could not be read as an image; a run over many files counts it and goes on."""

    def __init__(self, source, reason, not_image=False):
        self.source = str(source)
        self.reason = reason
        self.not_image = not_image  # the content is no image at all (vs. a broken one)
        super().__init__(f"{self.source}: {reason}")


class WeightsError(ImgsearchError):
    """The VGG16 weights are missing or do not verify."""


class StoreError(ImgsearchError):
    """Milvus could not be reached, is locked, or holds a collection we must not touch."""


class BulkError(ImgsearchError):
    """A bulk extraction or import cannot go on: the engine is missing or failed, or the shards do not fit."""
