"""The bundled fetch wrapper: served by the blueprint, included with one template call, small."""

from __future__ import annotations

import gzip
from pathlib import Path

import rjsmin
from flask import Flask, render_template_string
from flask.testing import FlaskClient

STATIC = Path(__file__).parent.parent / "flask_oidc_refresh" / "static"


def test_template_helper_emits_the_script_tag(app: Flask) -> None:
    with app.test_request_context():
        html = render_template_string("{{ oidc_refresh_script() }}")
    assert html == '<script src="/oidc/static/oidc-refresh.js" data-mode="silent"></script>'


def test_template_helper_renders_its_options_and_csp_nonce(app: Flask) -> None:
    with app.test_request_context():
        html = render_template_string(
            "{{ oidc_refresh_script(nonce='r4nd0m', mode='navigate', install=True) }}"
        )
    assert html == (
        '<script src="/oidc/static/oidc-refresh.js" data-mode="navigate" data-install="fetch"'
        ' nonce="r4nd0m"></script>'
    )


def test_template_helper_escapes_what_it_inserts(app: Flask) -> None:
    with app.test_request_context():
        html = render_template_string(
            "{{ oidc_refresh_script(nonce=evil) }}", evil='"><script>x()</script>'
        )
    assert "<script>x()" not in html
    assert 'nonce="&#34;&gt;&lt;script&gt;x()&lt;/script&gt;"' in html


def test_template_helper_refuses_an_unknown_mode(app: Flask) -> None:
    import pytest

    with app.test_request_context(), pytest.raises(ValueError, match="mode"):
        render_template_string("{{ oidc_refresh_script(mode='loud') }}")


def test_script_and_module_are_served(client: FlaskClient) -> None:
    with client.get("/oidc/static/oidc-refresh.js") as response:
        assert response.status_code == 200
        assert response.mimetype == "text/javascript"
    with client.get("/oidc/static/oidc-refresh.mjs") as response:
        assert response.status_code == 200
        assert response.mimetype == "text/javascript"
        assert b"export default oidcRefresh" in response.data


def test_script_is_under_3_kb_minified() -> None:
    minified = rjsmin.jsmin((STATIC / "oidc-refresh.js").read_text())
    gzipped = len(gzip.compress(minified.encode()))
    print(f"oidc-refresh.js: {len(minified)} bytes minified, {gzipped} gzipped")
    assert len(minified) < 3 * 1024
