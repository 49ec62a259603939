"""Every table module of the store, imported together so that ``create_all`` sees them all."""

from gateway.store import conferences, configurations, dialogs, legs, outbox, subscriptions  # noqa: F401
