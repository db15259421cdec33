"""Delivering the webhook outbox (docs/webhooks.md): signed POSTs, at least once, in order
per audience and receiver. The events themselves are built by ``core/webhooks.py`` and
persisted by the store with the state change that caused them."""
