"""The typed event helpers: `frame`, `detection`, `plan`, `action`, `outcome`, `heartbeat`
and `state_delta` build each event type's body from plain arguments and emit it.

`TypedEvents` is mixed into `AgentClient`, which provides `emit` and what else it declares.
Frames go claim-check style through `ClaimCheck`: the picture to the blob store, a thumbnail
and hashes inline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from producers.blobstore import BlobStore, average_hash, encode_image, make_thumbnail, to_pil


class StoredImage(NamedTuple):
    """A frame's picture once stored: where it is and what rides inline."""

    uri: str
    sha256: str
    thumbnail: bytes
    thumb_width: int
    thumb_height: int
    phash: str
    width: int
    height: int


class ClaimCheck:
    """Stores frames' pictures in the blob store (once per content); the thumbnail, hash and
    size of a picture already seen are not computed again."""

    #: pictures whose thumbnails are remembered, at most
    CACHE = 512

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._seen: dict[str, tuple[bytes, int, int, str, int, int]] = {}

    def put(self, image: Any) -> StoredImage:
        """`image`: bytes of an encoded picture, a PIL image or a numpy array."""
        data = encode_image(image)
        sha = hashlib.sha256(data).hexdigest()
        uri = self.blobs.put(data, sha)
        cached = self._seen.get(sha)
        if cached is None:
            tb, tw, th = make_thumbnail(data)
            w, h = to_pil(data).size
            cached = (tb, tw, th, average_hash(data), w, h)
            if len(self._seen) > self.CACHE:
                self._seen.clear()
            self._seen[sha] = cached
        return StoredImage(uri, sha, *cached)


def bbox(b: Any) -> dict[str, int]:
    """A BBox record from a dict or an (x, y, w, h) tuple."""
    if isinstance(b, dict):
        return {"x": int(b["x"]), "y": int(b["y"]), "w": int(b["w"]), "h": int(b["h"])}
    x, y, w, h = b
    return {"x": int(x), "y": int(y), "w": int(w), "h": int(h)}


class TypedEvents:
    """One method per event type; each returns the event_id. `**envelope` goes to `emit`
    (parent_id, event_time, trace_id, session_id, event_id).

    The class it is mixed into provides what is declared here."""

    agent_id: str
    replica_id: str | None
    claim_check: ClaimCheck

    def emit(self, event_type: str, body: dict[str, Any], *, parent_id: str | None = None,
             event_time: int | None = None, trace_id: str | None = None,
             session_id: str | None = None, event_id: str | None = None) -> str:
        raise NotImplementedError

    def liveness(self) -> tuple[float, int, int]:
        """(uptime in seconds, producer queue depth, spool depth): a heartbeat's defaults."""
        raise NotImplementedError

    def frame(
        self,
        image: Any = None,
        *,
        app: str = "",
        width: int | None = None,
        height: int | None = None,
        phash: str | None = None,
        change_ratio: float = 1.0,
        changed_regions: Sequence[Any] = (),
        thumbnail: bytes | None = None,
        thumb_size: tuple[int, int] | None = None,
        image_uri: str | None = None,
        redactions: int = 0,
        **envelope: Any,
    ) -> str:
        """A screen frame, claim-check style: `image` (bytes, PIL or numpy) goes to the blob
        store, a small JPEG thumbnail rides inline, the event carries the cas:// URI."""
        sha = None
        if image is not None:
            stored = self.claim_check.put(image)
            sha = stored.sha256
            thumbnail = thumbnail if thumbnail is not None else stored.thumbnail
            thumb_size = thumb_size or (stored.thumb_width, stored.thumb_height)
            phash = phash or stored.phash
            width, height = width or stored.width, height or stored.height
            image_uri = image_uri or stored.uri
        body = {
            "app": app,
            "width": int(width or 0),
            "height": int(height or 0),
            "phash": phash or "",
            "change_ratio": float(change_ratio),
            "changed_regions": [bbox(b) for b in changed_regions],
            "thumbnail": thumbnail or b"",
            "thumbnail_format": "jpeg",
            "thumb_width": thumb_size[0] if thumb_size else 0,
            "thumb_height": thumb_size[1] if thumb_size else 0,
            "image_uri": image_uri,
            "image_sha256": sha or (image_uri.rsplit("/", 1)[-1] if image_uri else None),
            "redactions": redactions,
        }
        return self.emit("frame", body, **envelope)

    def detection(
        self,
        frame_id: str,
        elements: Iterable[dict[str, Any]],
        *,
        app: str = "",
        duration_ms: float = 0.0,
        parent_id: str | None = None,
        **envelope: Any,
    ) -> str:
        """The UI elements found on frame `frame_id` (its event_id is the parent)."""
        els = []
        for i, e in enumerate(elements):
            el = dict(e)
            el.setdefault("element_id", f"e{i}")
            el["bbox"] = bbox(el.get("bbox", (0, 0, 0, 0)))
            el.setdefault("kind", "other")
            el.setdefault("confidence", 1.0)
            el.setdefault("source", "opencv")
            el.setdefault("interactable", el["kind"] in ("button", "text_field", "checkbox"))
            els.append(el)
        body = {"app": app, "frame_id": frame_id, "elements": els, "duration_ms": duration_ms}
        return self.emit("detection", body, parent_id=parent_id or frame_id, **envelope)

    def plan(
        self,
        goal: str,
        steps: Iterable[dict[str, Any] | str],
        *,
        app: str = "",
        planner: str = "rules",
        **envelope: Any,
    ) -> str:
        """What the planner intends; actions point back at the returned id."""
        out = []
        for i, s in enumerate(steps):
            step: dict[str, Any] = (
                {"description": s, "action_kind": "other"} if isinstance(s, str) else dict(s))
            step.setdefault("index", i)
            step.setdefault("description", step.get("action_kind", ""))
            step.setdefault("action_kind", "other")
            out.append(step)
        return self.emit("plan", {"app": app, "goal": goal, "planner": planner, "steps": out},
                         **envelope)

    def action(
        self,
        kind: str,
        *,
        app: str = "",
        plan_id: str | None = None,
        step_index: int | None = None,
        target: dict[str, Any] | str | None = None,
        x: int | None = None,
        y: int | None = None,
        params: dict[str, str] | None = None,
        executor: str = "pyautogui",
        parent_id: str | None = None,
        **envelope: Any,
    ) -> str:
        """One executor step (parent: the plan)."""
        if isinstance(target, str) or target is None:
            tgt: dict[str, Any] = {"label": target}
        else:
            tgt = dict(target)
            if "bbox" in tgt and tgt["bbox"] is not None:
                tgt["bbox"] = bbox(tgt["bbox"])
        if x is not None:
            tgt["x"] = x
        if y is not None:
            tgt["y"] = y
        body = {"app": app, "plan_id": plan_id, "step_index": step_index, "kind": kind,
                "target": tgt, "params": {k: str(v) for k, v in (params or {}).items()},
                "executor": executor}
        return self.emit("action", body, parent_id=parent_id or plan_id, **envelope)

    def outcome(
        self,
        action_id: str,
        status: str,
        duration_ms: float,
        *,
        app: str = "",
        action_kind: str = "other",
        error: str | None = None,
        error_kind: str | None = None,
        verification: dict[str, Any] | None = None,
        executor: str = "pyautogui",
        parent_id: str | None = None,
        **envelope: Any,
    ) -> str:
        """What happened after action `action_id` (its event_id is the parent)."""
        body = {"action_id": action_id, "app": app, "action_kind": action_kind,
                "status": status, "duration_ms": float(duration_ms), "error": error,
                "error_kind": error_kind, "verification": verification, "executor": executor}
        return self.emit("outcome", body, parent_id=parent_id or action_id, **envelope)

    def heartbeat(
        self,
        status: str = "ok",
        *,
        uptime_s: float | None = None,
        cpu_percent: float | None = None,
        rss_bytes: int | None = None,
        queue_depth: int | None = None,
        spool_depth: int | None = None,
        **envelope: Any,
    ) -> str:
        """Liveness; uptime, queue and spool depth default to this client's own."""
        up, queued, spooled = self.liveness()
        body = {
            "status": status,
            "uptime_s": up if uptime_s is None else uptime_s,
            "cpu_percent": cpu_percent,
            "rss_bytes": rss_bytes,
            "queue_depth": queued if queue_depth is None else queue_depth,
            "spool_depth": spooled if spool_depth is None else spool_depth,
        }
        return self.emit("heartbeat", body, **envelope)

    def state_delta(
        self,
        key: str,
        crdt_type: str,
        payload: bytes,
        *,
        full_state: bool = False,
        replica_id: str | None = None,
        **envelope: Any,
    ) -> str:
        """A CRDT delta (payload in the CRDT's own encoding) from this replica."""
        body = {"replica_id": replica_id or self.replica_id or self.agent_id,
                "crdt_type": crdt_type, "key": key, "payload": payload,
                "full_state": full_state}
        return self.emit("state_delta", body, **envelope)
