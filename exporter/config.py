"""Configuration: a TOML file plus environment variables (the environment wins).

Keys in the TOML file are the lowercase names of the variables without their
``VAULT_DRIFT_`` prefix (``database``, ``listen``, ``cloudflare_api_token``, ``smtp_host`` ...).
Every problem is reported at once, and a secret's value never appears in a message.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from exporter.core.signing import BadSecret, decode_secret
from exporter.core.times import parse_duration

DEFAULT_PORT = 9847
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
DEFAULT_CLOUDFLARE_URL = "https://api.cloudflare.com/client/v4"
MIN_TOKEN_LENGTH = 16
# D1 database ids are UUIDs (the dashboard and the API show them with dashes).
_D1_ID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
D1_SCHEME = "d1://"
# An IAM Identity Center identity store id: "d-" and 10 hex digits (or a UUID, as AWS allows).
_AWS_STORE_ID = re.compile(
    r"^(d-[0-9a-f]{10}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
_WEBHOOK_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")
_LISTEN = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]*):(?P<port>\d{1,5})$")


class ConfigError(Exception):
    """Invalid configuration: one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _env(name: str, key: str) -> Any:
    return Field(None, validation_alias=AliasChoices(name, key))


class Config(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", case_sensitive=False)

    # A SQLite file path, or d1://<database_id> for Cloudflare D1 over its REST API.
    database: str = Field(
        "vault.db", validation_alias=AliasChoices("VAULT_DRIFT_DATABASE", "database")
    )
    d1_api_token: SecretStr | None = _env("VAULT_DRIFT_D1_API_TOKEN", "d1_api_token")
    d1_lease: int = Field(60, validation_alias=AliasChoices("VAULT_DRIFT_D1_LEASE", "d1_lease"))
    cloudflare_api_token: SecretStr | None = _env("CLOUDFLARE_API_TOKEN", "cloudflare_api_token")
    cloudflare_account_id: str | None = _env("CLOUDFLARE_ACCOUNT_ID", "cloudflare_account_id")
    cloudflare_base_url: str = Field(
        DEFAULT_CLOUDFLARE_URL,
        validation_alias=AliasChoices("CLOUDFLARE_BASE_URL", "cloudflare_base_url"),
    )
    cloudflare_timeout: int = Field(
        30,
        validation_alias=AliasChoices("VAULT_DRIFT_CLOUDFLARE_TIMEOUT", "cloudflare_timeout"),
    )
    cloudflare_page_size: int = Field(
        1000,
        validation_alias=AliasChoices("VAULT_DRIFT_CLOUDFLARE_PAGE_SIZE", "cloudflare_page_size"),
    )
    # AWS IAM Identity Center (audiences whose provider is aws_identity_center): the store,
    # and a local endpoint; region and credentials come from AWS's standard chain.
    aws_identity_store_id: str | None = _env(
        "VAULT_DRIFT_AWS_IDENTITY_STORE_ID", "aws_identity_store_id"
    )
    aws_endpoint_url: str | None = _env("VAULT_DRIFT_AWS_ENDPOINT_URL", "aws_endpoint_url")
    listen: str = Field(
        DEFAULT_LISTEN, validation_alias=AliasChoices("VAULT_DRIFT_LISTEN", "listen")
    )
    # serve: wait while another serve holds the Vault (lease or lock file), then take over.
    standby: bool = Field(False, validation_alias=AliasChoices("VAULT_DRIFT_STANDBY", "standby"))
    admin_token: SecretStr | None = _env("VAULT_DRIFT_ADMIN_TOKEN", "admin_token")
    read_token: SecretStr | None = _env("VAULT_DRIFT_READ_TOKEN", "read_token")
    # Bearer token Cloudflare Logpush deliveries carry (POST /iam/drift/feed/logpush);
    # unset: the endpoint is off.
    logpush_token: SecretStr | None = _env("VAULT_DRIFT_LOGPUSH_TOKEN", "logpush_token")
    check_interval: int | None = _env("VAULT_DRIFT_CHECK_INTERVAL", "check_interval")
    public_url: str | None = _env("VAULT_DRIFT_PUBLIC_URL", "public_url")
    smtp_host: str | None = _env("VAULT_DRIFT_SMTP_HOST", "smtp_host")
    smtp_port: int = Field(587, validation_alias=AliasChoices("VAULT_DRIFT_SMTP_PORT", "smtp_port"))
    smtp_user: str | None = _env("VAULT_DRIFT_SMTP_USER", "smtp_user")
    smtp_password: SecretStr | None = _env("VAULT_DRIFT_SMTP_PASSWORD", "smtp_password")
    smtp_starttls: bool = Field(
        True, validation_alias=AliasChoices("VAULT_DRIFT_SMTP_STARTTLS", "smtp_starttls")
    )
    mail_from: str | None = _env("VAULT_DRIFT_MAIL_FROM", "mail_from")
    mail_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("VAULT_DRIFT_MAIL_TO", "mail_to")
    )
    log_level: str = Field(
        "info", validation_alias=AliasChoices("VAULT_DRIFT_LOG_LEVEL", "log_level")
    )
    # json, text, or auto: text when stderr is a terminal, JSON lines for log shippers.
    log_format: str = Field(
        "auto", validation_alias=AliasChoices("VAULT_DRIFT_LOG_FORMAT", "log_format")
    )
    # vault-api's Cloudflare actors (token ids, actor ids or emails): its writes in the audit
    # log are named "vault-api", never counted as manual edits (docs/design.md, "Attribution").
    vault_api_actors: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("VAULT_DRIFT_VAULT_API_ACTORS", "vault_api_actors"),
    )

    # Signed webhooks (README "Webhooks"): receivers, and the Standard Webhooks secret.
    webhook_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("VAULT_DRIFT_WEBHOOK_URLS", "webhook_urls"),
    )
    webhook_secret: SecretStr | None = _env("VAULT_DRIFT_WEBHOOK_SECRET", "webhook_secret")

    @field_validator(
        "cloudflare_api_token",
        "cloudflare_account_id",
        "d1_api_token",
        "admin_token",
        "read_token",
        "logpush_token",
        "public_url",
        "smtp_host",
        "smtp_user",
        "smtp_password",
        "mail_from",
        "aws_identity_store_id",
        "aws_endpoint_url",
        "webhook_secret",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database", mode="before")
    @classmethod
    def _database(cls, value: Any) -> Any:
        text = str(value).strip() if value is not None else ""
        if not text:
            raise ValueError("must be a SQLite file path or d1://<database_id>")
        if text.lower().startswith(D1_SCHEME):
            database_id = text[len(D1_SCHEME) :].strip("/")
            if not _D1_ID.match(database_id):
                raise ValueError(
                    "d1:// must be followed by a D1 database id (a UUID such as"
                    " d1://xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
                )
            return D1_SCHEME + database_id.lower()
        return text

    @field_validator("d1_lease", mode="before")
    @classmethod
    def _lease(cls, value: Any) -> Any:
        return _duration_between(value, 3, 600, "3s and 10m")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("check_interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return _duration_between(value, 30, 86400, "30s and 24h")

    @field_validator("cloudflare_timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return _duration_between(value, 1, 600, "1s and 10m")

    @field_validator("cloudflare_page_size")
    @classmethod
    def _page_size(cls, value: int) -> int:
        if not 5 <= value <= 1000:
            raise ValueError("must be between 5 and 1000")
        return value

    @field_validator("aws_identity_store_id")
    @classmethod
    def _store_id(cls, value: str | None) -> str | None:
        if value is not None and not _AWS_STORE_ID.match(value.strip()):
            raise ValueError("must be an identity store id such as d-1234567890")
        return value.strip() if value else value

    @field_validator("cloudflare_base_url", "public_url", "aws_endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator("admin_token", "read_token", "logpush_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters")
        return value

    @field_validator("mail_to", mode="before")
    @classmethod
    def _recipients(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("vault_api_actors", mode="before")
    @classmethod
    def _actors(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            return [str(part).strip().lower() for part in value if str(part).strip()]
        return value

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _webhook_urls(cls, value: Any) -> Any:
        """Each an http(s) URL; a bad one is named by its position (a URL may hold a token)."""
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list):
            return value
        urls = [str(part).strip() for part in value if str(part).strip()]
        bad = [str(n) for n, url in enumerate(urls, 1) if not _WEBHOOK_URL.match(url)]
        if bad:
            raise ValueError(f"entry {', '.join(bad)} is not an http(s) URL")
        if len(set(urls)) != len(urls):
            raise ValueError("a URL is listed twice")
        return urls

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                decode_secret(value.get_secret_value())
            except BadSecret as exc:  # its message never holds the value
                raise ValueError(str(exc)) from None
        return value

    @field_validator("smtp_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 0 < value < 65536:
            raise ValueError("must be a TCP port (1-65535)")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError("must be debug, info, warning or error")
        return value.lower()

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value.lower() not in ("auto", "json", "text"):
            raise ValueError("must be json or text (or auto: text on a terminal)")
        return value.lower()

    @property
    def d1_database_id(self) -> str | None:
        """The D1 database of ``VAULT_DRIFT_DATABASE=d1://<id>``; None for a SQLite file."""
        if self.database.startswith(D1_SCHEME):
            return self.database[len(D1_SCHEME) :]
        return None

    @property
    def d1_token(self) -> SecretStr | None:
        """``VAULT_DRIFT_D1_API_TOKEN``, else the Access token."""
        return self.d1_api_token or self.cloudflare_api_token

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    @property
    def mail_enabled(self) -> bool:
        return bool(self.smtp_host and self.mail_from and self.mail_to)

    @property
    def webhook_key(self) -> bytes | None:
        """The signing key of ``VAULT_DRIFT_WEBHOOK_SECRET`` (validated at load)."""
        if self.webhook_secret is None:
            return None
        return decode_secret(self.webhook_secret.get_secret_value())

    def check_webhooks(self) -> None:
        """Receivers need the secret that signs what they get."""
        if self.webhook_urls and self.webhook_secret is None:
            raise ConfigError(
                [
                    "VAULT_DRIFT_WEBHOOK_SECRET: required when VAULT_DRIFT_WEBHOOK_URLS is set"
                    " (whsec_ followed by the base64 of at least 24 random bytes)"
                ]
            )

    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url
        host, port = self.listen_address
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        return f"http://{shown}:{port}"

    def check_cloudflare(self) -> None:
        """Outside the demo the Cloudflare credentials are required."""
        problems = [
            f"{name}: required (set the environment variable or `{key}` in the config file)"
            for name, key, value in (
                ("CLOUDFLARE_API_TOKEN", "cloudflare_api_token", self.cloudflare_api_token),
                ("CLOUDFLARE_ACCOUNT_ID", "cloudflare_account_id", self.cloudflare_account_id),
            )
            if value is None
        ]
        if problems:
            raise ConfigError(problems)

    def check_d1(self) -> None:
        """A Vault in D1 needs the account and a token (``VAULT_DRIFT_D1_API_TOKEN`` or the
        Access token), whatever the command."""
        problems = []
        if self.cloudflare_account_id is None:
            problems.append(
                "CLOUDFLARE_ACCOUNT_ID: required for VAULT_DRIFT_DATABASE=d1://"
                " (set the environment variable or `cloudflare_account_id`)"
            )
        if self.d1_token is None:
            problems.append(
                "VAULT_DRIFT_D1_API_TOKEN: required for VAULT_DRIFT_DATABASE=d1:// (or set"
                " CLOUDFLARE_API_TOKEN, which it defaults to)"
            )
        if problems:
            raise ConfigError(problems)


def _duration_between(value: Any, low: int, high: int, shown: str) -> int:
    seconds = parse_duration(value)
    if not low <= seconds <= high:
        raise ValueError(f"must be between {shown}")
    return seconds


def parse_listen(value: str) -> tuple[str, int]:
    match = _LISTEN.match(value.strip())
    if not match or not 0 < int(match["port"]) < 65536:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9847")
    return match["host"].strip("[]"), int(match["port"])


def load_config(
    config_file: str | Path | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Config:
    """Read the configuration; raise ConfigError listing every problem."""
    env = dict(os.environ if environ is None else environ)
    path = Path(config_file) if config_file else None
    if path is None and env.get("VAULT_DRIFT_CONFIG"):
        path = Path(env["VAULT_DRIFT_CONFIG"])
    if path is not None and not path.is_file():
        raise ConfigError([f"config file {path}: not found"])
    try:
        return _settings_class(path, env)(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()]) from None
    except ValueError as exc:  # a TOML syntax error
        raise ConfigError([f"config file {path}: {exc}"]) from None


def _settings_class(path: Path | None, env: dict[str, str]) -> type[Config]:
    known = {
        alias.upper()
        for field in Config.model_fields.values()
        if isinstance(field.validation_alias, AliasChoices)
        for alias in field.validation_alias.choices
        if isinstance(alias, str)
    }
    scoped = {k: v for k, v in env.items() if k.upper() in known}

    class _Config(Config):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            from pydantic_settings import EnvSettingsSource

            env_source = EnvSettingsSource(settings_cls)
            env_source.env_vars = {k.lower(): v for k, v in scoped.items()}
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_source]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    return _Config


def _describe(error: Any) -> str:
    loc = error.get("loc") or ("config",)
    key = str(loc[0])
    field = Config.model_fields.get(key)
    if field is not None and isinstance(field.validation_alias, AliasChoices):
        key = str(field.validation_alias.choices[0])
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown setting"
    return f"{key}: {message}"
