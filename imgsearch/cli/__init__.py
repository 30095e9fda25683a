"""The command line: a thin click layer over the library modules, one module per command group.

Heavy imports (numpy, TensorFlow, pymilvus) stay inside the commands, so `imgsearch --help` is quick.
"""

from . import bulk, duplicates, gallery, phash_legacy, planning, serve, weights  # noqa: F401  (each registers its commands)
from .base import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, cli, main

__all__ = ["cli", "main", "EXIT_OK", "EXIT_PARTIAL", "EXIT_FATAL"]
