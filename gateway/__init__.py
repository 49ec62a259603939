"""Self-hosted programmable-voice gateway speaking the Infobip Calls API."""

__version__ = "0.1.0"
