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
    _list_session(record, tokens, prune=True)


def _list_session(record: str, tokens: Tokens, *, prune: bool) -> None:
    """List the session under its ``sid`` and ``sub`` for back-channel logout. Each write of its
    tokens lists it again, so the listing lives as long as the session; at sign-in the sessions
    that have ended since (signed out, replaced, expired) are taken off the lists."""
    interface = current_app.session_interface
    session_key = getattr(interface, "key_prefix", "") + getattr(session, "sid", "")
    store = get_state().token_store
    member = f"{session_key} {record}"
    sid, sub = tokens.claims.get("sid"), tokens.claims.get("sub")
    keys = []
    if isinstance(sid, str) and sid:
        keys.append(index_key("sid", sid))
    if isinstance(sub, str) and sub:
        keys.append(index_key("sub", sub))
        if not sid:  # no sid to tell its provider session by: any logout of the user ends it
            keys.append(index_key("sub-without-sid", sub))
    for key in keys:
        if prune:
            store.index_discard(
                key, lambda listed: not store.exists(listed.split(" ")[0]), record_ttl()
            )
        store.index_add(key, member, record_ttl())


def index_key(claim: str, value: str) -> str:
    """Where the sessions of a provider session (``sid``) or a user (``sub``) are listed."""
    return f"oidc-{claim}:{value}"


def end_sessions(claim: str, value: str) -> int:
    """End every session listed under ``claim`` = ``value``, wherever it runs: its session and
    its tokens are removed from the shared store. Returns how many there were."""
    store = get_state().token_store
    members = store.index_pop(index_key(claim, value))
    for member in members:
        for key in member.split(" "):
            if key:
                store.delete(key)
    return len(members)


def save_tokens(login: SessionLogin, tokens: Tokens) -> None:
    """Store renewed ``tokens`` in the sign-in's record, and their copy in the session."""
    get_state().token_store.put(login.record, tokens, record_ttl())
    remember_login(session, login.record, tokens)
    _list_session(login.record, tokens, prune=False)


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
