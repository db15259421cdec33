"""The operator page at a real account's scale (issue 17), server-rendered, through HTTP.

The world is Cloudflare's limit, 300 audiences: 30 drifting (one missing 1,000 members),
5 in error, 5 pending, 260 in sync (``support/scale_world.py``, also what the benchmark
measures). These tests assert the structure; the figures (size, time, height) are measured
by ``bench/page_scale.py``.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient
from support.page_world import ADMIN_TOKEN, READ_TOKEN
from support.scale_world import LARGE, PageScaleWorld, serve_scale_world
from test_page_http import logged_in

from exporter.core.levels import LEVEL_RANK
from exporter.core.model import AlertLevel
from exporter.demo.simulator import CloudflareSimulator
from exporter.web.page_view import CARDS_PER_PAGE, card_id

Scale = tuple[PageScaleWorld, TestClient]
CARD = re.compile(r'<article class="card card-(\w+)" id="[^"]+" data-audience="([^"]+)"')
LEVEL = re.compile(r'class="status status-(\w+)(?: level-(\w+))?"')
ROW = re.compile(r'<tr data-audience="([^"]+)">')


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scale]:
    tmp: Path = tmp_path_factory.mktemp("scale")
    with CloudflareSimulator(per_page_cap=100) as simulator, requests.Session() as session:
        world, served, _ = serve_scale_world(tmp, simulator, session, ADMIN_TOKEN, READ_TOKEN)

        class Holder:
            app = served.app

        yield world, logged_in(Holder, ADMIN_TOKEN)  # type: ignore[arg-type]


def cards(html: str) -> list[tuple[str, str, str]]:
    """(audience, status, level) of each card, in page order."""
    found = []
    for match in CARD.finditer(html):
        level = LEVEL.search(html, match.end())
        assert level is not None
        found.append((htmllib.unescape(match.group(2)), match.group(1), level.group(2) or ""))
    return found


def card_html(html: str, audience: str) -> str:
    start = html.index(f'<article class="card card-drift" id="{card_id(audience)}"')
    return html[start : html.index("</article>", start)]


def api(client: TestClient, path: str) -> dict:  # type: ignore[type-arg]
    answer = client.get(path, headers={"Authorization": f"Bearer {READ_TOKEN}"})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_what_needs_action_comes_first_most_urgent_first(scale: Scale) -> None:
    world, client = scale
    html = client.get("/").text
    first = cards(html)
    assert len(first) == CARDS_PER_PAGE
    assert '<span id="action-count">40</span> need action' in html
    assert f"— 1\N{EN DASH}{CARDS_PER_PAGE} shown" in html
    every = []
    for offset in range(0, 40, CARDS_PER_PAGE):
        page = client.get(f"/?offset={offset}").text
        every += cards(page)
        assert ("Next →" in page) == (offset + CARDS_PER_PAGE < 40)
    names = [name for name, _, _ in every]
    assert sorted(names) == sorted(world.drifting + world.errors + world.pending)
    rank = {"error": LEVEL_RANK[AlertLevel.WARNING], "pending": 0, "drift": None}
    ranks = [rank[s] if rank[s] is not None else LEVEL_RANK[AlertLevel(lv)] for _, s, lv in every]
    assert ranks == sorted(ranks, reverse=True)  # critical, warning (errors among them), info
    assert [s for _, s, _ in every[-5:]] == ["pending"] * 5
    assert LARGE in [name for name, _, _ in first]  # critical, and among the oldest


def test_in_sync_audiences_are_one_compact_row_each_collapsed(scale: Scale) -> None:
    world, client = scale
    html = client.get("/").text
    assert '<details id="in-sync" class="in-sync">' in html  # closed until opened
    assert '<span class="in-sync-count">260 in sync</span>' in html
    rows = [htmllib.unescape(r) for r in ROW.findall(html)]
    assert rows == sorted(world.in_sync)
    assert not any(name in world.in_sync for name, _, _ in cards(html))
    row = html[html.index(f'<tr data-audience="{world.in_sync[0]}">') :]
    row = row[: row.index("</tr>")]
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)
    assert cells[0] == world.in_sync[0] and cells[1] == world.namespace[world.in_sync[0]]
    assert cells[2].isdigit() and cells[3].startswith('<time datetime="')
    assert f'href="/details?audience={world.in_sync[0]}">View Details' in cells[4]


def test_the_list_is_small(scale: Scale) -> None:
    _, client = scale
    assert len(client.get("/").content) < 300_000


def test_filters_are_in_the_url_and_are_the_apis(scale: Scale) -> None:
    world, client = scale
    query = "status=drift&namespace=lms&q=EDIT"
    html = client.get(f"/?{query}").text
    expected = [i["audience"] for i in api(client, f"/iam/drift?{query}")["items"]]
    assert expected and sorted(name for name, _, _ in cards(html)) == sorted(expected)
    assert all(world.namespace[n] == "lms" and "edit" in n for n in expected)
    assert '<option value="drift" selected>Drift (30)</option>' in html
    assert '<option value="lms" selected>lms</option>' in html
    assert 'name="q" type="search" value="EDIT"' in html
    assert '<a class="clear" href="/">Clear filters</a>' in html
    assert 'id="in-sync"' not in html  # a status other than synced: no in-sync table
    synced = client.get("/?status=synced&namespace=hr").text
    assert '<details id="in-sync" class="in-sync" open>' in synced and cards(synced) == []
    synced_api = api(client, "/iam/drift?status=synced&namespace=hr")["items"]
    assert ROW.findall(synced) == [i["audience"] for i in synced_api]
    found = client.get("/?q=students").text
    assert [name for name, _, _ in cards(found)] == [LARGE]
    nothing = client.get("/?status=weird").text
    assert "unknown status “weird”: showing every status" in nothing
    assert len(cards(nothing)) == CARDS_PER_PAGE


def test_paging_keeps_the_filters(scale: Scale) -> None:
    _, client = scale
    html = client.get("/?status=drift&q=-").text
    assert '<span id="action-count">30</span> need action' in html
    assert 'href="/?status=drift&amp;q=-&amp;offset=8">Next →' in html
    second = client.get("/?status=drift&q=-&offset=8").text
    assert 'href="/?status=drift&amp;q=-">← Previous' in second
    assert "— 9\N{EN DASH}16 shown" in second


def test_a_card_shows_five_members_per_side_grouped_by_hint(scale: Scale) -> None:
    _, client = scale
    html = client.get("/").text
    large = card_html(html, LARGE)
    assert "Missing in Cloudflare (1000):" in large
    assert large.count("<li>") == 5
    push = "in Vault but not in Cloudflare: push failed or removed by hand"
    recent = "added in Vault recently: the push to Cloudflare may not have run yet"
    assert large.count(push) == 1 and large.count(recent) == 1
    assert f'<strong>600 missing members</strong>, <span class="hint">{push}</span>' in large
    assert f'<strong>400 missing members</strong>, <span class="hint">{recent}</span>' in large
    assert (
        f'and 995 more — <a href="/details?audience={LARGE}" data-action="details">View Details'
        in large
    )
    strangers = card_html(html, "sales-admins-01")
    assert strangers.count("manually added?") == 1 and strangers.count("<li>") == 5
    assert "<strong>12 extra members</strong>, " in strangers and "and 7 more" in strangers


def test_details_view_pages_every_member_with_hint_and_times(scale: Scale) -> None:
    _, client = scale
    html = client.get(f"/details?audience={LARGE}&limit=100&offset=900").text
    assert "(901\N{EN DASH}1000 of 1000)" in html
    rows = re.findall(
        r'<tr><td class="email">([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>',
        html,
    )
    wanted = api(client, f"/iam/drift/{LARGE}?limit=100&offset=900")["missing"]
    assert [r[0] for r in rows] == [m["email"] for m in wanted] and len(rows) == 100
    assert {r[1] for r in rows} == {"1 d ago"} and {r[2] for r in rows} == {"1 d ago"}
    assert {r[3] for r in rows} == {m["hint"] for m in wanted}
    assert (
        f'href="/details?audience={LARGE}&amp;offset=800&amp;limit=100" data-action="page">← Previous'
        in html
    )
    assert "Next →" not in html
    everything = client.get(f"/details?audience={LARGE}&limit=1000").text
    assert everything.count('<td class="email">') == 1000
    assert client.get(f"/details?audience={LARGE}&limit=1001").status_code == 422
    assert client.get("/details?audience=nobody").status_code == 404


def test_settings_and_ignore_are_reached_from_the_header(scale: Scale) -> None:
    _, client = scale
    html = client.get("/").text
    header = html[html.index('<header class="topbar">') : html.index("</header>")]
    assert 'href="/settings" data-action="settings" aria-haspopup="dialog">Settings</a>' in header
    assert header.count(">Ignore…<") == 30  # each drifting audience of the badge's dropdown
    assert '<dialog id="settings-dialog"' in html and '<dialog id="ignore-dialog"' in html
    settings = client.get("/settings").text
    assert 'action="/forms/settings"' in settings and 'name="csrf"' in settings
    ignore = client.get(f"/ignore?audience={LARGE}").text
    assert 'action="/forms/ignore"' in ignore and f'name="audience" value="{LARGE}"' in ignore
