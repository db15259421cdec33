"""The change feed's settings on the operator page: shown, saved, validated."""

from __future__ import annotations

import re
from pathlib import Path

import requests
from support.page_world import ADMIN_TOKEN, build_world
from test_page_http import logged_in

from exporter.demo.simulator import CloudflareSimulator


def test_the_settings_form_has_the_feed_and_saves_it(
    tmp_path: Path, simulator: CloudflareSimulator, http_session: requests.Session
) -> None:
    world = build_world(tmp_path, simulator, http_session, evil=False)
    client = logged_in(world, ADMIN_TOKEN)
    html = client.get("/").text
    for name, value in (
        ("feed_interval_seconds", "30s"),
        ("feed_overlap_seconds", "2m"),
        ("full_check_interval_seconds", "15m"),
    ):
        assert re.search(rf'name="{name}" value="{value}"[^>]*data-duration', html), name
    assert '<option value="audit_log" selected>' in html
    csrf = re.search(r'name="csrf" value="([^"]+)"', html)
    assert csrf is not None
    form = {
        "csrf": csrf.group(1),
        "auto_sync": "off",
        "check_interval_seconds": "1m",
        "warning_threshold_seconds": "1h",
        "critical_threshold_seconds": "24h",
        "extra_warning_threshold_seconds": "15m",
        "extra_critical_threshold_seconds": "1h",
        "cloudflare_feed": "off",
        "feed_interval_seconds": "5s",
        "feed_overlap_seconds": "3m",
        "full_check_interval_seconds": "30m",
    }
    refused = client.post("/forms/settings", data=form)
    assert refused.status_code == 422
    assert "must be between 10 and 3600" in refused.text
    saved = client.post("/forms/settings", data={**form, "feed_interval_seconds": "20s"})
    assert saved.status_code == 200
    document = world.services.snapshots.current.settings.as_document()
    assert document["cloudflare_feed"] == "off"
    assert document["feed_interval_seconds"] == 20
    assert document["feed_overlap_seconds"] == 180
    assert document["full_check_interval_seconds"] == 1800
