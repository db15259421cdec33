"""Who changed it, on the page: the card and the details view say who added a member by hand,
in the core's words (the same as the API's hint)."""

from __future__ import annotations

import re
from pathlib import Path

import requests
from fastapi.testclient import TestClient
from support import T0, FixedClock
from support.attribution_world import ADMIN, CONTRACTOR, JANE, attributed_world
from test_page_http import logged_in

from exporter.demo.simulator import CloudflareSimulator

SAID = f"added by {JANE} in the dashboard 2 h ago"


def test_the_card_and_the_details_name_who_added_a_member_by_hand(
    tmp_path: Path, simulator: CloudflareSimulator, http_session: requests.Session
) -> None:
    world = attributed_world(tmp_path, simulator, http_session, FixedClock(T0))
    client: TestClient = logged_in(world, ADMIN)
    page = client.get("/").text
    [card] = [a for a in re.findall(r"<article.*?</article>", page, re.S) if "administrators" in a]
    # The card groups members under their hint: the hint says who, once, then the members.
    assert re.search(rf"{re.escape(SAID)}.*?{re.escape(CONTRACTOR)}", card, re.S), card
    details = client.get("/fragments/details", params={"audience": "administrators"}).text
    assert SAID in details
    document = client.get(
        "/iam/drift/administrators", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    [extra] = document["extra"]
    assert extra["hint"] == SAID
    assert extra["changed_by"]["actor"] == JANE and extra["changed_by"]["interface"] == "dashboard"
    metrics = client.get("/metrics").text
    assert (
        'vault_drift_audience_manual_changes_total{audience="administrators",namespace="admin",'
        'provider="cloudflare_access"} 1.0' in metrics
    )
    assert "vault_drift_attribution_up 1.0" in metrics
    assert (
        'vault_drift_cloudflare_requests_total{api="audit",method="GET",status_class="2xx"}'
        in metrics
    )
