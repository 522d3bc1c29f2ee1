"""Flask-Session's server-side session interface with a lean path for the request that only
reads its session: the session id taken from the raw ``Cookie`` header, ``Vary`` set directly."""

from __future__ import annotations

import re

from flask import Flask, Request, Response
from flask_session.base import ServerSideSession, ServerSideSessionInterface

#: The session cookie's value, from the raw header (faster than parsing every cookie).
_COOKIE = re.compile(r"(?:^|;)\s*([^=;\s]+)=([^;]*)")


class LeanSessionInterface(ServerSideSessionInterface):  # type: ignore[misc]
    """A subclass supplies Flask-Session's ``_retrieve_session_data``, ``_upsert_session`` and
    ``_delete_session``."""

    def open_session(self, app: Flask, request: Request) -> ServerSideSession:
        if self.use_signer:  # a signed session id: Flask-Session's own path
            return super().open_session(app, request)
        sid = _cookie_value(request.environ.get("HTTP_COOKIE", ""), self.get_cookie_name(app))
        if sid:
            data = self._retrieve_session_data(self._get_store_id(sid))
            if data is not None:
                return self.session_class(data, sid=sid)
        return self.session_class(sid=self._generate_sid(self.sid_length), permanent=self.permanent)

    def save_session(self, app: Flask, session: ServerSideSession, response: Response) -> None:
        if session.modified or self.should_set_storage(app, session):
            super().save_session(app, session, response)
        elif session.accessed:
            vary = response.headers.get("Vary")
            if vary is None:
                response.headers["Vary"] = "Cookie"
            else:
                response.vary.add("Cookie")


def _cookie_value(header: str, name: str) -> str | None:
    for found, value in _COOKIE.findall(header):
        if found == name:
            return value.strip('"') or None
    return None
