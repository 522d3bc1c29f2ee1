"""Groups against the real development provider: a group removed there takes effect here at the
next renewal (by refresh token, or by the browser's ``prompt=none`` round trip), and the sign-in
gate keeps out users of no allowed group."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from conftest import Served
from provider_forms import follow, sign_in

from flask_oidc_refresh.testing import pass_renewal_deadline


@pytest.mark.parametrize("renewal", ["refresh-token", "prompt-none"])
def test_a_group_removed_at_the_provider_takes_effect_at_the_next_renewal(
    example_app: Callable[..., Served], tmp_path: Path, renewal: str
) -> None:
    accounts = tmp_path / "accounts.json"
    served = example_app(
        OP_ACCOUNTS_FILE=str(accounts),
        OIDC_USE_REFRESH_TOKENS="true" if renewal == "refresh-token" else "false",
    )
    http = requests.Session()
    assert "id='admin'" in sign_in(http, f"{served.base}/admin", user="admin").text
    accounts.write_text(json.dumps({"admin": {"groups": ["users"]}}))  # removed from admins
    assert follow(http, f"{served.base}/admin").status_code == 200  # until the next renewal
    pass_renewal_deadline(served.client(http))
    page = follow(http, f"{served.base}/admin")
    assert page.status_code == 403
    assert "does not have access" in page.text
    assert follow(http, f"{served.base}/profile").status_code == 200  # still signed in


def test_the_sign_in_gate_keeps_out_users_of_no_allowed_group(
    example_app: Callable[..., Served],
) -> None:
    served = example_app(OIDC_ALLOWED_GROUPS="admins")
    outsider = requests.Session()
    page = sign_in(outsider, f"{served.base}/profile", user="alice")
    assert page.status_code == 403
    assert "not allowed to use this application" in page.text
    member = requests.Session()
    assert (
        '<strong id="sub">admin</strong>' in sign_in(member, f"{served.base}/profile", "admin").text
    )


def test_a_user_removed_from_the_allowed_groups_is_signed_out_at_the_next_renewal(
    example_app: Callable[..., Served], tmp_path: Path
) -> None:
    accounts = tmp_path / "accounts.json"
    served = example_app(OP_ACCOUNTS_FILE=str(accounts), OIDC_ALLOWED_GROUPS="admins")
    http = requests.Session()
    sign_in(http, f"{served.base}/profile", user="admin")
    accounts.write_text(json.dumps({"admin": {"groups": []}}))
    pass_renewal_deadline(served.client(http))
    assert follow(http, f"{served.base}/profile").status_code == 403
    api = http.get(f"{served.base}/api/me", headers={"Accept": "application/json"})
    assert api.status_code == 401  # signed out
