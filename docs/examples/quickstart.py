"""The Quickstart's app: sign-in, a protected page, and an API its script calls."""

import os

from flask import Flask, render_template_string

from flask_oidc_refresh import OIDC

oidc = OIDC()

PROFILE = """<!doctype html>
<title>Profile</title>
<p>Signed in as {{ user.sub }}.</p>
{{ oidc_logout_form() }}
<button id="load">Load my reports</button>
<pre id="reports"></pre>
{{ oidc_refresh_script() }}
<script>
  document.getElementById("load").onclick = async () => {
    const response = await oidcRefresh.fetch("/api/reports");
    document.getElementById("reports").textContent = await response.text();
  };
</script>
"""


def create_app():
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ["SECRET_KEY"],
        OIDC_ISSUER=os.environ["OIDC_ISSUER"],  # https://login.example.com/realms/main
        OIDC_CLIENT_ID=os.environ["OIDC_CLIENT_ID"],
        OIDC_CLIENT_SECRET=os.environ["OIDC_CLIENT_SECRET"],
    )
    oidc.init_app(app)

    @app.get("/profile")
    @oidc.login_required
    def profile():
        return render_template_string(PROFILE, user=oidc.user)

    @app.get("/api/reports")
    @oidc.login_required
    def reports():
        return {"sub": oidc.user["sub"], "reports": []}

    return app
