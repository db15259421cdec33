"""``vault-drift``: the command line. Parsing and exit codes here; the work lives elsewhere."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from exporter import __version__
from exporter.clock import utc_now
from exporter.config import DEFAULT_LISTEN, Config, ConfigError, load_config, parse_listen
from exporter.core.document import drift_document
from exporter.core.model import Status, SyncOutcome, SyncResultKind
from exporter.core.table import drift_table, sync_table
from exporter.runtime.wiring import build_runtime
from exporter.service import Services
from exporter.service.checker import UnknownAudience
from exporter.service.syncer import SyncRequest
from exporter.vault import VaultError

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
_LISTEN_HELP = f"default: VAULT_DRIFT_LISTEN, else {DEFAULT_LISTEN}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vault-drift",
        description="Find and fix drift between TPB Vault and Cloudflare Access groups.",
    )
    parser.add_argument("--version", action="version", version=f"vault-drift {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML config file (or VAULT_DRIFT_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the exporter (metrics, API, operator page)")
    serve.add_argument("--listen", metavar="HOST:PORT", help=_LISTEN_HELP)
    serve.add_argument(
        "--standby",
        action="store_true",
        default=None,
        help="wait while another serve holds the Vault, then take over (VAULT_DRIFT_STANDBY)",
    )

    check = commands.add_parser("check", help="check now; exit 0 synced, 1 drift/pending, 2 error")
    check.add_argument("--audience", action="append", metavar="A", help="repeatable")
    check.add_argument("--json", action="store_true", help="the GET /iam/drift document")

    sync = commands.add_parser("sync", help="push Vault's members to Cloudflare")
    target = sync.add_mutually_exclusive_group(required=True)
    target.add_argument("--audience", action="append", metavar="A", help="repeatable")
    target.add_argument("--all", action="store_true", help="every audience in drift")
    sync.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    sync.add_argument("--force", action="store_true", help="override the mass-removal guards")
    sync.add_argument("--json", action="store_true")

    report = commands.add_parser("report", help="HTML digest to a file and/or by mail")
    report.add_argument("--period", default="1d", choices=["1d", "7d"])
    report.add_argument("--out", metavar="FILE")
    report.add_argument("--send", action="store_true", help="mail it (needs VAULT_DRIFT_SMTP_*)")

    demo = commands.add_parser("demo", help="sample Vault DB + simulated Cloudflare + serve")
    demo.add_argument("--listen", metavar="HOST:PORT", help=_LISTEN_HELP)
    demo.add_argument(
        "--d1", action="store_true", help="serve the sample Vault through a simulated D1 REST API"
    )
    demo.add_argument(
        "--standby-pair",
        action="store_true",
        help="two serve --standby processes (port and port+1): kill the leader, watch a failover",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from exporter.demo.command import run_demo

            return run_demo(args.listen, args.config, d1=args.d1, standby_pair=args.standby_pair)
        config = load_config(
            args.config, listen=_listen(args), standby=getattr(args, "standby", None)
        )
        return _run(args, config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"vault-drift: config: {problem}", file=sys.stderr)
        return EXIT_ERROR
    except (VaultError, UnknownAudience) as exc:
        print(f"vault-drift: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK


def _listen(args: argparse.Namespace) -> str | None:
    value = getattr(args, "listen", None)
    if value is not None:
        try:
            parse_listen(value)
        except ValueError as exc:
            raise ConfigError([f"--listen: {exc}"]) from None
    return value


def _run(args: argparse.Namespace, config: Config) -> int:
    if args.command == "serve":
        from exporter.runtime.server import serve

        return serve(config)
    if args.command == "report":
        from exporter.cli.report import report_command

        return report_command(config, args.period, args.out, args.send)
    services = build_runtime(config).services
    if args.command == "check":
        return _check(services, args)
    return _sync(services, args)


def _check(services: Services, args: argparse.Namespace) -> int:
    audiences = args.audience
    checker = services.checker
    snapshot = checker.check_audiences(audiences, "cli") if audiences else checker.check_all("cli")
    document = drift_document(snapshot, utc_now(), audiences=audiences)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(drift_table(document))
    statuses = {item["status"] for item in document["items"]}
    if str(Status.ERROR) in statuses:
        return EXIT_ERROR
    if statuses & {str(Status.DRIFT), str(Status.PENDING)}:
        return EXIT_DRIFT
    return EXIT_OK


def _sync(services: Services, args: argparse.Namespace) -> int:
    request = SyncRequest(
        None if args.all else args.audience,
        dry_run=args.dry_run,
        force=args.force,
        trigger="cli",
        actor="cli",
    )
    if args.all:
        outcomes, check_error = services.cycle.check_then_sync(request, "cli")
    else:
        outcomes, check_error = services.cycle.sync(request), None
    _print_sync(outcomes, args, check_error)
    if check_error:
        return EXIT_ERROR
    results = {o.result for o in outcomes}
    if SyncResultKind.ERROR in results:
        return EXIT_ERROR
    if SyncResultKind.BLOCKED in results:
        return EXIT_DRIFT
    return EXIT_OK


def _print_sync(
    outcomes: list[SyncOutcome], args: argparse.Namespace, check_error: str | None = None
) -> None:
    if args.json:
        payload: dict[str, Any] = {
            "dry_run": args.dry_run,
            "results": [o.as_document() for o in outcomes],
        }
        if check_error:
            payload["check_error"] = check_error
        print(json.dumps(payload, indent=2))
        return
    if check_error is None:
        print(sync_table(outcomes, args.dry_run))
        return
    if outcomes:  # errors, not plans: "would be error" would read as if it were one
        print(sync_table(outcomes, dry_run=False))
    print(f"nothing synced: the check before the sync could not complete: {check_error}")


if __name__ == "__main__":
    sys.exit(main())
