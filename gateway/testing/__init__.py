"""Loopback test tools for voice applications built on the gateway (and for its own tests)."""
