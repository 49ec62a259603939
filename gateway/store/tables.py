"""Every table module of the store, imported together so that ``create_all`` sees them all."""

from gateway.store import configurations, dialogs, legs, outbox, subscriptions  # noqa: F401
