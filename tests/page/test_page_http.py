"""The operator page over HTTP (TestClient): login, session cookie, CSRF, escaping, headers."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient
from support import T0
from support.page_world import (
    ADMIN_TOKEN,
    EVIL_AUDIENCE,
    EVIL_EMAIL,
    READ_TOKEN,
    World,
    build_world,
)

from exporter.cloudflare.wire import group_from_json
from exporter.core.webhooks import page_link
from exporter.demo.sample import add_member
from exporter.demo.simulator import CloudflareSimulator
from exporter.web.page import card_id

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " frame-ancestors 'none'"
)


def logged_in(world: World, token: str) -> TestClient:
    client = TestClient(world.app, follow_redirects=False)
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    answer = client.post("/login", data={"token": token, "csrf": csrf.group(1)})
    assert answer.status_code == 303, answer.text
    return client


def page_csrf(client: TestClient) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', client.get("/").text)
    assert found is not None
    return found.group(1)


def test_logged_out_is_sent_to_login(world: World) -> None:
    client = TestClient(world.app, follow_redirects=False)
    answer = client.get("/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"
    assert client.get("/fragments/live").status_code == 401
    assert client.get("/fragments/details", params={"audience": "developers"}).status_code == 401
    assert client.post("/iam/drift/sync", json={"audience": "developers"}).status_code == 401


def test_wrong_token_fails(world: World) -> None:
    client = TestClient(world.app, follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert csrf is not None
    answer = client.post("/login", data={"token": "not-the-token", "csrf": csrf.group(1)})
    assert answer.status_code == 401
    assert "That token is not valid." in answer.text
    assert "vault_drift_session" not in answer.headers.get("set-cookie", "")
    assert client.get("/").status_code == 303


def test_login_form_needs_its_csrf(world: World) -> None:
    client = TestClient(world.app, follow_redirects=False)
    answer = client.post("/login", data={"token": ADMIN_TOKEN, "csrf": "forged"})
    assert answer.status_code == 400
    assert "vault_drift_session" not in answer.headers.get("set-cookie", "")


def test_session_cookie_flags_and_content(world: World) -> None:
    client = TestClient(world.app, follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert csrf is not None
    answer = client.post("/login", data={"token": ADMIN_TOKEN, "csrf": csrf.group(1)})
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("vault_drift_session=")
    )
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/" in flags
    assert any(f.startswith("max-age=") and int(f.split("=")[1]) <= 12 * 3600 for f in flags)
    assert ADMIN_TOKEN not in cookie
    assert client.get("/").status_code == 200


def test_tampered_cookie_is_no_session(world: World) -> None:
    client = logged_in(world, READ_TOKEN)
    value = client.cookies["vault_drift_session"]
    payload, rest = value.split(".", 1)
    client.cookies.clear()
    client.cookies.set("vault_drift_session", payload[:-2] + "AA." + rest)
    assert client.get("/").status_code == 303


def test_read_session_sees_everything_but_cannot_act(world: World) -> None:
    client = logged_in(world, READ_TOKEN)
    html = client.get("/").text
    assert "lms-instructors" in html and "bob@example.com" in html
    assert "Read-only session" in html
    buttons = re.findall(
        r'<button[^>]*data-action="(?:sync|retry|create-group|fix-all|unignore)"[^>]*>', html
    )
    assert len(buttons) == 5 and all("disabled" in b for b in buttons)
    assert 'data-action="ignore"' not in html  # a disabled button, not the dialog's link
    assert re.search(r'<input id="s-check_interval_seconds"[^>]* disabled>', html)
    headers = {"X-CSRF-Token": page_csrf(client), "X-Vault-Drift-Page": "1"}
    refused = client.post("/iam/drift/sync", json={"audience": "lms-instructors"}, headers=headers)
    assert refused.status_code == 403
    assert client.get("/iam/drift").status_code == 200


def test_admin_session_acts_only_with_csrf(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    body = {"audience": "lms-instructors", "dry_run": True}
    missing = client.post("/iam/drift/sync", json=body)
    assert missing.status_code == 403
    assert missing.json()["error"] == "missing or invalid CSRF token"
    wrong = client.post("/iam/drift/sync", json=body, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    ok = client.post("/iam/drift/sync", json=body, headers={"X-CSRF-Token": page_csrf(client)})
    assert ok.status_code == 200
    assert ok.json()["results"][0]["added"] == ["alice@example.com", "bob@example.com"]


def test_logout_needs_csrf_and_ends_the_session(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert client.get("/").status_code == 200
    answer = client.post("/logout", data={"csrf": page_csrf(client)})
    assert answer.status_code == 303
    assert client.get("/").status_code == 303


def test_injected_names_are_escaped(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    html = client.get("/").text
    assert EVIL_AUDIENCE not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert EVIL_EMAIL not in html and "<script>alert(2)</script>" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert f'id="{card_id(EVIL_AUDIENCE)}"' in html
    details = client.get("/fragments/details", params={"audience": EVIL_AUDIENCE})
    assert details.status_code == 200
    assert "<script>alert(2)" not in details.text and "&lt;script&gt;alert(2)" in details.text


def test_page_shows_the_seed_screens(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    html = client.get("/").text
    assert "TPB Vault" in html
    assert "Cloudflare Access" in html and "Last check:" in html
    assert "Vault expects: <strong>8</strong> members" in html
    assert "CF Access has: <strong>7</strong> members" in html
    assert "(added in Vault 2 h ago)" in html
    assert "manually added?" in html
    assert "lms-instructors (2 missing, 1 extra)" in html
    assert "sales-team (API error)" in html
    assert "Infrastructure Sync" in html and "2 groups in sync" in html
    order = [html.index(f'data-audience="{name}"') for name in ("lms-instructors", "sales-team")]
    assert order == sorted(order) and html.index('data-audience="administrators"') > order[-1]
    badge = re.search(r'class="badge level-(\w+)".*?class="badge-count">(\d+)<', html, re.S)
    assert badge is not None and badge.groups() == ("warning", "3")


def test_details_fragment_pages_members(world: World) -> None:
    world.add_extra_emails("developers", 150)
    world.checker.check_all("test")
    client = logged_in(world, READ_TOKEN)
    html = client.get("/").text
    assert "and 145 more" in html  # a card shows 5 members per side
    assert html.count('150 extra members</strong>, <span class="hint">manually added?') == 1
    first = client.get("/fragments/details", params={"audience": "developers"}).text
    assert "(1\N{EN DASH}100 of 150)" in first
    assert 'href="/details?audience=developers&amp;offset=100&amp;limit=100"' in first
    assert "contractors.example.com" in first  # other rules, read-only
    second = client.get("/fragments/details", params={"audience": "developers", "offset": 100}).text
    assert "(101\N{EN DASH}150 of 150)" in second
    assert 'href="/details?audience=developers&amp;limit=100"' in second  # back to offset 0


def test_hints_name_exclusions_and_domain_rules_and_rules_show_their_list(world: World) -> None:
    gid = world.group_id("developers")
    group = world.simulator.group(gid)
    group["exclude"] = [{"email": {"email": "dev2@example.com"}}]
    world.checker.cloudflare.replace_group(group_from_json(group))  # type: ignore[arg-type]
    with sqlite3.connect(world.path) as conn:
        add_member(conn, "pat@contractors.example.com", "g-2", T0)
    world.checker.check_all("test")
    client = logged_in(world, READ_TOKEN)
    card = client.get("/").text
    assert "excluded in Cloudflare" in card
    assert "has access through the domain rule contractors.example.com" in card
    details = client.get("/fragments/details", params={"audience": "developers"}).text
    assert '<span class="rule-list">exclude</span>' in details
    assert "has access through the domain rule contractors.example.com" in details


def test_security_headers(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    for path in ("/", "/login", "/fragments/live", "/static/page.js", "/static/page.css"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert client.get("/static/page.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/../page.py").status_code == 404
    assert "<script>" not in client.get("/").text and "style=" not in client.get("/").text


def test_without_admin_token_the_page_explains(
    tmp_path: Path, simulator: CloudflareSimulator, http_session: requests.Session
) -> None:
    world = build_world(tmp_path, simulator, http_session, evil=False, admin=None)
    client = TestClient(world.app, follow_redirects=False)
    for path in ("/", "/login"):
        answer = client.get(path)
        assert answer.status_code == 200
        assert "VAULT_DRIFT_ADMIN_TOKEN" in answer.text and "disabled" in answer.text
    assert client.post("/login", data={"token": READ_TOKEN}).status_code == 403


@pytest.mark.parametrize("bad", ["", "x" * 20])
def test_unknown_session_never_acts(world: World, bad: str) -> None:
    client = TestClient(world.app, follow_redirects=False)
    client.cookies.set("vault_drift_session", bad or "e30", path="/")
    answer = client.post("/iam/drift/check", json={}, headers={"X-CSRF-Token": bad})
    assert answer.status_code == 401
    with sqlite3.connect(world.path) as conn:
        assert conn.execute("SELECT count(*) FROM sys_infra_drift_audit").fetchone() == (0,)


def test_script_never_writes_html_from_data() -> None:
    script = (Path(__file__).parents[2] / "exporter/web/static/page.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


def test_a_webhook_events_link_opens_its_audience(world: World) -> None:
    """``data.url`` of a webhook event (docs/webhooks.md) is the audience's details page,
    whatever its name holds."""
    client = logged_in(world, READ_TOKEN)
    for audience in ("developers", EVIL_AUDIENCE):
        link = page_link("http://testserver", audience)
        answer = client.get(link.removeprefix("http://testserver"))
        assert answer.status_code == 200, link
        escaped = audience.replace("<", "&lt;").replace(">", "&gt;")
        assert f'<h1>Group “<span class="name">{escaped}</span>”</h1>' in answer.text
    assert client.get(page_link("", "no-such-audience")).status_code == 404
