"""The ingest gateway's wire protocol, client side: one batch as one request, and what its
answer means for the batch (`GatewayError.kind`: retry, split, reject, unauthorized,
unreachable). `producers.sdk.https` decides what to do about it."""

from __future__ import annotations

import ssl
import struct
from collections.abc import Sequence

import cramjam
import httpx
from confluent_kafka import KafkaError

from producers.settings import SdkSettings

AVRO_BATCH = "application/vnd.clawstream.avro-batch"
_LEN = struct.Struct(">I").pack


class GatewayError(Exception):
    """A batch the gateway did not take, and what to do with it."""

    def __init__(self, kind: str, detail: str, wait: float = 0.0) -> None:
        super().__init__(detail)
        self.kind = kind  # retry | split | reject | unauthorized | unreachable
        self.detail = detail
        self.wait = wait


def ssl_context(settings: SdkSettings) -> ssl.SSLContext:
    """Trust the system's CAs, or only `ingest_ca_file` when set (a private CA)."""
    if settings.ingest_ca_file is not None:
        return ssl.create_default_context(cafile=str(settings.ingest_ca_file))
    return ssl.create_default_context()


def describe(exc: Exception, settings: SdkSettings) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (f"TLS: the gateway's certificate is not trusted ({exc}); set "
                "CLAWSTREAM_INGEST_CA_FILE to the CA that signed it"
                + (f" (now {settings.ingest_ca_file})" if settings.ingest_ca_file else ""))
    return text



def post_batch(client: httpx.Client, url: str, values: Sequence[bytes], compress: str,
               settings: SdkSettings) -> dict[int, tuple[int, str]]:
    """Send one batch to `url`/v1/events; the refused items by index (their Kafka error code
    and why), or GatewayError."""
    parts: list[bytes] = []
    add = parts.append
    for v in values:
        add(_LEN(len(v)))
        add(v)
    body = b"".join(parts)
    headers = {}
    if compress == "zstd":
        body = bytes(cramjam.zstd.compress(body, 1))
        headers["Content-Encoding"] = "zstd"
    try:
        r = client.post(f"{url}/v1/events", content=body, headers=headers)
    except (httpx.HTTPError, OSError) as exc:
        raise GatewayError("unreachable", describe(exc, settings)) from None
    code = r.status_code
    if code == 200:
        return {}
    detail = _detail(r)
    if code == 207:
        refused = r.json().get("refused", [])
        return {int(x["index"]): (KafkaError.INVALID_RECORD if x.get("status") != 403
                                  else KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                  f"refused by the gateway: {x.get('reason')}: "
                                  f"{x.get('detail')}") for x in refused}
    if code == 429 or code >= 500:
        wait = _retry_after(r.headers.get("retry-after"))
        raise GatewayError("retry", f"gateway {code}: {detail}", wait)
    if code == 413:
        raise GatewayError("split", f"gateway 413: {detail}")
    if code == 401:
        raise GatewayError("unauthorized", f"gateway 401: the token was refused ({detail});"
                           " events stay in the spool until a valid token is configured")
    raise GatewayError("reject", f"gateway {code}: {detail}")


def _detail(r: httpx.Response) -> str:
    try:
        doc = r.json()
        return f"{doc.get('error')}: {doc.get('detail')}"
    except ValueError:
        return r.text[:200]


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 1.0
