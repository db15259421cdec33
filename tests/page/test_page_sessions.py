"""The details' "Sessions ended": a leaver's session revocation on the operator page, from the
same rows as the audience document (README, "Effective removal"), as plain HTML and in a real
Chromium (axe-clean)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.page_world import ADMIN_TOKEN, World, login
from test_page_forms import post
from test_page_http import logged_in

from exporter.cloudflare.client import CloudflareClient
from exporter.service.sessions import SessionRevoker

AUD = "lms-instructors"  # the sample: olduser@example.com is extra
OLDUSER = "olduser@example.com"
SERIOUS = ("serious", "critical")


def revoking(world: World) -> SessionRevoker:
    """The follower ``serve`` registers (runtime/wiring.py), on the page world's cycle."""
    client = CloudflareClient(
        base_url=world.simulator.base_url,
        account_id=world.simulator.account_id,
        token="demo-token",
        timeout=5.0,
    )
    revoker = SessionRevoker(world.services.decisions.vault, client, clock=world.services.clock)
    world.services.cycle.followers.append(revoker)
    return revoker


def sessions_section(client: TestClient, path: str = "/details") -> str:
    html = client.get(path, params={"audience": AUD}).text
    assert "Sessions ended</h" in html, html[-3000:]
    return html[html.index("Sessions ended</h") :]


def rows(section: str) -> list[str]:
    body = section[section.index("<tbody>") : section.index("</tbody>")]
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in body.split("<tr>")[1:]
    ]


def test_a_cloudflare_audience_says_no_session_ended_yet(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    section = sessions_section(client)
    assert "No leaver's sessions ended yet." in section
    panel = client.get("/fragments/details", params={"audience": "administrators"}).text
    assert "Sessions ended</h4>" in panel  # the card's panel: h4


def test_a_refused_revocation_shows_failed_then_ended_once_it_goes_through(world: World) -> None:
    revoking(world)
    world.simulator.sessions.denied.add("demo-token")
    client = logged_in(world, ADMIN_TOKEN)
    status, done = post(client, "sync", audience=AUD, confirm="1")
    assert status == 200 and "Sync done" in done
    [failed] = rows(sessions_section(client))
    assert failed.startswith(f"{OLDUSER} sync just now pending after 1 failed attempt: ")
    assert "403" in failed

    world.simulator.sessions.denied.clear()
    world.services.cycle.check_all("schedule")
    [ended] = rows(sessions_section(client))
    assert ended == f"{OLDUSER} sync just now ended just now"
    fragment = sessions_section(client, "/fragments/details")
    assert rows(fragment) == [ended]  # the card's panel shows the same
    assert world.simulator.sessions.revoked_emails() == [OLDUSER]


def test_newest_first_and_at_most_ten(world: World) -> None:
    vault = world.services.decisions.vault
    revoking(world)
    group = world.group_id(AUD)
    include = world.simulator.group(group)["include"]
    strays = [f"stray{i:02d}@example.org" for i in range(12)]
    for email in strays:  # added by hand, seen extra, then removed by hand: observed removals
        world.simulator.set_include(group, [*include, {"email": {"email": email}}])
        world.services.cycle.check_all("schedule")
        world.simulator.set_include(group, include)
        world.services.cycle.check_all("schedule")
    shown = rows(sessions_section(logged_in(world, ADMIN_TOKEN)))
    assert [row.split()[0] for row in shown] == list(reversed(strays))[:10]
    assert all(
        " removed by someone else " in row and row.endswith(" ended just now") for row in shown
    )
    assert len(vault.session_revocations(AUD, 20)) == 12  # the page shows the newest ten


@pytest.mark.browser
def test_sessions_ended_in_chromium_axe_clean(live: tuple[World, str], browser_page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    world, url = live
    revoking(world)
    world.simulator.sessions.denied.add("demo-token")
    page = browser_page
    login(page, url, ADMIN_TOKEN)
    client = logged_in(world, ADMIN_TOKEN)
    post(client, "sync", audience=AUD, confirm="1")  # olduser removed; its revocation refused
    page.goto(f"{url}/details?audience={AUD}")
    table = page.get_by_role("table", name=re.compile("sessions are ended"))
    assert "pending after 1 failed attempt" in table.inner_text()
    found = Axe().run(page).response["violations"]
    serious = [f"{v['id']}: {v['nodes'][0]['target']}" for v in found if v["impact"] in SERIOUS]
    assert serious == []
