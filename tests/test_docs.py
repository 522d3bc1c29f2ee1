"""The docs' code runs as printed: every Python block of the docs and the README, and the
example files they include, which a newcomer copies first."""

from __future__ import annotations

import importlib.util
import os
import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import requests
from conftest import DevProvider, Serve, free_port
from fake_provider import API_AUDIENCE, FakeProvider
from flask import Blueprint, Flask, abort
from provider_forms import sign_in

from flask_oidc_refresh import OIDC

ROOT = Path(__file__).parent.parent
RST_BLOCK = re.compile(r"^\.\. code-block:: python\n\n((?:(?: {4}.*)?\n)+)", re.MULTILINE)
MARKDOWN_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_samples() -> Iterator[Any]:
    for path in sorted((ROOT / "docs").glob("*.rst")):
        text = path.read_text()
        for match in RST_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            yield pytest.param(textwrap.dedent(match.group(1)), id=f"{path.name}:{line}")
    readme = (ROOT / "README.md").read_text()
    for match in MARKDOWN_BLOCK.finditer(readme):
        line = readme.count("\n", 0, match.start()) + 1
        yield pytest.param(match.group(1), id=f"README.md:{line}")


class Users:
    """The app's own users, as the samples query them (``User.query.filter_by(...)``)."""

    def __init__(self) -> None:
        self.query = self

    def filter_by(self, **criteria: Any) -> Users:
        return self

    def one(self) -> Any:
        return SimpleNamespace(suspended=False, groups=[])

    def one_or_none(self) -> Any:
        return self.one()


def sample_app(tmp_path: Path, provider: FakeProvider) -> Flask:
    """What a sample's ``app`` is: a fresh app with a secret key, before any ``OIDC_*``."""
    app = Flask("docs_sample", instance_path=str(tmp_path / "instance"))
    app.config.update(
        SECRET_KEY="a long random value for the docs",
        OIDC_ISSUER=provider.issuer,
        OIDC_CLIENT_ID="test-client",
        OIDC_CLIENT_SECRET="test-secret",
        OIDC_API_AUDIENCE=API_AUDIENCE,
    )
    return app


def app_for_tests(tmp_path: Path, provider: FakeProvider) -> Flask:
    """The app that the testing page's sample tests are about: its routes are those they call."""
    app = sample_app(tmp_path / "tested", provider)
    oidc = OIDC(app)

    @app.get("/reports")
    @oidc.login_required
    def reports() -> str:
        return "reports"

    @app.get("/api/reports")
    @oidc.login_required
    def api_reports() -> dict[str, list[str]]:
        return {"reports": []}

    @app.get("/api/orders")
    @oidc.accept_token(scopes=["orders:read"])
    def orders() -> dict[str, list[str]]:
        return {"orders": []}

    return app


@pytest.mark.parametrize("sample", list(python_samples()))
def test_every_python_sample_runs(
    sample: str,
    tmp_path: Path,
    fake_provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.setenv("OIDC_CLIENT_SECRET", "from-the-environment")
    if "REDIS_URL" in sample:
        monkeypatch.setenv("REDIS_URL", request.getfixturevalue("shared_redis").url)
    namespace: dict[str, Any] = {
        "__name__": "docs_sample",
        "app": sample_app(tmp_path, fake_provider),
        "oidc": OIDC(),
        "os": os,
        "re": re,
        "abort": abort,
        "User": Users(),
        "db": SimpleNamespace(session=SimpleNamespace(commit=lambda: None)),
        "login_user": lambda user: None,
        "TENANT_ID": "2f1c0ae5-tenant",
        "list_orders": lambda owner: [],
        "get_order": lambda order_id, owner: {},
        "public_api": Blueprint("public_api", __name__),
    }
    if "node_url" in sample:
        namespace["node_url"] = request.getfixturevalue("shared_redis_cluster").url
    exec(compile(sample, "<docs sample>", "exec"), namespace)
    if "create_app" in namespace:  # an app factory: it builds an app that protects its views
        app = namespace["create_app"]()
        assert app.test_client().get("/reports").status_code == 302
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    for test in tests:  # the testing page's own tests, run against an app they fit
        test(app_for_tests(tmp_path, fake_provider))


def load_example(name: str) -> ModuleType:
    """A file of ``docs/examples``, as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_following_the_quickstart_signs_in_on_the_first_try(
    start_provider: Callable[..., DevProvider], serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    provider = start_provider([port])
    for key, value in {
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": "example-app",
        "OIDC_CLIENT_SECRET": "example-secret",
        "SECRET_KEY": "a long random value from the environment",
    }.items():
        monkeypatch.setenv(key, value)
    app = load_example("quickstart").create_app()
    base = serve(app, port)
    check = app.test_cli_runner().invoke(args=["oidc", "check", "--url", base])
    assert check.exit_code == 0, check.output
    http = requests.Session()
    page = sign_in(http, f"{base}/profile")
    assert page.status_code == 200
    assert "Signed in as alice." in page.text
    assert 'src="/oidc/static/oidc-refresh.js"' in page.text
    fetched = http.get(f"{base}/api/reports", headers={"Sec-Fetch-Mode": "cors"})
    assert fetched.json() == {"sub": "alice", "reports": []}


def test_the_service_to_service_sample_calls_the_api(
    example_app: Callable[..., Any],
) -> None:
    served = example_app(
        OP_SERVICE_CLIENT_ID="reporting-service", OP_SERVICE_CLIENT_SECRET="its-secret"
    )
    answer = load_example("service_client").call_api(
        f"{served.provider.issuer}/token", f"{served.base}/api/reports", "urn:example:api"
    )
    assert answer == {"for": "reporting-service", "reports": [], "scope": "api:read"}
