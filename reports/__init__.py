"""Reporting on vault-drift's history: pandas frames, HTML digests and mail."""
