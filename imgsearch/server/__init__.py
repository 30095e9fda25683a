"""`imgsearch serve`: an HTTP API and a web page over the library, the model loaded and the store opened once.

``worker.Worker`` owns the model and the collection in one thread and micro-batches searches; ``app.create_app``
is the FastAPI front door over it; ``static/index.html`` is the page at ``/``.
"""
