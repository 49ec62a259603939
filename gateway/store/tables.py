"""Every table module of the store, imported together so that ``create_all`` sees them all."""

from gateway.store import configurations, legs, outbox, subscriptions  # noqa: F401
