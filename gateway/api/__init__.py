"""The REST surface: the Calls API, the Subscriptions API and the gateway's own routes."""
