"""Which requests skip session renewal: marked views, endpoint names, blueprints (with their
children), static files, the paths, endpoints and patterns of ``OIDC_EXEMPT_URLS``, and
requests with a bearer token to a view that takes one instead of the session."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Request

from .bearer import bearer_token

#: The attribute ``@oidc.exempt`` sets on a view function.
EXEMPT_ATTRIBUTE = "_oidc_exempt"
#: The attribute ``accept_token(allow_session=True)`` sets: its token requests skip renewal.
TOKEN_VIEW_ATTRIBUTE = "_oidc_takes_tokens"


class Exemptions:
    """What ``oidc.exempt`` registered; the extension's own blueprint always counts."""

    def __init__(self) -> None:
        self.blueprints = {"oidc"}
        self.endpoints: set[str] = set()

    def add(self, view: Callable[..., Any] | Blueprint | str) -> None:
        """Exempt a view function, a blueprint, or an endpoint name."""
        if isinstance(view, Blueprint):
            self.blueprints.add(view.name)
        elif isinstance(view, str):
            self.endpoints.add(view)
        else:
            setattr(view, EXEMPT_ATTRIBUTE, True)

    def add_token_view(self, view: Callable[..., Any]) -> None:
        """Exempt the requests of ``view`` that carry a bearer token (it judges them by the
        token alone); its session requests are renewed as usual."""
        setattr(view, TOKEN_VIEW_ATTRIBUTE, True)

    def cover(
        self,
        request: Request,
        view: Callable[..., Any] | None,
        urls: Iterable[str | re.Pattern[str]],
    ) -> bool:
        """Whether ``request``, routed to ``view``, skips renewal."""
        endpoint = request.endpoint or ""
        return (
            endpoint == "static"
            or endpoint.endswith(".static")
            or endpoint in self.endpoints
            # nested blueprints are named "parent.child"
            or any(name.rpartition(".")[2] in self.blueprints for name in request.blueprints)
            or _marked(view, EXEMPT_ATTRIBUTE)
            or any(_matches(rule, request) for rule in urls)
            or (_marked(view, TOKEN_VIEW_ATTRIBUTE) and bearer_token(request) is not None)
        )


def _marked(view: Any, attribute: str) -> bool:
    """Whether ``view``, or a function it wraps, has ``attribute`` set."""
    while view is not None:
        if getattr(view, attribute, False):
            return True
        view = getattr(view, "__wrapped__", None)
    return False


def _matches(rule: str | re.Pattern[str], request: Request) -> bool:
    if isinstance(rule, re.Pattern):
        return rule.match(request.path) is not None
    return rule in (request.path, request.endpoint)
