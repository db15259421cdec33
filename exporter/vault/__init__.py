"""The Vault database: reads vault-api's iam_* tables, owns the sys_infra_drift_* tables."""

from exporter.vault.db import VaultDB, VaultError

__all__ = ["VaultDB", "VaultError"]
