"""Token records sealed at rest: AES-GCM with a key derived from the app's secret key, so that a
copy of the store yields no usable token.

A sealed record is text: ``v1.<key id>.<nonce and ciphertext>``, its plaintext JSON (never a
pickle). The record's own key is bound in as associated data, so a sealed record cannot be moved
to another sign-in. Records sealed with a key of ``SECRET_KEY_FALLBACKS`` still open, and are
sealed with the current key when next written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1"
log = logging.getLogger(__name__)


class Sealer:
    """Seals with the first of ``secrets`` (the current secret key), opens with any of them."""

    def __init__(self, secrets: Iterable[str | bytes]) -> None:
        self._keys = [_derive(secret) for secret in secrets if secret]
        if not self._keys:
            raise ValueError("sealing needs a secret key")
        self._by_id = {_key_id(key): AESGCM(key) for key in reversed(self._keys)}
        self._current_id = _key_id(self._keys[0])

    def seal(self, data: Any, *, bound_to: str) -> str:
        """``data`` (JSON-serialisable) sealed for the record ``bound_to``."""
        nonce = os.urandom(12)
        plaintext = json.dumps(data, separators=(",", ":")).encode()
        sealed = self._by_id[self._current_id].encrypt(nonce, plaintext, bound_to.encode())
        payload = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{VERSION}.{self._current_id}.{payload}"

    def open(self, sealed: Any, *, bound_to: str) -> Any:
        """What ``sealed`` holds; None when it is missing, not sealed by one of our keys for this
        record, or tampered with (logged)."""
        if not isinstance(sealed, str):
            return None
        try:
            version, key_id, payload = sealed.split(".", 2)
            raw = base64.urlsafe_b64decode(payload)
            aead = self._by_id[key_id] if version == VERSION else None
            if aead is None:
                raise KeyError(version)
            return json.loads(aead.decrypt(raw[:12], raw[12:], bound_to.encode()))
        except (ValueError, KeyError, InvalidTag, binascii.Error):
            log.warning("a token record could not be opened (another key, or tampered with)")
            return None


def _derive(secret: str | bytes) -> bytes:
    material = secret.encode() if isinstance(secret, str) else secret
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"flask-oidc-refresh",
        info=b"token records at rest",
    )
    return hkdf.derive(material)


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]
