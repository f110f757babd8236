"""Content-addressed local store for full screen images (the claim-check pattern).

A frame event carries only a thumbnail and ``cas://sha256/<hex>``; the full image lives at
``<root>/<hex[:2]>/<hex[2:4]>/<hex>``. Writes are atomic (temp file + rename), identical
content is stored once, and a reader can verify what it gets against its name.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

URI_PREFIX = "cas://sha256/"


class BlobNotFound(KeyError):
    """No blob with that digest in this store."""


def parse_uri(uri: str) -> str:
    """The hex digest of a ``cas://sha256/<hex>`` URI."""
    if not uri.startswith(URI_PREFIX):
        raise ValueError(f"not a content-addressed URI: {uri!r}")
    digest = uri[len(URI_PREFIX) :]
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"bad sha256 digest in {uri!r}")
    return digest


class BlobStore:
    """Files named by their SHA-256 under `root`."""

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self._known: set[str] = set()  # digests known to be on disk (saves a stat per put)

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store `data` (once) and return its URI."""
        digest = digest or hashlib.sha256(data).hexdigest()
        if digest in self._known:
            return URI_PREFIX + digest
        path = self.path_for(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    if self.fsync:
                        fh.flush()
                        os.fsync(fh.fileno())
                os.replace(tmp, path)  # atomic; a concurrent writer of the same bytes is harmless
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        self._known.add(digest)
        return URI_PREFIX + digest

    def get(self, uri: str, *, verify: bool = True) -> bytes:
        digest = parse_uri(uri)
        try:
            data = self.path_for(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(uri) from None
        if verify and hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"blob {uri} is corrupt on disk")
        return data

    def exists(self, uri: str) -> bool:
        return self.path_for(parse_uri(uri)).exists()


# -- images -----------------------------------------------------------------------------------
def to_pil(image: Any) -> Any:
    """A PIL image from encoded bytes (PNG/JPEG/...), a numpy array (H,W[,C]) or a PIL image."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (bytes, bytearray, memoryview)):
        img = Image.open(io.BytesIO(bytes(image)))
        img.load()
        return img
    import numpy as np

    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        return Image.fromarray(arr)
    raise TypeError(f"unsupported image type {type(image).__name__}")


def encode_image(image: Any) -> bytes:
    """The bytes to store for a full image: kept as given if already encoded, else PNG."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def make_thumbnail(image: Any, max_width: int = 160, quality: int = 70) -> tuple[bytes, int, int]:
    """A small JPEG (at most `max_width` wide, aspect kept) and its size."""
    img = to_pil(image)
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    w, h = img.size
    if w > max_width:
        new_h = max(1, round(h * max_width / w))
        img = img.resize((max_width, new_h))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), img.size[0], img.size[1]


def average_hash(image: Any, size: int = 8) -> str:
    """A 64-bit perceptual (average) hash as 16 hex digits: similar screens, similar hashes."""
    img = to_pil(image).convert("L").resize((size, size))
    px = list(img.tobytes())
    mean = sum(px) / len(px)
    bits = 0
    for p in px:
        bits = (bits << 1) | (1 if p >= mean else 0)
    return f"{bits:0{size * size // 4}x}"
