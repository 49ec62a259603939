"""Every table module of the store, imported together so that ``create_all`` sees them all."""

from gateway.store import (  # noqa: F401
    conferences,
    configurations,
    dialogs,
    files,
    legs,
    outbox,
    recordings,
    subscriptions,
)
