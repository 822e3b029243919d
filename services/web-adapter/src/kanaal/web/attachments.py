"""Uploaded files: what is allowed in, and the attachment store they are kept in.

Only references travel on the bus (claim check): a file is kept under its SHA-256
(`<dir>/<sha256[:2]>/<sha256>`), so the same file uploaded twice is stored once, and the
contact carries filename, type, size, hash and a `file://` URI. The type a browser
claims is not trusted: the first bytes decide, and only the configured types pass.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kanaal.common.contract import Attachment

#: Magic numbers of the types the web channel can accept.
SIGNATURES: Final[dict[str, tuple[bytes, ...]]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}
DEFAULT_TYPES: Final = ("application/pdf", "image/jpeg", "image/png")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


class AttachmentRefused(ValueError):
    """A file the web channel does not take; the message says why, in Dutch, for the citizen."""


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_count: int
    types: tuple[str, ...] = DEFAULT_TYPES


def sniff(data: bytes) -> str | None:
    """The content type the first bytes show, or None."""
    for content_type, magics in SIGNATURES.items():
        if any(data.startswith(magic) for magic in magics):
            return content_type
    return None


def safe_filename(name: str) -> str:
    """The last path part, without control or path characters, at most 255 characters."""
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_NAME.sub("_", base).strip(" .")
    return cleaned[:255] or "bijlage"


def check(uploads: list[Upload], limits: Limits) -> list[tuple[Upload, str]]:
    """Each upload with its sniffed type; raises :class:`AttachmentRefused` naming the file."""
    if len(uploads) > limits.max_count:
        raise AttachmentRefused(f"U kunt ten hoogste {limits.max_count} bijlagen meesturen.")
    checked = []
    for upload in uploads:
        name = safe_filename(upload.filename)
        if len(upload.data) > limits.max_bytes:
            raise AttachmentRefused(
                f"Bijlage {name!r} is groter dan {_megabytes(limits.max_bytes)}."
            )
        if not upload.data:
            raise AttachmentRefused(f"Bijlage {name!r} is leeg.")
        content_type = sniff(upload.data)
        if content_type is None or content_type not in limits.types:
            allowed = ", ".join(t.split("/")[1].upper() for t in limits.types)
            raise AttachmentRefused(
                f"Bijlage {name!r} heeft een bestandstype dat wij niet aannemen "
                f"(toegestaan: {allowed})."
            )
        checked.append((Upload(name, upload.data), content_type))
    return checked


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB".replace(".0 MB", " MB").replace(".", ",")


class AttachmentStore:
    """A content-addressed folder; writes are atomic (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def keep(self, upload: Upload, content_type: str) -> Attachment:
        digest = hashlib.sha256(upload.data).hexdigest()
        path = self.path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(upload.data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return Attachment(
            filename=upload.filename,
            content_type=content_type,
            size=len(upload.data),
            sha256=digest,
            uri=path.as_uri(),
        )
