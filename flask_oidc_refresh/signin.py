"""The session's sign-in: its token record in the store, and its copy in the session.

This is the only module that reads or writes the copy (the record's key, the renewal deadline,
the claims and the silent-attempt mark), as Flask-Login's ``login_user`` and ``logout_user``
are the only writers of theirs. The copy holds what every request needs, so that the deadline
check is a dictionary lookup with no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import asdict, dataclass
from typing import Any

from flask import current_app
from flask.sessions import SessionMixin

from .records import Tokens, from_stored
from .sessions import new_session_id
from .store import TokenStore

#: Where the session keeps its copy of the sign-in.
SESSION_KEY = "_oidc_login"


@dataclass(frozen=True)
class SignIn:
    """The session's copy of a sign-in."""

    record: str
    renew_at: float
    claims: dict[str, Any]
    #: The deadline for which a silent (``prompt=none``) renewal was tried, if one was.
    silent_attempt_for: float | None = None
    #: The provider that signed the user in, by name (``""``: the default one).
    provider: str = ""


def current(session: Mapping[str, Any]) -> SignIn | None:
    """The session's sign-in, or None (also for a copy of another version)."""
    return from_stored(SignIn, session.get(SESSION_KEY))


def is_signed_in(session: Mapping[str, Any]) -> bool:
    """Whether the session has a sign-in: one lookup."""
    return SESSION_KEY in session


def is_due(session: Mapping[str, Any], now: float) -> bool:
    """Whether the session has a sign-in past its renewal deadline: one lookup, one comparison."""
    data = session.get(SESSION_KEY)
    return data is not None and data["renew_at"] <= now


def claims(session: Mapping[str, Any]) -> dict[str, Any] | None:
    """The signed-in user's claims, or None."""
    data = session.get(SESSION_KEY)
    return None if data is None else data["claims"]


def begin(
    session: SessionMixin, store: TokenStore, tokens: Tokens, *, keep: Iterable[str] = ()
) -> None:
    """Make ``tokens`` the session's sign-in, in a new record, in a fresh session with a new id:
    what the session held before is dropped (the previous sign-in's record too), except the
    keys in ``keep``."""
    previous = current(session)
    if previous is not None:
        store.end(previous.record)
    kept = {key: session[key] for key in keep if key in session}
    session.clear()
    session.update(kept)
    new_session_id(session)
    record = store.new_record(tokens)
    _copy(session, record, tokens)
    _list(session, store, record, tokens, prune=True)


def load_tokens(store: TokenStore, sign_in: SignIn) -> Tokens | None:
    """The sign-in's tokens, or None when its record is gone (the sign-in has ended)."""
    return store.load(sign_in.record)


def save_tokens(
    session: MutableMapping[str, Any], store: TokenStore, sign_in: SignIn, tokens: Tokens
) -> None:
    """Store renewed ``tokens`` in the sign-in's record, and their copy in the session."""
    store.save(sign_in.record, tokens)
    _copy(session, sign_in.record, tokens)
    _list(session, store, sign_in.record, tokens, prune=False)


def adopt(session: MutableMapping[str, Any], sign_in: SignIn, tokens: Tokens) -> None:
    """Copy tokens renewed by another request into the session; only when they differ, so that
    reading a fresh record writes nothing."""
    if sign_in.renew_at != tokens.renew_at or sign_in.claims != tokens.claims:
        _copy(session, sign_in.record, tokens)


def mark_silent_attempt(session: MutableMapping[str, Any], sign_in: SignIn) -> None:
    """Remember that a silent renewal was tried for the current deadline."""
    session[SESSION_KEY] = asdict(sign_in) | {"silent_attempt_for": sign_in.renew_at}


@dataclass(frozen=True)
class Ended:
    """A sign-in that was just ended, and the tokens its record held (to revoke them)."""

    sign_in: SignIn
    tokens: Tokens | None


def end(session: MutableMapping[str, Any], store: TokenStore) -> Ended | None:
    """End the session's sign-in, dropping its tokens (once no renewal of them is under way),
    and clear the whole session: the app's data and Flask-Login's user (its remember cookie
    too) go with it, and the store deletes it when the request ends. Returns what ended."""
    sign_in = current(session)
    tokens = store.end(sign_in.record) if sign_in is not None else None
    remember = _log_out_of_flask_login(session)
    session.clear()
    if remember:
        session["_remember"] = remember  # Flask-Login deletes its cookie, then this key
    return Ended(sign_in, tokens) if sign_in is not None else None


def _log_out_of_flask_login(session: Mapping[str, Any]) -> str | None:
    """Flask-Login's ``logout_user`` when the app uses it (so its remember cookie goes too);
    returns the mark that tells Flask-Login to delete that cookie."""
    if getattr(current_app, "login_manager", None) is None:
        return None
    from flask_login import logout_user

    logout_user()
    remember: str | None = session.get("_remember")
    return remember


def has_ended(session: Mapping[str, Any], store: TokenStore) -> bool:
    """Whether the session holds a sign-in that has ended elsewhere (its record is gone): a
    logout in another tab, a back-channel logout, or an expired record."""
    sign_in = current(session)
    return sign_in is not None and store.load(sign_in.record) is None


def _copy(session: MutableMapping[str, Any], record: str, tokens: Tokens) -> None:
    sign_in = SignIn(record, tokens.renew_at, tokens.claims, provider=tokens.provider)
    session[SESSION_KEY] = asdict(sign_in)


def _list(
    session: Mapping[str, Any], store: TokenStore, record: str, tokens: Tokens, *, prune: bool
) -> None:
    """List the session for back-channel logout, when the store keeps an index. Each write of
    its tokens lists it again, so the listing lives as long as the session."""
    if store.index is None:
        return
    key_prefix = getattr(current_app.session_interface, "key_prefix", "")
    store.index.add(key_prefix + getattr(session, "sid", ""), record, tokens.claims, prune=prune)
