"""What kind of request this is, and where it may be sent back to."""

from __future__ import annotations

from flask import Request

from .config import is_local_path

#: ``Sec-Fetch-Dest`` values of a page load, in a tab or a frame.
DOCUMENT_DESTINATIONS = frozenset({"document", "iframe", "frame", "embed", "object"})


def is_script_request(request: Request) -> bool:
    """True for a request made by a script (fetch, XHR, htmx), which cannot follow a redirect
    to the provider; False for a page load.

    ``fetch()`` sends no ``X-Requested-With``, so Fetch Metadata and ``Accept`` count too.
    """
    headers = request.headers
    if headers.get("X-Requested-With") == "XMLHttpRequest" or headers.get("HX-Request") == "true":
        return True
    mode = headers.get("Sec-Fetch-Mode")
    if mode:
        return mode != "navigate"
    dest = headers.get("Sec-Fetch-Dest")
    if dest:
        return dest not in DOCUMENT_DESTINATIONS
    # JSON named more precisely or with a higher quality than HTML; a tie is a page load
    return (
        request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"
    )


def safe_next(target: str | None, default: str) -> str:
    """``target`` when it is a path on this site, else ``default`` (no open redirect)."""
    return target if target and is_local_path(target) else default
