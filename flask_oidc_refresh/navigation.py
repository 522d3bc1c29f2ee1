"""What kind of request this is, and where it may be sent back to."""

from __future__ import annotations

from flask import Request

from .config import is_local_path

#: ``Sec-Fetch-Dest`` values of a page load, in a tab or a frame.
DOCUMENT_DESTINATIONS = frozenset({"document", "iframe", "frame", "embed", "object"})
#: ``Authorization`` schemes a browser sends on page loads by itself (HTTP authentication of
#: an intranet or staging site); any other (``Bearer``) is an API client's.
BROWSER_AUTH_SCHEMES = frozenset({"basic", "digest", "negotiate", "ntlm"})
#: The media types a browser names in the ``Accept`` of a page load.
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def is_script_request(request: Request) -> bool:
    """True for a request that is not a browser's page load: a script (fetch, XHR, htmx) or an
    API client (curl, a mobile app, another service), none of which can follow a redirect to
    the provider's HTML sign-in page.

    Browsers say what a request is in Fetch Metadata (``Sec-Fetch-Mode``); ``fetch()`` sends
    no ``X-Requested-With``. Without Fetch Metadata, a request with an ``Authorization``
    header of a scheme browsers do not send by themselves (``Bearer``), or whose ``Accept``
    does not name HTML (``*/*`` of curl), or prefers JSON to HTML, is no page load.
    """
    headers = request.headers
    if headers.get("X-Requested-With") == "XMLHttpRequest" or headers.get("HX-Request") == "true":
        return True
    mode = headers.get("Sec-Fetch-Mode")
    if mode:
        return mode != "navigate"
    scheme = headers.get("Authorization", "").partition(" ")[0].lower()
    if scheme and scheme not in BROWSER_AUTH_SCHEMES:
        return True
    dest = headers.get("Sec-Fetch-Dest")
    if dest:
        return dest not in DOCUMENT_DESTINATIONS
    accept = request.accept_mimetypes
    if not any(value in HTML_TYPES and quality > 0 for value, quality in accept):
        return True
    # JSON named more precisely or with a higher quality than HTML; a tie is a page load
    return accept.best_match(["text/html", "application/json"]) == "application/json"


def safe_next(target: str | None, default: str) -> str:
    """``target`` when it is a path on this site, else ``default`` (no open redirect)."""
    return target if target and is_local_path(target) else default
