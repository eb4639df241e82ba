"""Encryption of backup files at rest: AES-256-GCM (``cryptography``), one random nonce per file.

A stored file is ``b"DMB1" + nonce (12 bytes) + ciphertext + tag (16 bytes)``. The associated data
is ``<backup id>/<path in the backup>``, so a file cannot be swapped for another file of the same or
another backup without decryption failing. The key is 32 bytes, read from the file named by
``backup.key_file`` (raw bytes, or 64 hex digits, or base64 of them); it is never printed. A backup
records only the key's fingerprint (an HMAC of a fixed label), so a wrong key is refused at once
with a clear message instead of 'authentication failed' on the first file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from datamin.exceptions import BackupError

MAGIC: Final = b"DMB1"
NONCE_BYTES: Final = 12
KEY_BYTES: Final = 32
ALGORITHM: Final = "AES-256-GCM"


class BackupKey:
    """A loaded backup key. ``repr`` never shows it."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise BackupError(f"a backup key must be {KEY_BYTES} bytes, not {len(key)}: "
                              "create one with `datamin backup keygen PATH`")
        self._aead = AESGCM(key)
        self.fingerprint = hmac.new(key, b"datamin backup key fingerprint", hashlib.sha256).hexdigest()[:16]
        """identifies the key in a manifest without revealing it"""

    def __repr__(self) -> str:
        return f"BackupKey(fingerprint={self.fingerprint})"

    def encrypt(self, data: bytes, associated: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, associated.encode("utf-8"))

    def decrypt(self, blob: bytes, associated: str) -> bytes:
        """The plaintext; BackupError when the blob is not ours, damaged, or made with another key."""
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
            raise BackupError(f"{associated}: not an encrypted backup file (damaged or foreign)")
        nonce = blob[len(MAGIC):len(MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES:], associated.encode("utf-8"))
        except InvalidTag:
            raise BackupError(f"{associated}: decryption failed: the file is damaged or was encrypted with "
                              "another key") from None


def load_key(path: str | os.PathLike[str]) -> BackupKey:
    """The key in ``path``: 32 raw bytes, or 64 hex digits, or base64 of 32 bytes (whitespace ignored)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BackupError(f"cannot read the backup key file {path} ({exc.strerror}): check backup.key_file") from None
    if len(data) == KEY_BYTES:
        return BackupKey(data)
    text = data.strip()
    try:
        if len(text) == 2 * KEY_BYTES:
            return BackupKey(binascii.unhexlify(text))
        return BackupKey(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise BackupError(f"the backup key file {path} holds neither {KEY_BYTES} raw bytes, nor hex, nor "
                          "base64: create one with `datamin backup keygen PATH`") from None


def write_new_key(path: str | os.PathLike[str]) -> BackupKey:
    """Creates a new random key file (mode 0600, hex); refuses to overwrite one."""
    target = Path(path)
    key = os.urandom(KEY_BYTES)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BackupError(f"{target} exists already: a key is never overwritten (backups made with it "
                          "could no longer be read); choose another path") from None
    with os.fdopen(fd, "wb") as f:
        f.write(binascii.hexlify(key) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return BackupKey(key)
