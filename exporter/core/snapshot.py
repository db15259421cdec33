"""The last check's results, in memory: what /metrics, the API and the page are served from."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from exporter.core.exemptions import Exemption, in_force, is_exempt
from exporter.core.exposure import RevocationTotals
from exporter.core.levels import Verdict, active_ignore, verdict
from exporter.core.model import AlertLevel, AudienceCheck, Ignore, Status
from exporter.core.settings import Settings


@dataclass(frozen=True)
class Snapshot:
    checks: dict[str, AudienceCheck] = field(default_factory=dict)  # by audience name
    ignores: dict[str, Ignore] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    last_check_at: datetime | None = None  # last completed full cycle, successful or not
    last_success_at: datetime | None = None  # last cycle whose Vault and Cloudflare reads completed
    vault_up: bool | None = None
    cloudflare_up: bool | None = None
    # The last full read of each other provider (aws_identity_center): True when it completed.
    providers_up: dict[str, bool] = field(default_factory=dict)
    cycle_error: str | None = None
    revocations: RevocationTotals = field(default_factory=dict)  # by (namespace, provider)
    # Cloudflare edits to each audience's group by anyone but vault-api and the exporter, as
    # read from the audit log (persisted); None: attribution is not wired (one-shot tools).
    manual_changes: dict[str, int] = field(default_factory=dict)  # by audience
    attribution_up: bool | None = None  # False once the audit log cannot be read
    # by audience: the exemptions nobody ended (some may be past their end date until the
    # next expiry pass marks them): ``exemptions_of`` says which are in force
    exemptions: dict[str, tuple[Exemption, ...]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        found = Counter(str(check.status) for check in self.checks.values())
        return {str(status): found.get(str(status), 0) for status in Status}

    def verdict(self, check: AudienceCheck, now: datetime) -> Verdict:
        """The level (the higher of the two sides') and the side that set it."""
        return verdict(
            check.status, check.missing_since, check.extra_since, now, self.settings.levels
        )

    def level(self, check: AudienceCheck, now: datetime) -> AlertLevel:
        return self.verdict(check, now).level

    def ignore_of(self, audience: str, now: datetime) -> Ignore | None:
        return active_ignore(self.ignores.get(audience), now)

    def exemptions_of(self, audience: str, now: datetime) -> tuple[Exemption, ...]:
        """The audience's exemptions in force at ``now``."""
        return in_force(self.exemptions.get(audience, ()), now)

    def is_exempt(self, audience: str, email: str, now: datetime) -> bool:
        """Whether an exemption in force covers this member (either side): session
        revocation never revokes one."""
        return is_exempt(self.exemptions.get(audience, ()), email, now)

    def alerting(self, now: datetime) -> list[AudienceCheck]:
        """The header badge's audiences: drifting and not ignored, plus those in error."""
        return [
            check
            for check in self.checks.values()
            if check.status is Status.ERROR
            or (
                check.status is Status.DRIFT
                and self.ignore_of(check.audience.audience, now) is None
            )
        ]
