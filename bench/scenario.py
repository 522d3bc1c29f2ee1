"""A burst of requests at the renewal deadline, against the real development provider."""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import requests
from conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    Served,
    free_port,
    launch_gunicorn,
    launch_provider,
    stop,
)
from provider_forms import sign_in

from flask_oidc_refresh.testing import pass_renewal_deadline

FETCH = {"Accept": "*/*", "Sec-Fetch-Mode": "cors"}


def burst_at_deadline(store: dict[str, str], count: int, hosts: int = 1) -> int:
    """Sign in, pass the deadline, send ``count`` concurrent requests over ``hosts`` gunicorn
    instances (2 workers each); returns how many refresh requests reached the provider."""
    with tempfile.TemporaryDirectory() as tmp:
        ports = [free_port() for _ in range(hosts)]
        provider = launch_provider(ports, Path(tmp), OP_ROTATE_REFRESH_TOKENS="1")
        env = {
            "OIDC_ISSUER": provider.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        }
        env.update(store)
        servers = [launch_gunicorn(port, env) for port in ports]
        try:
            with mock.patch.dict("os.environ", env):
                import example_app

                local = Served(example_app.create_app(), "", provider)
            bases = [f"http://127.0.0.1:{port}" for port in ports]
            http = requests.Session()
            sign_in(http, f"{bases[0]}/profile")
            pass_renewal_deadline(local.client(http))
            cookies = {"session": http.cookies["session"]}

            def call(n: int) -> int:
                url = f"{bases[n % hosts]}/api/me"
                return requests.get(url, cookies=cookies, headers=FETCH, timeout=30).status_code

            with ThreadPoolExecutor(count) as pool:
                statuses = list(pool.map(call, range(count)))
            assert statuses == [200] * count, statuses
            grants = provider.events("grant.success")
            return sum(event.get("grant_type") == "refresh_token" for event in grants)
        finally:
            for server in servers:
                stop(server)
            provider.stop()
