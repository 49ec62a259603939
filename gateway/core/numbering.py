"""Phone number syntax shared by the API and the adapters."""

import re

# E.164 digits with an optional leading "+": country code first, at most 15 digits.
E164 = re.compile(r"^\+?[1-9]\d{1,14}$")
