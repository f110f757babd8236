"""Pure delta-state CRDTs (no I/O) and their Avro forms.

See `streams.crdt.causal` for the causal types and the add-wins semantics, and
`streams.crdt.agent` for the agent state built from them.
"""

from streams.crdt.agent import SCHEMA, AgentCRDT, CRDTTypeMismatch, SettingsMap, UIMemory
from streams.crdt.causal import AWORSet, Causal, CCounter, MVRegister, ORMap, causal_type
from streams.crdt.codec import CodecError, decode, decode_bundle, encode, encode_bundle
from streams.crdt.context import CausalContext, Dot
from streams.crdt.counters import GCounter, PNCounter
from streams.crdt.lww import LWWRegister

__all__ = [
    "SCHEMA", "AWORSet", "AgentCRDT", "CCounter", "CRDTTypeMismatch", "Causal",
    "CausalContext", "CodecError", "Dot", "GCounter", "LWWRegister", "MVRegister", "ORMap",
    "PNCounter", "SettingsMap", "UIMemory", "causal_type", "decode", "decode_bundle",
    "encode", "encode_bundle",
]
