"""Request bodies of the API, validated by FastAPI; unknown keys are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

AUDIENCE = Field(min_length=1, max_length=200)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


MAX_NOTIFIED_AUDIENCES = 100


class CheckBody(Strict):
    """``{}`` every audience, ``{"audience": A}`` one, or ``{"audiences": [A, ...]}``: vault-api's
    change notification (at most 100 names; the handler answers 400 past that)."""

    audience: str | None = Field(None, min_length=1, max_length=200)
    audiences: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, description=f"vault-api's change notification: at most {MAX_NOTIFIED_AUDIENCES}"
    )

    def target_problem(self) -> str | None:
        if self.audience is not None and self.audiences is not None:
            return 'name either "audience" or "audiences", not both'
        if self.audiences is not None and not 1 <= len(self.audiences) <= MAX_NOTIFIED_AUDIENCES:
            return f'"audiences" names 1 to {MAX_NOTIFIED_AUDIENCES} audiences'
        return None


class SyncBody(Strict):
    """Exactly one target, ``{"audience": A}`` or ``{"all": true}``: the handler answers 400."""

    audience: str | None = Field(None, min_length=1, max_length=200)
    all: StrictBool = False
    dry_run: StrictBool = False
    force: StrictBool = False

    def target_problem(self) -> str | None:
        if self.all == (self.audience is not None):
            return 'name exactly one target: {"audience": A} or {"all": true}'
        return None


class GroupBody(Strict):
    audience: str = AUDIENCE


class IgnoreBody(Strict):
    audience: str = AUDIENCE
    until: datetime | None = None
    duration: str | int | None = Field(None, description="e.g. 24h, 30m, or seconds")
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _not_both(self) -> IgnoreBody:
        if self.until is not None and self.duration is not None:
            raise ValueError("give either until or duration, not both")
        return self


class SettingsBody(Strict):
    check_interval_seconds: int | None = None
    warning_threshold_seconds: int | None = None
    critical_threshold_seconds: int | None = None
    extra_warning_threshold_seconds: int | None = None
    extra_critical_threshold_seconds: int | None = None
    auto_sync: str | None = None
    history_retention_days: int | None = None
    digest_hour_utc: int | None = None
    revoke_sessions: StrictBool | None = None
    cloudflare_feed: str | None = Field(None, description="audit_log or off")
    feed_interval_seconds: int | None = None
    feed_overlap_seconds: int | None = None
    full_check_interval_seconds: int | None = None

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class ExemptionBody(Strict):
    """``POST /iam/drift/{audience}/exemptions``: one member, one side, a reason, an end
    (``expires_at`` or ``duration``, at most 90 days). The handler answers 400 on bad input."""

    email: str = Field(min_length=3, max_length=320)
    side: Literal["extra", "missing"]
    reason: str = Field(min_length=1, max_length=500)
    expires_at: datetime | None = None
    duration: str | int | None = Field(None, description="e.g. 7d, 12h, or seconds")

    @model_validator(mode="after")
    def _one_end(self) -> ExemptionBody:
        if (self.expires_at is None) == (self.duration is None):
            raise ValueError("give either expires_at or duration")
        return self
