"""Pure delta-state CRDTs (no I/O) and their Avro forms, next to the contract whose
StateDelta and AgentState events carry them: the agent side (producers.state) makes deltas,
the server side (streams.state_merge) joins them, and neither owns them. Like the rest of
`schemas`, this package imports nothing of clawstream, producers, streams or consumers.

See `schemas.crdt.causal` for the causal types and the add-wins semantics, and
`schemas.crdt.agent` for the agent state built from them.
"""

from schemas.crdt.agent import SCHEMA, AgentCRDT, CRDTTypeMismatch, SettingsMap, UIMemory
from schemas.crdt.causal import AWORSet, Causal, CCounter, MVRegister, ORMap, causal_type
from schemas.crdt.codec import CodecError, decode, decode_bundle, encode, encode_bundle
from schemas.crdt.context import CausalContext, Dot
from schemas.crdt.counters import GCounter, PNCounter
from schemas.crdt.lww import LWWRegister

__all__ = [
    "SCHEMA", "AWORSet", "AgentCRDT", "CCounter", "CRDTTypeMismatch", "Causal",
    "CausalContext", "CodecError", "Dot", "GCounter", "LWWRegister", "MVRegister", "ORMap",
    "PNCounter", "SettingsMap", "UIMemory", "causal_type", "decode", "decode_bundle",
    "encode", "encode_bundle",
]
