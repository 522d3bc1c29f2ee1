"""Example app: sign in with OpenID Connect and watch the session stay fresh.

Every ``OIDC_*`` setting is read from the environment variable of the same name. Without
``OIDC_ISSUER`` it uses the bundled development provider on http://127.0.0.1:9400 (``make run``;
``OP_PORT``, the provider's own setting, moves it).
``OIDC_USE_REFRESH_TOKENS=false`` makes every renewal a browser round trip (``prompt=none``)
even when the provider issues refresh tokens. ``SESSION_TYPE=redis`` with ``REDIS_URL`` keeps
sessions in Redis (``REDIS_CLUSTER=1``: a Redis Cluster; ``REDIS_SENTINEL_MASTER``: the master
that the Sentinel at ``REDIS_URL`` names); ``SESSION_FILE_DIR`` moves the embedded store.
Runs under ``flask run`` and ``gunicorn -w 2 'example_app:create_app()'``.

``/api/me`` takes a signed-in browser session or a bearer token; ``/api/reports`` takes only
a bearer token with the ``api:read`` scope (the development provider's service client gets one
with the client-credentials grant); ``/admin`` lets in members of the ``admins`` group (the
development provider puts user ``admin`` there).
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, render_template_string, session
from markupsafe import Markup

from flask_oidc_refresh import OIDC, session_renewed, user_logged_in

DEVELOPMENT_PROVIDER = {
    "OIDC_ISSUER": f"http://127.0.0.1:{os.environ.get('OP_PORT', '9400')}",
    "OIDC_CLIENT_ID": "example-app",
    "OIDC_CLIENT_SECRET": "example-secret",
    # the API whose JWT access tokens the development provider issues (a resource indicator)
    "OIDC_API_AUDIENCE": "urn:example:api",
}

#: Only for trying the example out: set SECRET_KEY anywhere else.
DEVELOPMENT_SECRET_KEY = "development-only-secret-never-in-production"

oidc = OIDC()

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{{ title }} · Flask-OIDC-Refresh example</title>
<style>
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}
dt{font-weight:600}dd{margin:0 0 .5rem 0;font-family:monospace}</style></head>
<body>
<h1>{{ title }}</h1>
{% if user %}
  <p>Signed in as <strong id="sub">{{ user.sub }}</strong>
  {% if user.email %}(<span id="email">{{ user.email }}</span>){% endif %}.</p>
  {{ oidc_logout_form() }}
{% else %}
  <p><a href="{{ url_for('oidc.login', next=url_for('profile')) }}">Sign in</a></p>
{% endif %}
{{ body }}
<p><a href="{{ url_for('index') }}">Home</a> · <a href="{{ url_for('profile') }}">Profile</a>
· <a href="{{ url_for('admin') }}">Admins only</a></p>
</body></html>
"""

PROFILE = """
<h2>Your session</h2>
<ol id="timeline">
{% for label, at in timeline -%}
  <li>{{ label }} at <time data-epoch="{{ at }}"></time></li>
{% endfor %}
</ol>
<p>Next renewal: in <strong id="countdown" data-deadline="{{ deadline }}"></strong>
(at <time id="deadline" data-epoch="{{ deadline }}"></time>). Pages renew it by themselves; so do
calls made through the bundled fetch wrapper. Type something here, scroll, then call the API
after the deadline: the default mode keeps it all.</p>
<p><input id="note" placeholder="Unsaved work"></p>
<p>
  <button id="call-silent">Call /api/me, keeping this page (the default: renew in a frame)</button>
  <button id="call-navigate">Call /api/me, leaving this page to renew ("navigate" mode)</button>
</p>
<pre id="api-result"></pre>
<h2>Your claims</h2>
<dl id="claims">
{% for key, value in user|dictsort %}<dt>{{ key }}</dt><dd>{{ value }}
{%- if key in time_claims %} (<time data-epoch="{{ value }}"></time>){% endif %}</dd>{% endfor %}
</dl>
{{ oidc_refresh_script() }}
<script>
  const countdown = document.getElementById("countdown");
  function showTimes() {
    for (const time of document.querySelectorAll("time[data-epoch]")) {
      time.textContent = new Date(time.dataset.epoch * 1000).toLocaleString();
    }
  }
  function tick() {
    const left = Math.round(countdown.dataset.deadline - Date.now() / 1000);
    countdown.textContent = left > 0 ? `${left} s` : "0 s (due: the next request renews it)";
  }
  function showTimeline(timeline) {
    document.getElementById("timeline").innerHTML = timeline.map(
      ([label, at]) => `<li>${label} at <time data-epoch="${at}"></time></li>`
    ).join("");
  }
  showTimes();
  tick();
  setInterval(tick, 1000);
  async function callApi(mode) {
    oidcRefresh.configure({ mode });
    const response = await oidcRefresh.fetch("/api/me");
    const body = await response.json();
    countdown.dataset.deadline = body.renewal_deadline;
    document.getElementById("deadline").dataset.epoch = body.renewal_deadline;
    showTimeline(body.timeline);
    showTimes();
    tick();
    document.getElementById("api-result").textContent = JSON.stringify(body, null, 2);
  }
  document.getElementById("call-silent").onclick = () => callApi("silent");
  document.getElementById("call-navigate").onclick = () => callApi("navigate");
</script>
"""
#: Claims that are times (seconds since 1970), shown readable too.
TIME_CLAIMS = ("auth_time", "exp", "iat", "nbf", "updated_at")
#: How the timeline names each way of renewing.
RENEWAL_METHODS = {"refresh_token": "the refresh token", "prompt_none": "a prompt=none round trip"}


def redis_client(url: str) -> Any:
    """A client of the Redis at ``url``; of the cluster it belongs to with ``REDIS_CLUSTER=1``;
    of the master that the Sentinel at ``url`` names ``REDIS_SENTINEL_MASTER``."""
    timeouts = {"socket_timeout": 2, "socket_connect_timeout": 2}
    if os.environ.get("REDIS_SENTINEL_MASTER"):
        from urllib.parse import urlsplit

        from redis import sentinel

        address = urlsplit(url)
        manager: Any = sentinel.Sentinel  # redis-py leaves Sentinel untyped
        sentinels = manager([(address.hostname, address.port)], sentinel_kwargs=timeouts)
        return sentinels.master_for(os.environ["REDIS_SENTINEL_MASTER"], **timeouts)
    if os.environ.get("REDIS_CLUSTER") in ("1", "true"):
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url, **timeouts)
    from redis import Redis

    return Redis.from_url(url, **timeouts)


def create_app() -> Flask:
    """The example app, configured from the environment."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ.get(
        "SECRET_KEY", "development-only-secret-never-in-production"
    )
    settings = {k: v for k, v in os.environ.items() if k.startswith("OIDC_")}
    if "OIDC_ISSUER" not in settings:
        settings = {**DEVELOPMENT_PROVIDER, **settings}
    app.config.update(settings)
    for key in ("SESSION_TYPE", "SESSION_FILE_DIR"):
        if os.environ.get(key):
            app.config[key] = os.environ[key]
    if os.environ.get("REDIS_URL"):
        app.config["SESSION_REDIS"] = redis_client(os.environ["REDIS_URL"])
    oidc.init_app(app)
    keep_a_timeline(app)

    def page(title: str, body: str = "") -> str:
        inner = Markup(
            render_template_string(
                body,
                user=oidc.user,
                deadline=oidc.renewal_deadline,
                timeline=session.get("timeline", []),
                time_claims=TIME_CLAIMS,
            )
        )
        return render_template_string(PAGE, title=title, body=inner, user=oidc.user)

    @app.get("/")
    def index() -> str:
        return page("Flask-OIDC-Refresh example")

    @app.get("/profile")
    @oidc.login_required
    def profile() -> str:
        return page("Profile", PROFILE)

    @app.get("/admin")
    @oidc.login_required(claims={"groups": "admins"})
    def admin() -> str:
        return page("Admins only", "<p id='admin'>Only members of the admins group see this.</p>")

    @app.route("/api/me", methods=["GET", "POST"])
    @oidc.accept_token(allow_session=True)
    def api_me() -> dict[str, Any]:
        if oidc.token_claims is not None:  # an API client, with a bearer token
            return {"token": oidc.token_claims}
        return {
            "user": oidc.user,
            "renewal_deadline": oidc.renewal_deadline,
            "timeline": session.get("timeline", []),
        }

    @app.get("/api/reports")
    @oidc.accept_token(scopes=["api:read"])
    def api_reports() -> dict[str, Any]:
        claims = oidc.token_claims or {}
        return {"reports": [], "for": claims.get("client_id"), "scope": claims.get("scope")}

    @app.get("/api/health")
    @oidc.exempt
    def api_health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def keep_a_timeline(app: Flask) -> None:
    """Note each sign-in and renewal in the session, for the profile page to show."""

    def signed_in(sender: Flask, claims: dict[str, Any], **extra: Any) -> None:
        session["timeline"] = [["Signed in", round(time.time())]]

    def renewed(sender: Flask, claims: dict[str, Any], method: str, **extra: Any) -> None:
        event = [f"Renewed with {RENEWAL_METHODS[method]}", round(time.time())]
        session["timeline"] = [*session.get("timeline", [])[-9:], event]

    user_logged_in.connect(signed_in, app, weak=False)
    session_renewed.connect(renewed, app, weak=False)
