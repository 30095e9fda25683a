"""imgsearch: search-by-image over photo galleries.

The library API lives in the modules (features, store, indexing, search, phash, sizing, cpu);
``imgsearch.cli`` (a package, one module per command group) is a thin click layer over it.
"""

__version__ = "0.1.0"
