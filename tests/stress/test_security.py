"""Security: who may call what, CSRF on the page, secrets that never leak, inert HTML.

One real ``vault-drift serve`` runs with every secret configured (Cloudflare token, admin and
read tokens, SMTP user and password against a loopback aiosmtpd) over a world whose audience
name and member email are HTML injections. Proven:

- every ``/iam`` operation of ``/openapi.json``: no token, a wrong token or another scheme
  → 401; the read token on a mutating operation → 403; with no admin token configured,
  every ``/iam`` operation → 403 whatever the token;
- the page's session: a mutating call without the session's CSRF token, with a wrong one,
  or from a read-only session → 403; login and logout forms refuse a missing CSRF token;
- no secret appears in any log line (at debug level), any API answer, ``/metrics``,
  ``/openapi.json``, the page, or the output and mail of ``vault-drift report --send``
  (sent and failed); ``/metrics`` carries no email address;
- the injected name and email are escaped in the page, its fragments and the mails.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from email import message_from_bytes, policy
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from support.stress_world import (
    ACCOUNT,
    ADMIN,
    CF_TOKEN,
    EXE,
    READ,
    AudienceSpec,
    Served,
    email_rule,
    free_port,
    write_world,
)

from exporter.demo.simulator import CloudflareSimulator

SMTP_USER, SMTP_PASSWORD = "drift-mailer", "smtp-Pa55word-never-shown"
SECRETS = (ADMIN, READ, CF_TOKEN, SMTP_PASSWORD)
EVIL_AUDIENCE = "<img src=x onerror=alert(1)>"
EVIL_EMAIL = '"><script>alert(2)</script>@evil.example.com'
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
SAMPLE_BODIES: dict[str, Any] = {
    "/iam/drift/check": {},
    "/iam/drift/sync": {"audience": "plain", "dry_run": True},
    "/iam/drift/groups": {"audience": "plain"},
    "/iam/drift/ignore": {"audience": "plain", "duration": "1h", "reason": "test"},
    "/iam/drift/settings": {"check_interval_seconds": 600},
}


class Inbox:
    def __init__(self) -> None:
        self.raw: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.raw.append(envelope.content)
        return "250 OK"


def smtp_auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


class Seen:
    """Everything the exporter said: answers, pages, metrics, command output."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, response: requests.Response) -> requests.Response:
        self.texts.append(f"{response.status_code} {response.headers} {response.text}")
        return response


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("security")
    inbox = Inbox()
    smtp_port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=smtp_port,
        authenticator=smtp_auth,
        auth_require_tls=False,
    )
    controller.start()
    with CloudflareSimulator(account_id=ACCOUNT, token=CF_TOKEN) as sim:
        members = ["a@example.com", "b@example.com"]
        specs = [
            AudienceSpec("plain", members, [email_rule(members[0])]),
            AudienceSpec(EVIL_AUDIENCE, [*members, EVIL_EMAIL], [email_rule("x@example.com")]),
        ]
        built = write_world(tmp / "vault.db", sim, specs)
        mail_env = {
            "VAULT_DRIFT_SMTP_HOST": "127.0.0.1",
            "VAULT_DRIFT_SMTP_PORT": str(smtp_port),
            "VAULT_DRIFT_SMTP_USER": SMTP_USER,
            "VAULT_DRIFT_SMTP_PASSWORD": SMTP_PASSWORD,
            "VAULT_DRIFT_SMTP_STARTTLS": "false",
            "VAULT_DRIFT_MAIL_FROM": "drift@example.org",
            "VAULT_DRIFT_MAIL_TO": "sre@example.org",
            "VAULT_DRIFT_LOG_LEVEL": "debug",
        }
        log = tmp / "serve.log"
        served = Served(built.path, sim.base_url, log, mail_env).wait_ready()
        seen = Seen()
        try:
            yield {
                "served": served,
                "seen": seen,
                "log": log,
                "inbox": inbox,
                "env": served.env,
                "path": built.path,
                "tmp": tmp,
                "sim": sim,
            }
            assert served.stop() == 0
        finally:
            served.kill()
            controller.stop()


# Logpush deliveries take a token of their own, never the admin's, the read token or a page
# session (tests/web/test_logpush.py); these tests only prove that nothing else opens it.
LOGPUSH = "/iam/drift/feed/logpush"


def iam_operations(served: Served, seen: Seen) -> list[tuple[str, str]]:
    """The API's operations that the admin and read tokens open."""
    document = seen.add(served.session.get(f"{served.url}/openapi.json", timeout=10)).json()
    operations = [
        (method.upper(), path.replace("{audience}", "plain"))
        for path, methods in document["paths"].items()
        for method in methods
        if path.startswith("/iam/") and path != LOGPUSH
    ]
    assert len(operations) >= 9, operations
    return operations


def call(served: Served, seen: Seen, method: str, path: str, headers: dict[str, str]) -> int:
    body = SAMPLE_BODIES.get(path) if method in ("POST", "PUT") else None
    response = served.session.request(
        method, f"{served.url}{path}", json=body, headers=headers, timeout=60
    )
    return seen.add(response).status_code


def test_every_api_route_needs_the_right_token(world: dict[str, Any]) -> None:
    served, seen = world["served"], world["seen"]
    table = []
    for method, path in iam_operations(served, seen):
        mutating = method != "GET"
        table.append(
            (
                method,
                path,
                call(served, seen, method, path, {}),
                call(served, seen, method, path, {"Authorization": "Bearer wrong-token-000000"}),
                call(served, seen, method, path, {"Authorization": f"Basic {ADMIN}"}),
                call(served, seen, method, path, {"Authorization": f"Bearer {READ}"}),
                mutating,
            )
        )
    for method, path, none, wrong, scheme, read, mutating in table:
        assert (none, wrong, scheme) == (401, 401, 401), (method, path)
        assert read == (403 if mutating else 200), (method, path, read)
    # and the admin token reaches every handler (GETs here; the mutations are fuzzed)
    for method, path in iam_operations(served, seen):
        if method == "GET":
            assert call(served, seen, method, path, {"Authorization": f"Bearer {ADMIN}"}) == 200


def test_no_admin_token_configured_closes_the_api(world: dict[str, Any], tmp_path: Path) -> None:
    served, seen = world["served"], world["seen"]
    operations = iam_operations(served, seen)
    # the same world in its own file: one serve per database
    (tmp_path / "copy.db").write_bytes(Path(world["path"]).read_bytes())
    closed = Served(
        tmp_path / "copy.db",
        world["sim"].base_url,
        tmp_path / "closed.log",
        {"VAULT_DRIFT_ADMIN_TOKEN": ""},
    ).wait_healthy()
    try:
        for method, path in operations:
            for token in (None, ADMIN, READ):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                assert call(closed, seen, method, path, headers) == 403, (method, path, token)
                logpush = call(closed, seen, "POST", LOGPUSH, headers)
                assert logpush in (401, 403), (LOGPUSH, token, logpush)
        page = seen.add(closed.session.get(f"{closed.url}/", timeout=10))
        assert page.status_code == 200 and "VAULT_DRIFT_ADMIN_TOKEN" in page.text
        assert seen.add(closed.session.get(f"{closed.url}/metrics", timeout=10)).status_code == 200
        assert closed.stop() == 0
    finally:
        closed.kill()
    world["seen"].texts.append((tmp_path / "closed.log").read_text())


def login(served: Served, token: str, seen: Seen) -> tuple[requests.Session, str]:
    session = requests.Session()
    form = seen.add(session.get(f"{served.url}/login", timeout=10))
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    answer = seen.add(
        session.post(
            f"{served.url}/login",
            data={"token": token, "csrf": csrf.group(1)},
            allow_redirects=False,
            timeout=10,
        )
    )
    assert answer.status_code == 303
    page = seen.add(session.get(f"{served.url}/", timeout=10))
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found is not None
    return session, found.group(1)


def test_page_actions_need_the_session_csrf_token(world: dict[str, Any]) -> None:
    served, seen = world["served"], world["seen"]
    mutating = [(m, p) for m, p in iam_operations(served, seen) if m != "GET"]
    admin, csrf = login(served, ADMIN, seen)
    reader, read_csrf = login(served, READ, seen)
    page = {"X-Vault-Drift-Page": "1"}
    for method, path in mutating:
        body = SAMPLE_BODIES.get(path)
        url = f"{served.url}{path}"
        for session, headers in (
            (admin, page),
            (admin, {**page, "X-CSRF-Token": "forged-csrf-token"}),
            (admin, {**page, "X-CSRF-Token": read_csrf}),  # another session's token
            (reader, {**page, "X-CSRF-Token": read_csrf}),  # read-only session
        ):
            answer = seen.add(session.request(method, url, json=body, headers=headers, timeout=30))
            assert answer.status_code == 403, (method, path, headers, answer.text)
            pushed = seen.add(session.post(f"{served.url}{LOGPUSH}", headers=headers, timeout=30))
            assert pushed.status_code in (401, 403), (LOGPUSH, headers, pushed.text)
    # with its own CSRF token the admin session acts (a dry run changes nothing)
    answer = admin.post(
        f"{served.url}/iam/drift/sync",
        json={"audience": "plain", "dry_run": True},
        headers={**page, "X-CSRF-Token": csrf},
        timeout=30,
    )
    assert seen.add(answer).status_code == 200
    assert seen.add(admin.get(f"{served.url}/iam/drift", timeout=10)).status_code == 200
    # the page's own forms
    out = seen.add(admin.post(f"{served.url}/logout", data={}, allow_redirects=False, timeout=10))
    assert out.status_code == 403
    fresh = requests.Session()
    refused = fresh.post(
        f"{served.url}/login", data={"token": ADMIN}, allow_redirects=False, timeout=10
    )
    assert seen.add(refused).status_code == 400
    assert "vault_drift_session" not in refused.headers.get("set-cookie", "")


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.handlers: list[str] = []  # inline event handlers: the page (CSP) has none

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.handlers += [f"{tag} {name}" for name, _ in attrs if name.startswith("on")]


def assert_inert(html: str) -> None:
    assert "<img src=x" not in html and "<script>alert" not in html
    parser = Tags()
    parser.feed(html)
    assert parser.handlers == []
    assert "&lt;img src=x onerror=alert(1)&gt;" in html or "&lt;script&gt;alert(2)" in html


def test_injected_names_are_inert_in_the_page_and_the_mail(world: dict[str, Any]) -> None:
    served, seen = world["served"], world["seen"]
    session, _ = login(served, ADMIN, seen)
    index = seen.add(session.get(f"{served.url}/", timeout=10)).text
    assert_inert(index)
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in index or "&#34;&gt;&lt;script" in index
    live = seen.add(session.get(f"{served.url}/fragments/live", timeout=10)).text
    assert_inert(live)
    details = seen.add(
        session.get(
            f"{served.url}/fragments/details", params={"audience": EVIL_AUDIENCE}, timeout=10
        )
    )
    assert details.status_code == 200
    assert_inert(details.text)
    # the digest mail, sent for real through the loopback SMTP server with the password
    report = subprocess.run(
        [EXE, "report", "--period", "1d", "--send"],
        env=world["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    seen.texts += [report.stdout, report.stderr]
    assert report.returncode == 0, report.stderr
    assert world["inbox"].raw, "no mail arrived"
    mail = message_from_bytes(world["inbox"].raw[-1], policy=policy.default)
    html_part = mail.get_body(preferencelist=("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert EVIL_AUDIENCE not in html and "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    seen.texts.append(world["inbox"].raw[-1].decode("utf-8", "replace"))
    # a refused login to SMTP: the error names the problem, never the password
    wrong = {**world["env"], "VAULT_DRIFT_SMTP_USER": "someone-else"}
    failed = subprocess.run(
        [EXE, "report", "--send"], env=wrong, capture_output=True, text=True, timeout=120
    )
    seen.texts += [failed.stdout, failed.stderr]
    assert failed.returncode == 2 and failed.stderr.strip()


def test_no_secret_anywhere_and_no_email_in_metrics(world: dict[str, Any]) -> None:
    """Runs last in this module: greps everything the other tests saw and the whole log."""
    served, seen = world["served"], world["seen"]
    metrics = seen.add(served.session.get(f"{served.url}/metrics", timeout=10)).text
    assert "vault_drift_audience_status" in metrics
    assert EMAIL.search(metrics) is None, EMAIL.search(metrics)
    # errors too: bad bodies, unknown audiences, a wrong token
    for body in ({"audience": 5}, {"nope": True}, {"audience": "unknown"}):
        seen.add(served.call("POST", "/iam/drift/sync", body))
    seen.add(served.call("GET", "/iam/drift", token="wrong-token-000000000"))
    log = Path(world["log"]).read_text()
    assert log.count("\n") > 20  # the log did record the session (debug level)
    everything = "\n".join([*seen.texts, log])
    assert len(seen.texts) > 50
    for secret in SECRETS:
        assert secret not in everything, f"a secret leaked ({secret[:6]}…)"
