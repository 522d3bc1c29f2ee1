"""The ``flask oidc`` commands: check the settings against the provider, list the signed-in
sessions, and end a user's sessions everywhere."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import click
from flask import current_app
from flask.cli import AppGroup

from .checks import OK, PROBLEM, check_app, configured_base_url, default_base_url
from .relying_party import relying_party
from .sessions import store_label

log = logging.getLogger(__name__)
oidc_commands = AppGroup("oidc", help="OpenID Connect sign-in: check it, list and end sessions.")
MARKS = {"ok": "ok     ", "warning": "WARNING", "problem": "PROBLEM"}


@oidc_commands.command("check")
@click.option(
    "--url",
    help="The app's base URL as browsers reach it (default: SERVER_NAME, else "
    "http://FLASK_RUN_HOST:FLASK_RUN_PORT, which is http://127.0.0.1:5000).",
)
def check(url: str | None) -> None:
    """Check the settings against the provider; exit status 1 on a problem."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    base_url = url or default_base_url(app)
    guessed = "" if url or configured_base_url(app) else " (a guess: give --url)"
    click.echo(f"Checking the sign-in of {app.name} at {base_url}{guessed}")
    findings = check_app(app, base_url)
    for finding in findings:
        click.echo(f"  {MARKS[finding.level]}  {finding.topic}: {finding.message}")
    problems = sum(f.level == PROBLEM for f in findings)
    warnings = sum(f.level not in (OK, PROBLEM) for f in findings)
    click.echo(f"{problems} problem(s), {warnings} warning(s).")
    if problems:
        raise SystemExit(1)


@oidc_commands.command("sessions")
@click.option("--sub", help="Only this user's sessions.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per session.")
def sessions(sub: str | None, as_json: bool) -> None:
    """List the signed-in sessions: user, provider session, renewal deadline, store."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    records = relying_party().token_store.records()
    if records is None:
        raise click.ClickException(
            f"sessions in {store_label(app)} cannot be listed: use the embedded store or Redis"
        )
    store = store_label(app)
    count = 0
    for _, tokens in records:
        claims = tokens.claims
        if sub is not None and claims.get("sub") != sub:
            continue
        count += 1
        row = {
            "sub": claims.get("sub"),
            "sid": claims.get("sid"),
            "provider": tokens.provider or "default",
            "renew_at": datetime.fromtimestamp(tokens.renew_at)
            .astimezone()
            .isoformat(timespec="seconds"),
            "store": store,
        }
        if as_json:
            click.echo(json.dumps(row))
        else:
            click.echo(
                f"{row['sub']}  provider session {row['sid'] or '-'}  ({row['provider']})  "
                f"renews at {row['renew_at']}"
            )
    if not as_json:
        click.echo(f"{count} signed-in session(s) in {store}.")


@oidc_commands.command("logout")
@click.option("--sub", help="End every session of this user.")
@click.option("--sid", help="End every session of this provider session.")
def logout(sub: str | None, sid: str | None) -> None:
    """End sessions as a back-channel logout from the provider would: for every worker (and,
    with Redis, every host), their tokens deleted here (not revoked at the provider)."""
    if (sub is None) == (sid is None):
        raise click.UsageError("give --sub or --sid")
    party = relying_party()
    index = party.token_store.index
    if index is None:
        raise click.ClickException(
            "ending sessions from here needs a shared store: the embedded store or Redis"
        )
    claim, value = ("sub", sub) if sub is not None else ("sid", sid)
    records = party.token_store.records()
    issuers = (
        {str(t.claims.get("iss")) for _, t in records if t.claims.get(claim) == value}
        if records is not None
        else {p.settings.issuer for p in party.providers.values()}
    )
    ended = sum(index.end(issuer, claim, str(value)) for issuer in issuers)  # live ones only
    log.info("ended %d session(s) of %s %s from the command line", ended, claim, value)
    click.echo(f"Ended {ended} session(s) of {claim} {value}.")
