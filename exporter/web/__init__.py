"""The HTTP side: the API, /metrics, health, and the operator page."""

from exporter.web.app import create_app

__all__ = ["create_app"]
