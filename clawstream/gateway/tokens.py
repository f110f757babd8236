"""Gateway tokens: what an agent sends, what is stored, and the registry every replica holds.

A token is `cst_<id>_<secret>`: `id` is 16 hex digits (public: it names the token in logs, in
the `principal` column and on the command line), `secret` 32 random bytes (urlsafe base64).
It is printed once by `clawstream tokens create`; only its SHA-256 is stored. 256 random bits
need no slow password hash: nobody can search that space, and a fast hash keeps the check per
request at a microsecond.

The registry is the compacted topic `claw.gateway-tokens.v1`: one JSON record per token id
(hash, binding, creation, revocation). Every gateway replica follows it whole
(`TokenRegistry`), so a token created or revoked on one machine is known to all within about
a second. A revoked token keeps its record (audit: which agents `token:<id>` could write as).

A token binds an identity: one agent id (`--agent`) or every agent id starting with a prefix
(`--agent-prefix`, a fleet on one machine). Events carrying another agent id are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from confluent_kafka import Message
from pydantic import SecretStr

from clawstream.kafka.follower import TopicFollower
from clawstream.kafka.producer import ReliableProducer
from clawstream.settings import Settings
from schemas.topics import GATEWAY_TOKENS

log = logging.getLogger(__name__)

PREFIX = "cst_"
_TOKEN_RE = re.compile(r"cst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_ID_RE = re.compile(r"[0-9a-f]{16}")


class TokenError(ValueError):
    """A token or token command that cannot be used (the message says why)."""


def hash_token(token: SecretStr) -> str:
    return hashlib.sha256(token.get_secret_value().encode()).hexdigest()


def parse_token(token: SecretStr) -> str | None:
    """The id of a well-formed token, else None (the secret is never part of any message)."""
    m = _TOKEN_RE.fullmatch(token.get_secret_value())
    return m.group(1) if m else None


def principal_of(token_id: str) -> str:
    """What the `clawstream.principal` header and the `principal` column hold."""
    return f"token:{token_id}"


@dataclass(frozen=True)
class TokenRecord:
    """What is stored of one token (never the token itself)."""

    token_id: str
    sha256: str
    agent: str | None = None
    agent_prefix: str | None = None
    created_at: int = 0  # epoch ms
    revoked_at: int | None = None
    note: str = ""

    @property
    def principal(self) -> str:
        return principal_of(self.token_id)

    @property
    def binding(self) -> str:
        return f"agent {self.agent}" if self.agent is not None else \
            f"agents {self.agent_prefix}*"

    def allows(self, agent_id: str) -> bool:
        if self.agent is not None:
            return agent_id == self.agent
        return self.agent_prefix is not None and agent_id.startswith(self.agent_prefix)

    def matches(self, token: SecretStr) -> bool:
        return hmac.compare_digest(hash_token(token), self.sha256)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TokenRecord:
        raw: dict[str, Any] = json.loads(data)
        fields = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in fields})


def new_token(*, agent: str | None = None, agent_prefix: str | None = None,
              note: str = "") -> tuple[SecretStr, TokenRecord]:
    """A fresh token and the record to store for it."""
    if (agent is None) == (agent_prefix is None):
        raise TokenError("a token binds exactly one of an agent id or an agent id prefix")
    if not (agent or agent_prefix):
        raise TokenError("the agent id (or prefix) a token binds must not be empty")
    token_id = secrets.token_hex(8)
    token = SecretStr(f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}")
    record = TokenRecord(token_id, hash_token(token), agent=agent, agent_prefix=agent_prefix,
                         created_at=int(time.time() * 1000), note=note)
    return token, record


class TokenRegistry:
    """Every token record of the registry topic, kept up to date by a follower thread."""

    def __init__(self, settings: Settings, client_id: str = "clawstream-gateway-tokens") -> None:
        self.settings = settings
        self.topic = settings.topic(GATEWAY_TOKENS)
        self._records: dict[str, TokenRecord] = {}
        self._lock = threading.Lock()
        self._follower = TopicFollower(settings, "gateway", self.topic, client_id, self._apply)

    def start(self, timeout: float = 30.0) -> TokenRegistry:
        self._follower.start(timeout)
        return self

    def wait_loaded(self, timeout: float = 30.0) -> bool:
        """True once every record stored when the registry started was read."""
        return self._follower.caught_up.wait(timeout)

    @property
    def loaded(self) -> bool:
        return self._follower.caught_up.is_set()

    def _apply(self, msg: Message) -> None:
        key = (msg.key() or b"").decode("utf-8", "replace")
        value = msg.value()
        with self._lock:
            if value is None:  # a tombstone: the token is gone
                self._records.pop(key, None)
                return
            try:
                record = TokenRecord.from_json(value)
            except (ValueError, TypeError) as exc:
                log.warning("token record %r unreadable (%s): ignored", key, exc)
                return
            self._records[record.token_id] = record

    def get(self, token_id: str) -> TokenRecord | None:
        return self._records.get(token_id)

    def authenticate(self, token: SecretStr) -> TokenRecord | None:
        """The live record of `token`, or None (malformed, unknown, wrong secret, revoked)."""
        token_id = parse_token(token)
        if token_id is None:
            return None
        record = self._records.get(token_id)
        if record is None or record.revoked_at is not None or not record.matches(token):
            return None
        return record

    def records(self) -> list[TokenRecord]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.created_at)

    def close(self) -> None:
        self._follower.close()


def _write(settings: Settings, record: TokenRecord) -> None:
    # an operator's act: the gateways may read the registry, not write it (least privilege)
    producer = ReliableProducer(settings, "admin", "clawstream-tokens")
    producer.produce(settings.topic(GATEWAY_TOKENS), record.to_json(), record.token_id.encode())
    producer.flush(30)


def create_token(settings: Settings, *, agent: str | None = None,
                 agent_prefix: str | None = None, note: str = "") -> tuple[SecretStr, TokenRecord]:
    """Make a token, store its record (acknowledged by Kafka) and return both."""
    token, record = new_token(agent=agent, agent_prefix=agent_prefix, note=note)
    _write(settings, record)
    return token, record


def revoke_token(settings: Settings, token_id: str, timeout: float = 30.0) -> TokenRecord:
    """Mark a token revoked in the registry (every gateway refuses it within seconds)."""
    if not _ID_RE.fullmatch(token_id):
        raise TokenError(f"{token_id!r} is not a token id (16 hex digits, as `tokens list` "
                         "shows; not the token itself)")
    registry = TokenRegistry(settings, "clawstream-tokens-revoke").start(timeout)
    try:
        if not registry.wait_loaded(timeout):
            raise TokenError("the token registry could not be read in time")
        record = registry.get(token_id)
    finally:
        registry.close()
    if record is None:
        raise TokenError(f"no token {token_id} in {settings.topic(GATEWAY_TOKENS)}")
    if record.revoked_at is not None:
        return record
    revoked = replace(record, revoked_at=int(time.time() * 1000))
    _write(settings, revoked)
    return revoked


def list_tokens(settings: Settings, timeout: float = 30.0) -> list[TokenRecord]:
    registry = TokenRegistry(settings, "clawstream-tokens-list").start(timeout)
    try:
        if not registry.wait_loaded(timeout):
            raise TokenError("the token registry could not be read in time")
        return registry.records()
    finally:
        registry.close()
