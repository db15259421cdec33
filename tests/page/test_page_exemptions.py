"""Exemptions on the operator page: a member's "Exempt…" form, the exemptions list of an
audience with its end date, ending one, the filter; as plain forms (no JavaScript) and in a
real Chromium (axe-clean). The owner is the name given at login."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect
from support.page_world import ADMIN_TOKEN, READ_TOKEN, World
from test_page_http import logged_in, page_csrf

AUD = "lms-instructors"  # the sample: alice and bob missing, olduser extra
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SERIOUS = ("serious", "critical")


def named_login(world: World, token: str, user: str) -> TestClient:
    client = TestClient(world.app, follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert csrf is not None
    answer = client.post("/login", data={"token": token, "csrf": csrf.group(1), "user": user})
    assert answer.status_code == 303
    return client


def rows(world: World) -> list[tuple[Any, ...]]:
    with sqlite3.connect(world.path) as conn:
        return conn.execute(
            "SELECT email, side, reason, owner, end_reason, ended_by"
            " FROM sys_infra_drift_exemption ORDER BY id"
        ).fetchall()


def exempt(client: TestClient, **fields: str) -> Any:
    data = {"csrf": page_csrf(client), "audience": AUD, "duration": "7d", **fields}
    return client.post("/forms/exempt", data=data)


def test_each_member_has_an_exempt_action_and_its_form(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    html = client.get("/").text
    link = "/exempt?audience=lms-instructors&amp;email=olduser%40example.com&amp;side=extra"
    assert link in html
    assert "/exempt?audience=lms-instructors&amp;email=bob%40example.com&amp;side=missing" in html
    form = client.get(
        "/exempt", params={"audience": AUD, "email": "bob@example.com", "side": "missing"}
    )
    assert form.status_code == 200
    assert 'value="bob@example.com"' in form.text
    assert '<option value="missing" selected>' in form.text
    assert client.get("/exempt", params={"audience": "nope"}).status_code == 404


def test_the_form_exempts_with_the_page_user_as_owner_and_ends_it(world: World) -> None:
    client = named_login(world, ADMIN_TOKEN, "jane@corp.example")
    done = exempt(client, email="olduser@example.com", side="extra", reason="break-glass")
    assert done.status_code == 200 and "Exempted olduser@example.com (extra)" in done.text
    assert rows(world) == [
        ("olduser@example.com", "extra", "break-glass", "page:jane@corp.example", None, None)
    ]
    html = client.get("/").text
    card = html[html.index('data-audience="lms-instructors"') :]
    assert "Exempt members (1)" in card and "break-glass" in card
    assert "(page:jane@corp.example)" in card and "until <time" in card
    assert "Extra in Cloudflare" not in card[: card.index("</article>")]  # no longer drift
    ended = client.post(
        "/forms/unexempt",
        data={"csrf": page_csrf(client), "audience": AUD, "email": "olduser@example.com"},
    )
    assert ended.status_code == 200 and "drifts again from now" in ended.text
    assert rows(world)[0][4:] == ("deleted", "page:jane@corp.example")


def test_bad_input_shows_the_form_again_with_the_problem(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    answer = exempt(client, email="olduser@example.com", side="extra", reason=" ")
    assert answer.status_code == 422 and "reason: required" in answer.text
    answer = exempt(client, email="olduser@example.com", side="extra", reason="r", duration="1y")
    assert answer.status_code == 422 and "Choose how long." in answer.text
    assert rows(world) == []


def test_read_only_and_forged_posts_are_refused(world: World) -> None:
    reader = logged_in(world, READ_TOKEN)
    assert exempt(reader, email="olduser@example.com", side="extra", reason="r").status_code == 403
    admin = logged_in(world, ADMIN_TOKEN)
    forged = admin.post(
        "/forms/exempt",
        data={
            "csrf": "forged",
            "audience": AUD,
            "email": "a@x.com",
            "side": "extra",
            "reason": "r",
            "duration": "7d",
        },
    )
    assert forged.status_code == 403 and rows(world) == []


def test_the_filter_keeps_the_audiences_with_exempt_members(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    for email, side in (
        ("olduser@example.com", "extra"),
        ("alice@example.com", "missing"),
        ("bob@example.com", "missing"),
    ):
        exempt(client, email=email, side=side, reason="r")
    html = client.get("/", params={"exempt": "1"}).text
    assert 'id="f-exempt" name="exempt" type="checkbox" value="1" checked' in html
    table = html[html.index('id="in-sync"') :]
    assert re.findall(r'<tr data-audience="([^"]+)"', table) == [AUD]  # in sync, exempt
    assert "3 exempt" in table
    assert '<details id="in-sync" class="in-sync" open>' in html


@pytest.mark.browser
def test_exempt_from_the_card_in_chromium_axe_clean(
    live: tuple[World, str], browser_page: Any, tmp_path: Path
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    def serious() -> list[str]:
        found = Axe().run(page).response["violations"]
        return [f"{v['id']}: {v['nodes'][0]['target']}" for v in found if v["impact"] in SERIOUS]

    world, url = live
    page = browser_page
    page.goto(f"{url}/login")
    page.get_by_label("Token").fill(ADMIN_TOKEN)
    page.get_by_label("Your name").fill("jane@corp.example")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/")
    lms = page.locator(f'article[data-audience="{AUD}"]')
    lms.get_by_role("link", name="Exempt… olduser@example.com").click()
    page.wait_for_url(re.compile(r".*/exempt\?.*"))
    assert serious() == [], "exempt form"
    page.get_by_label("Reason").fill("contractor <b>until Friday</b>")
    page.get_by_label("For").select_option("7d")
    page.get_by_role("button", name="Exempt", exact=True).click()
    expect(page.locator("main")).to_contain_text("Exempted olduser@example.com (extra)")
    page.get_by_role("link", name=re.compile("Drift Detection")).first.click()
    lms = page.locator(f'article[data-audience="{AUD}"]')
    listed = lms.locator(".exemptions")
    expect(listed).to_contain_text("olduser@example.com")
    expect(listed).to_contain_text("contractor <b>until Friday</b>")  # inert text
    expect(listed).to_contain_text("(page:jane@corp.example)")
    expect(listed.locator("time")).to_have_attribute("datetime", re.compile(r"^20\d\d-"))
    expect(lms.locator(".side-extra")).to_have_count(0)
    assert serious() == [], "list with an exemption"
    # UPDATE_SCREENSHOTS=1 refreshes the README's picture; otherwise it only has to render.
    out = SHOTS / "exemptions.png" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "e.png"
    lms.screenshot(path=str(out))
    lms.get_by_role("button", name="End the exemption of olduser@example.com").click()
    expect(lms.locator(".panel")).to_contain_text("drifts again from now")
    expect(lms.locator(".exemptions")).to_have_count(0)
    expect(lms.locator(".side-extra")).to_contain_text("olduser@example.com")
    assert rows(world)[0][3:] == ("page:jane@corp.example", "deleted", "page:jane@corp.example")
