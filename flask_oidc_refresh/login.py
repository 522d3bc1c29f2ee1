"""Signing a user in and out of the current session: the token record and the session's copy."""

from __future__ import annotations

from flask import current_app, session

from .state import get_state
from .store import LOGIN_KEY, SessionLogin, Tokens, current_login, new_record_key, remember_login


def record_ttl() -> int:
    """Token records live as long as the sessions that point at them."""
    return int(current_app.permanent_session_lifetime.total_seconds())


def sign_in(tokens: Tokens) -> None:
    """Make ``tokens`` the session's sign-in, in a new record (the previous one is dropped)."""
    store = get_state().token_store
    previous = current_login(session)
    if previous is not None:
        store.delete(previous.record)
    record = new_record_key()
    store.put(record, tokens, record_ttl())
    remember_login(session, record, tokens)


def save_tokens(login: SessionLogin, tokens: Tokens) -> None:
    """Store renewed ``tokens`` in the sign-in's record, and their copy in the session."""
    get_state().token_store.put(login.record, tokens, record_ttl())
    remember_login(session, login.record, tokens)


def load_tokens(login: SessionLogin) -> Tokens | None:
    """The sign-in's tokens, or None when its record is gone."""
    return get_state().token_store.get(login.record)


def sign_out() -> SessionLogin | None:
    """End the session's sign-in (dropping its tokens); returns what it was."""
    login = current_login(session)
    if login is not None:
        get_state().token_store.delete(login.record)
        session.pop(LOGIN_KEY, None)
    return login
