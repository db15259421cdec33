"""Exposure on the operator page: extra members marked as access Vault does not grant, the
side that set the level, the badge coloured by the higher level, the new settings."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import requests
from support import T0, FixedClock
from support.page_world import ADMIN_TOKEN, build_world
from test_page_http import logged_in

from exporter.demo.sample import add_member
from exporter.demo.simulator import CloudflareSimulator
from exporter.web.page import card_id


def card(html: str, audience: str) -> str:
    start = html.index(f'id="{card_id(audience)}"')
    return html[start : html.index("</article>", start)]


def badge_level(html: str) -> str:
    found = re.search(r'class="badge level-(\w+)"', html)
    assert found is not None
    return found.group(1)


def test_extra_members_are_an_exposure_and_colour_the_badge(
    tmp_path: Path, simulator: CloudflareSimulator, http_session: requests.Session
) -> None:
    clock = FixedClock(T0)
    world = build_world(tmp_path, simulator, http_session, clock=clock, evil=False)
    with sqlite3.connect(world.path) as conn:  # developers: a new hire, missing only
        add_member(conn, "newhire@example.com", "g-2", T0)
    world.checker.check_all("test")
    clock.advance(minutes=61)
    client = logged_in(world, ADMIN_TOKEN)
    html = client.get("/").text
    lms = card(html, "lms-instructors")
    assert "Extra in Cloudflare: access that Vault does not grant" in lms
    assert '<ul class="members exposure">' in lms and "no Vault grant" in lms
    assert 'set by the extra members: <span class="reason reason-extra">an exposure' in lms
    assert "status-drift level-critical" in lms  # an exposure is critical after 1h
    developers = card(html, "developers")
    # The same age on the missing side (an outage) is only a warning.
    assert "set by the missing members" in developers and "level-warning" in developers
    assert "exposure" not in developers
    # The badge takes the higher level of all alerting audiences: the exposure's.
    assert badge_level(html) == "critical"
    details = client.get("/fragments/details", params={"audience": "lms-instructors"}).text
    assert "Extra in Cloudflare: access that Vault does not grant (1)" in details


def test_the_settings_form_has_the_extra_thresholds_and_remove_only(
    tmp_path: Path, simulator: CloudflareSimulator, http_session: requests.Session
) -> None:
    world = build_world(tmp_path, simulator, http_session, evil=False)
    html = logged_in(world, ADMIN_TOKEN).get("/").text
    for name, value in (
        ("extra_warning_threshold_seconds", "15m"),
        ("extra_critical_threshold_seconds", "1h"),
    ):
        assert re.search(rf'name="{name}" value="{value}"[^>]*data-duration', html), name
    assert '<option value="remove_only">Remove only: revoke extra members' in html
