"""What the e-mail adapter keeps on disk: attachment bytes and the record of sent mail.

Attachments live in a content-addressed directory (`<dir>/<sha256[:2]>/<sha256>`), so a
mail processed twice stores its files once. The sent record holds one small file per
outbound contact that went out, so a redelivered answer is not mailed a second time.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from kanaal.email.parse import AttachmentPart


def _write_atomically(path: Path, data: bytes) -> None:
    """Write, fsync, rename: a crash leaves the old state or the new one, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class AttachmentStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def uri(self, sha256: str) -> str:
        return self.path(sha256).as_uri()

    def keep(self, attachments: list[AttachmentPart]) -> None:
        for attachment in attachments:
            path = self.path(attachment.sha256)
            if not path.exists():
                _write_atomically(path, attachment.data)


class SentRecord:
    """Which outbound contacts were handed to the SMTP server, with their Message-ID."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, contact_id: uuid.UUID) -> Path:
        return self.root / "sent" / str(contact_id)

    def message_id(self, contact_id: uuid.UUID) -> str | None:
        try:
            return self._path(contact_id).read_text(encoding="ascii").strip() or None
        except FileNotFoundError:
            return None

    def record(self, contact_id: uuid.UUID, message_id: str) -> None:
        _write_atomically(self._path(contact_id), message_id.encode("ascii"))
