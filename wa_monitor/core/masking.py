"""Secrets kept out of logs and messages: the password of a URL becomes ***.

A module of its own, importing nothing of the package, so that the lowest layers
(the review store, the log formatter) can mask without importing the settings.
"""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?=@)")


def mask_url(text: str) -> str:
    """Replace the password of every URL in `text` with ***."""
    return _URL_PASSWORD.sub(r"\g<head>***", text)
