"""The bundled fetch wrapper in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import Serve, Served, require_tool

from flask_oidc_refresh.testing import pass_renewal_deadline

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--test-third-party-cookie-phaseout",  # third-party cookies blocked, as browsers go
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Tab:
    """A signed-in page of the example app, with what it asked the server for."""

    def __init__(self, served: Served, page: Page) -> None:
        self.served = served
        self.page = page
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))

    def pass_renewal_deadline(self) -> None:
        cookie = next(c for c in self.page.context.cookies() if c["name"] == "session")
        pass_renewal_deadline(self.served.client(_Cookies(cookie["value"])))

    def renewals(self) -> int:
        return sum("/oidc/refresh?" in url for url in self.requests)

    def silent_authorizations(self) -> int:
        events = self.served.provider.events("authorization.success")
        return sum(e.get("prompt") == "none" for e in events)


class _Cookies:
    def __init__(self, sid: str) -> None:
        self.cookies = {"session": sid}


@pytest.fixture
def tab(browser: Browser, example_app: Callable[..., Served]) -> Iterator[Tab]:
    served = example_app(OIDC_USE_REFRESH_TOKENS="false")  # the browser renews, not the server
    context = browser.new_context()
    page = signed_in_page(context, served.base)
    yield Tab(served, page)
    context.close()


def signed_in_page(context: BrowserContext, base: str) -> Page:
    """A page of ``context`` signed in as alice on the example app at ``base``."""
    context.set_default_timeout(20_000)  # a stuck page fails fast, with Playwright's reason
    page = context.new_page()
    page.goto(f"{base}/profile")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", "secret")
    page.click("button[type=submit]")
    page.click("button[type=submit]")  # consent
    page.wait_for_url(f"{base}/profile")
    return page


def test_profile_page_shows_the_user_and_the_countdown(tab: Tab) -> None:
    page = tab.page
    assert page.text_content("#sub") == "alice"
    assert page.text_content("#email") == "alice@example.test"
    countdown = page.text_content("#countdown")
    assert countdown is not None
    assert countdown.endswith(" s")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "profile.png"), full_page=True)


def test_fetch_with_fresh_tokens_goes_through_without_a_renewal(tab: Tab) -> None:
    tab.page.click("#call-navigate")
    tab.page.wait_for_selector("#api-result:has-text('alice')")
    assert tab.renewals() == 0


def test_navigate_mode_renews_and_comes_back(tab: Tab) -> None:
    page = tab.page
    page.evaluate("history.replaceState(null, '', '/profile?tab=api#result')")
    tab.pass_renewal_deadline()
    with page.expect_navigation(url=f"{tab.served.base}/profile?tab=api#result"):
        page.click("#call-navigate")
    assert tab.renewals() == 1
    assert tab.silent_authorizations() == 1
    page.click("#call-navigate")
    page.wait_for_selector("#api-result:has-text('alice')")
    deadline = page.evaluate(
        "JSON.parse(document.getElementById('api-result').textContent).renewal_deadline"
    )
    assert deadline > time.time() + 800
    assert not any("/interaction/" in url for url in tab.requests)  # no form shown


def test_silent_mode_renews_in_a_frame_and_retries_without_leaving(tab: Tab) -> None:
    page = tab.page
    page.evaluate("window.stillHere = true")
    tab.pass_renewal_deadline()
    page.click("#call-silent")
    page.wait_for_selector("#api-result:has-text('alice')")
    assert page.evaluate("window.stillHere") is True
    deadline = page.evaluate(
        "JSON.parse(document.getElementById('api-result').textContent).renewal_deadline"
    )
    assert deadline > time.time() + 800
    assert tab.renewals() == 1
    assert page.evaluate("document.querySelectorAll('iframe').length") == 0  # cleaned up


def test_parallel_calls_cause_one_renewal(tab: Tab) -> None:
    page = tab.page
    tab.pass_renewal_deadline()
    statuses = page.evaluate(
        """() => {
            oidcRefresh.configure({ mode: "silent" });
            const calls = Array.from({ length: 8 }, () => oidcRefresh.fetch("/api/me"));
            return Promise.all(calls.map(call => call.then(r => r.status)));
        }"""
    )
    assert statuses == [200] * 8
    assert tab.renewals() == 1
    assert tab.silent_authorizations() == 1


def test_a_custom_handler_gets_the_refresh_url_and_nothing_is_renewed(tab: Tab) -> None:
    page = tab.page
    tab.pass_renewal_deadline()
    result = page.evaluate(
        """async () => {
            oidcRefresh.configure({
                onRefreshRequired: ({ refreshUrl, response }) => {
                    window.banner = `Please renew: ${refreshUrl}`;
                    return response;
                },
            });
            const response = await oidcRefresh.fetch("/api/me");
            return { status: response.status, banner: window.banner };
        }"""
    )
    assert result == {"status": 403, "banner": "Please renew: /oidc/refresh?next=/profile"}
    assert tab.renewals() == 0
    assert page.url == f"{tab.served.base}/profile"


def test_silent_mode_falls_back_to_navigation_when_the_provider_wants_the_user(tab: Tab) -> None:
    page = tab.page
    provider = tab.served.provider.issuer
    page.context.clear_cookies(domain="127.0.0.1", name="_session")
    page.context.clear_cookies(domain="127.0.0.1", name="_session.legacy")
    tab.pass_renewal_deadline()
    with page.expect_navigation(url=f"{provider}/interaction/**"):
        page.click("#call-silent")
    assert 'name="prompt"' in page.content()  # the provider's login form, shown to the user


def test_installed_wrapper_replaces_window_fetch_and_loads_as_a_module(tab: Tab) -> None:
    page = tab.page
    tab.pass_renewal_deadline()
    result = page.evaluate(
        """async () => {
            const module = await import("/oidc/static/oidc-refresh.mjs");
            module.oidcRefresh.configure({ mode: "silent" }).install();
            const response = await fetch("/api/me");
            return { same: module.default === window.oidcRefresh, status: response.status };
        }"""
    )
    assert result == {"same": True, "status": 200}
    assert tab.renewals() == 1


def test_another_origins_403_with_refresh_url_is_left_alone(tab: Tab, serve: Serve) -> None:
    from flask import Flask

    other = Flask("other-origin")

    @other.get("/api")
    def api() -> tuple[dict[str, str], int, dict[str, str]]:
        headers = {
            "refresh_url": "javascript:alert(document.cookie)//",
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Expose-Headers": "refresh_url",
        }
        return {"error": "refresh_required"}, 403, headers

    api_url = f"{serve(other)}/api"
    page = tab.page
    result = page.evaluate(
        """async (url) => {
            oidcRefresh.configure({ mode: "silent" }).install();
            const response = await fetch(url);
            return { status: response.status, frames: document.querySelectorAll("iframe").length };
        }""",
        api_url,
    )
    assert result == {"status": 403, "frames": 0}
    assert page.url == f"{tab.served.base}/profile"
    assert tab.renewals() == 0


def test_the_cookies_are_httponly_and_lax_through_sign_in_and_renewal(tab: Tab) -> None:
    tab.pass_renewal_deadline()
    tab.page.click("#call-silent")  # renewed in a hidden frame, with these cookies
    tab.page.wait_for_selector("#api-result:has-text('alice')")
    assert tab.renewals() == 1
    [session] = [c for c in tab.page.context.cookies() if c["name"] == "session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"


def test_a_tab_left_open_after_logout_goes_to_sign_in_instead_of_showing_json(tab: Tab) -> None:
    page = tab.page
    # signed out in another tab: with the browser's cookies, without the provider's pages
    logout = page.context.request.post(f"{tab.served.base}/oidc/logout", max_redirects=0)
    assert logout.status == 302
    page.click("#call-navigate")
    for _ in range(100):  # the wrapper navigates to the sign-in page
        if any("/oidc/login?next=" in url for url in tab.requests):
            break
        page.wait_for_timeout(100)
    assert any("/oidc/login?next=" in url for url in tab.requests)
    assert "login_required" not in (page.text_content("body") or "")


def test_a_page_load_goes_to_sign_in_and_a_plain_fetch_gets_401_json(
    browser: Browser, example_app: Callable[..., Served]
) -> None:
    served = example_app()
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{served.base}/")
    result = page.evaluate(
        """async () => {
            const response = await fetch("/profile");  // no wrapper, no X-Requested-With
            return {status: response.status, body: await response.json()};
        }"""
    )
    assert result == {
        "status": 401,
        "body": {"error": "login_required", "error_description": "Sign-in required."},
    }
    page.goto(f"{served.base}/profile")  # a real navigation: Chromium's own headers
    assert page.url.startswith(f"{served.provider.issuer}/")
    assert page.locator("input[name=login]").count() == 1
    context.close()


def test_the_default_mode_keeps_the_users_work(tab: Tab) -> None:
    page = tab.page
    page.fill("#note", "half-written reply")
    page.evaluate("window.stillHere = true; document.body.style.minHeight = '3000px'")
    page.evaluate("window.scrollTo(0, 400)")
    tab.pass_renewal_deadline()
    status = page.evaluate("async () => (await oidcRefresh.fetch('/api/me')).status")
    assert status == 200  # the call's own result, after a renewal
    assert tab.renewals() == 1
    assert page.evaluate("window.stillHere") is True
    assert page.input_value("#note") == "half-written reply"
    assert page.evaluate("window.scrollY") == 400


def test_the_timeline_shows_each_renewal(tab: Tab) -> None:
    page = tab.page
    assert page.text_content("#timeline li").startswith("Signed in at ")  # type: ignore[union-attr]
    tab.pass_renewal_deadline()
    page.click("#call-silent")
    page.wait_for_selector("#timeline li:nth-child(2)")
    renewed = page.text_content("#timeline li:nth-child(2)") or ""
    assert renewed.startswith("Renewed with a prompt=none round trip at ")
    assert "1970" not in renewed  # a readable time, not an epoch number
    page.screenshot(path=str(ARTIFACTS / "profile-renewed.png"), full_page=True)


def test_with_third_party_cookies_blocked_the_default_falls_back_to_navigating(
    browser: Browser, example_app: Callable[..., Served]
) -> None:
    """The app on localhost, its provider on 127.0.0.1: another site, whose cookies a hidden
    frame does not get. The renewal then leaves the page, and comes back signed in."""
    served = example_app(OIDC_USE_REFRESH_TOKENS="false")
    base = served.base.replace("127.0.0.1", "localhost")
    context = browser.new_context()
    page = signed_in_page(context, base)
    cookie = next(c for c in context.cookies() if c["name"] == "session")
    pass_renewal_deadline(served.client(_Cookies(cookie["value"])))
    page.evaluate("window.stillHere = true")
    with page.expect_navigation(url=f"{base}/profile"):
        page.evaluate("() => { oidcRefresh.fetch('/api/me'); }")  # default mode
    assert page.evaluate("window.stillHere") is None  # the page was left, and loaded again
    assert page.text_content("#sub") == "alice"
    timeline = page.locator("#timeline li").all_text_contents()
    assert [entry.split(" at ")[0] for entry in timeline] == [
        "Signed in",
        "Renewed with a prompt=none round trip",  # the same sign-in, renewed: nothing lost
    ]
    [after] = [c for c in context.cookies() if c["name"] == "session"]
    assert after["value"] == cookie["value"]  # the same session
    context.close()
