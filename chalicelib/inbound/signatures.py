"""Webhook signature verifiers: one small class, one ``verify(headers, body)``, one error.

Modelled on svix's ``webhooks.py``: header names are read case-insensitively and
signatures are compared in constant time.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping


class SignatureError(Exception):
    """The request's signature is missing or does not match."""


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """Read a header regardless of how the gateway cased its name."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def hmac_sha256(secret: str | bytes, message: str | bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under ``secret`` (UTF-8 for text)."""
    key = secret.encode() if isinstance(secret, str) else secret
    data = message.encode() if isinstance(message, str) else message
    return hmac.digest(key, data, "sha256")  # one C call: no HMAC object per request


class HmacSignatureVerifier:
    """Checks a ``<prefix><hex|base64 HMAC-SHA256(secret, raw body)>`` header.

    Meta sends ``X-Hub-Signature-256: sha256=<hex>``; X sends
    ``x-twitter-webhooks-signature: sha256=<base64>``.
    """

    def __init__(self, secret: str | bytes, *, header: str, prefix: str = "sha256=", encoding: str = "hex") -> None:
        if encoding not in ("hex", "base64"):
            raise ValueError("encoding must be 'hex' or 'base64'")
        self._secret = secret
        self.header = header
        self.prefix = prefix
        self.encoding = encoding

    def sign(self, body: bytes) -> str:
        """The header value a genuine sender would attach to ``body``."""
        digest = hmac_sha256(self._secret, body)
        encoded = digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()
        return self.prefix + encoded

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ``SignatureError`` unless ``headers`` carry a valid signature of ``body``."""
        received = get_header(headers, self.header)
        if not received:
            raise SignatureError(f"missing {self.header} header")
        if not hmac.compare_digest(received.strip().encode(), self.sign(body).encode()):
            raise SignatureError(f"{self.header} does not match the request body")
