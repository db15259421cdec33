"""Configuration: TOML plus environment (environment wins), every problem at once, no secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "vault-drift.toml"
    toml.write_text('database = "from-file.db"\nlisten = "0.0.0.0:9000"\ncheck_interval = "5m"\n')
    config = load_config(toml, environ={"VAULT_DRIFT_LISTEN": "127.0.0.1:9100"})
    assert str(config.database) == "from-file.db"
    assert config.listen_address == ("127.0.0.1", 9100)
    assert config.check_interval == 300


def test_durations_recipients_and_defaults() -> None:
    config = load_config(
        environ={"VAULT_DRIFT_CHECK_INTERVAL": "1h30m", "VAULT_DRIFT_MAIL_TO": "a@x.com, b@y.org"}
    )
    assert config.check_interval == 5400
    assert config.cloudflare_timeout == 30 and config.cloudflare_page_size == 1000
    assert load_config(environ={"VAULT_DRIFT_CLOUDFLARE_TIMEOUT": "2m"}).cloudflare_timeout == 120
    assert config.mail_to == ["a@x.com", "b@y.org"]
    assert config.listen == "127.0.0.1:9847"
    assert config.cloudflare_base_url == "https://api.cloudflare.com/client/v4"
    assert not config.mail_enabled


def test_every_problem_is_listed_and_no_secret_is_shown(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("unknown_key = 1\nsmtp_port = 70000\n")
    env = {
        "VAULT_DRIFT_CHECK_INTERVAL": "soon",
        "VAULT_DRIFT_ADMIN_TOKEN": "short-secret",
        "CLOUDFLARE_BASE_URL": "ftp://nope",
        "VAULT_DRIFT_CLOUDFLARE_TIMEOUT": "0s",
        "VAULT_DRIFT_CLOUDFLARE_PAGE_SIZE": "5000",
    }
    with pytest.raises(ConfigError) as caught:
        load_config(toml, environ=env)
    problems = caught.value.problems
    assert len(problems) == 7, problems
    text = "\n".join(problems)
    assert "unknown_key: unknown setting" in text
    assert "VAULT_DRIFT_SMTP_PORT: must be a TCP port" in text
    assert "VAULT_DRIFT_ADMIN_TOKEN: must be at least 16 characters" in text
    assert "VAULT_DRIFT_CLOUDFLARE_TIMEOUT: must be between 1s and 10m" in text
    assert "VAULT_DRIFT_CLOUDFLARE_PAGE_SIZE: must be between 5 and 1000" in text
    assert "short-secret" not in text


def test_a_missing_or_broken_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("listen = ")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_config(broken, environ={})


def test_secrets_are_redacted_in_repr() -> None:
    config = load_config(environ={"CLOUDFLARE_API_TOKEN": "cf-token-1234567890"})
    assert "cf-token-1234567890" not in repr(config)
    assert "cf-token-1234567890" not in str(config.model_dump())


def test_a_d1_database_its_token_and_its_lease() -> None:
    config = load_config(
        environ={
            "VAULT_DRIFT_DATABASE": "d1://0B9C8A4E-5D2F-4C61-9F3E-7A1D2C3B4E5F",
            "CLOUDFLARE_API_TOKEN": "access-token",
            "CLOUDFLARE_ACCOUNT_ID": "acct",
        }
    )
    assert config.d1_database_id == "0b9c8a4e-5d2f-4c61-9f3e-7a1d2c3b4e5f"
    assert config.d1_token is not None and config.d1_token.get_secret_value() == "access-token"
    assert config.d1_lease == 60
    config.check_d1()
    own = load_config(
        environ={"VAULT_DRIFT_D1_API_TOKEN": "d1-token", "VAULT_DRIFT_D1_LEASE": "3s"}
    )
    assert own.d1_token is not None and own.d1_token.get_secret_value() == "d1-token"
    assert own.d1_lease == 3
    assert load_config(environ={}).d1_database_id is None


def test_a_malformed_d1_id_and_missing_d1_credentials_are_one_line_each() -> None:
    with pytest.raises(ConfigError) as bad:
        load_config(environ={"VAULT_DRIFT_DATABASE": "d1://my-vault"})
    [line] = bad.value.problems
    assert line.startswith("VAULT_DRIFT_DATABASE: d1:// must be followed by a D1 database id")
    config = load_config(environ={"VAULT_DRIFT_DATABASE": "d1://0b9c8a4e5d2f4c619f3e7a1d2c3b4e5f"})
    with pytest.raises(ConfigError) as missing:
        config.check_d1()
    assert [p.split(":")[0] for p in missing.value.problems] == [
        "CLOUDFLARE_ACCOUNT_ID",
        "VAULT_DRIFT_D1_API_TOKEN",
    ]


def test_the_aws_identity_store_and_its_local_endpoint() -> None:
    config = load_config(
        environ={
            "VAULT_DRIFT_AWS_IDENTITY_STORE_ID": " d-9067a1b2c3 ",
            "VAULT_DRIFT_AWS_ENDPOINT_URL": "http://127.0.0.1:5000/",
        }
    )
    assert config.aws_identity_store_id == "d-9067a1b2c3"
    assert config.aws_endpoint_url == "http://127.0.0.1:5000"
    assert load_config(environ={}).aws_identity_store_id is None
    with pytest.raises(ConfigError) as caught:
        load_config(
            environ={
                "VAULT_DRIFT_AWS_IDENTITY_STORE_ID": "store-1",
                "VAULT_DRIFT_AWS_ENDPOINT_URL": "localhost:5000",
            }
        )
    assert caught.value.problems == [
        "VAULT_DRIFT_AWS_IDENTITY_STORE_ID: must be an identity store id such as d-1234567890",
        "VAULT_DRIFT_AWS_ENDPOINT_URL: must be an http(s) URL",
    ]


WEBHOOK_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="  # 32 bytes


def test_webhook_receivers_and_their_secret() -> None:
    config = load_config(
        environ={
            "VAULT_DRIFT_WEBHOOK_URLS": " https://chat.example.com/hook/T0/B0/tok , http://soar:8080/in",
            "VAULT_DRIFT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
    )
    assert config.webhook_urls == ["https://chat.example.com/hook/T0/B0/tok", "http://soar:8080/in"]
    assert config.webhook_key == b"ABCDEFGHIJKLMNOPQRSTUVWXYZ456789"
    assert WEBHOOK_SECRET not in repr(config)
    config.check_webhooks()
    assert (
        load_config(environ={}).webhook_urls == [] and load_config(environ={}).webhook_key is None
    )


def test_bad_webhook_settings_are_named_without_their_values() -> None:
    secret = "whsec_" + "c2hvcnQ="  # "short": 5 bytes
    with pytest.raises(ConfigError) as caught:
        load_config(
            environ={
                "VAULT_DRIFT_WEBHOOK_URLS": "https://ok.example.com/x,ftp://tok3n@files/x",
                "VAULT_DRIFT_WEBHOOK_SECRET": secret,
            }
        )
    assert caught.value.problems == [
        "VAULT_DRIFT_WEBHOOK_URLS: entry 2 is not an http(s) URL",
        "VAULT_DRIFT_WEBHOOK_SECRET: must hold at least 24 bytes once base64-decoded",
    ]
    with pytest.raises(ConfigError, match="must start with whsec_"):
        load_config(environ={"VAULT_DRIFT_WEBHOOK_SECRET": "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"})
    receivers_only = load_config(environ={"VAULT_DRIFT_WEBHOOK_URLS": "https://x.example.com/"})
    with pytest.raises(ConfigError, match="VAULT_DRIFT_WEBHOOK_SECRET: required"):
        receivers_only.check_webhooks()


def test_standby_from_the_environment_or_the_flag() -> None:
    from exporter.cli.main import build_parser

    assert load_config(environ={"VAULT_DRIFT_STANDBY": "1"}).standby is True
    assert load_config(environ={}).standby is False
    assert build_parser().parse_args(["serve", "--standby"]).standby is True
    assert build_parser().parse_args(["serve"]).standby is None  # the environment decides
