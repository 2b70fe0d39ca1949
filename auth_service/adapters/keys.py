"""Signing keys from PEM files: ``<kid>.pem`` files in one directory.

In Kubernetes the directory is a mounted Secret with one key per file; rotation is adding
a file with a newer kid (the newest kid, in sort order, signs; every file verifies) and,
after the longest access-token lifetime, removing the old one. Embedded mode generates one
key on first start and keeps it under the data directory.
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from svckit.tokens import SigningKey

log = logging.getLogger("minitg.auth.keys")


class KeyFileError(ValueError):
    """A key file is missing or not an EC P-256 private key; the message names it."""


def load_signing_keys(directory: Path, *, generate_if_empty: bool) -> list[SigningKey]:
    """Every key in ``directory``, newest kid last; generate one first when allowed."""
    paths = sorted(directory.glob("*.pem")) if directory.is_dir() else []
    if not paths:
        if not generate_if_empty:
            raise KeyFileError(f"MINITG_JWT_KEYS_DIR: no <kid>.pem signing keys in {directory}")
        paths = [generate_key_file(directory)]
    return [_load(path) for path in paths]


def _load(path: Path) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"MINITG_JWT_KEYS_DIR: cannot load {path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise KeyFileError(f"MINITG_JWT_KEYS_DIR: {path} is not an EC P-256 private key")
    return SigningKey(path.stem, key)


def generate_key_file(directory: Path, kid: str | None = None) -> Path:
    """Write a new EC P-256 private key as ``<kid>.pem`` (mode 0600); kid defaults to now."""
    directory.mkdir(parents=True, exist_ok=True)
    kid = kid or datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    key = SigningKey.generate(kid)
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = directory / f"{kid}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    log.info("generated JWT signing key %s in %s", kid, directory)
    return path
