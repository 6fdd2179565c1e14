"""The web UI: the whole workflow (footage, faces, training, conversion, evaluation) from a browser.

`serve(workspace)` runs it; `create_app(workspace)` is the ASGI app, for tests or another server.
"""

__all__ = ["create_app", "serve"]


def __getattr__(name: str):
    # Imported on first use, so the job runner (`python -m dualface.ui.jobs`) starts without the web stack.
    if name in __all__:
        from dualface.ui import server

        return getattr(server, name)
    raise AttributeError(f"module 'dualface.ui' has no attribute {name!r}")
