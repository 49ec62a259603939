"""Webhook delivery: the durable outbox ``dispatcher`` and request ``signing``."""
