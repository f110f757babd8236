"""Property-based tests of the pure CRDTs (hypothesis, 1,000 generated cases per type).

Each case runs a random program on three replicas (mutations and state merges), checking at
every mutation that joining the returned delta into the old state gives the mutated state.
Then, over the pool of states and deltas it produced, it checks that join is commutative,
associative and idempotent, that the Avro form round-trips (canonically), and that joining
every delta in a shuffled, duplicated order gives the state the replicas converge to.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.crdt import (
    AWORSet,
    CCounter,
    GCounter,
    LWWRegister,
    MVRegister,
    ORMap,
    PNCounter,
    decode,
    encode,
)
from schemas.crdt.codec import slow_encode

REPLICAS = ("ra", "rb", "rc")
ELEMS = st.sampled_from(["x", "y", "z"])
KEYS = st.sampled_from(["p", "q"])
VALUES = st.one_of(st.none(), st.sampled_from(["v1", "v2", "v3"]))
SMALL_TS = st.integers(0, 4)  # small clocks force same-millisecond ties

# An op is (name, args); apply_op runs it on a state for a replica and returns the delta.
Op = tuple[str, tuple[Any, ...]]


def orset_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.tuples(st.just("add"), st.tuples(ELEMS)),
        st.tuples(st.just("add"), st.tuples(ELEMS)),
        st.tuples(st.just("remove"), st.tuples(ELEMS)),
        st.tuples(st.just("clear"), st.just(())),
    )


def mvreg_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.tuples(st.just("set"), st.tuples(VALUES, SMALL_TS)),
        st.tuples(st.just("clear"), st.just(())),
    )


def ccounter_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.tuples(st.just("inc"), st.tuples(st.integers(-3, 3))),
        st.tuples(st.just("clear"), st.just(())),
    )


def map_ops(inner: st.SearchStrategy[Op]) -> st.SearchStrategy[Op]:
    return st.one_of(
        st.tuples(st.just("apply"), st.tuples(KEYS, inner)),
        st.tuples(st.just("apply"), st.tuples(KEYS, inner)),
        st.tuples(st.just("remove"), st.tuples(KEYS)),
    )


def apply_op(state: Any, replica: str, op: Op) -> Any:
    name, args = op
    if name == "apply":
        key, inner = args
        return state.apply(key, lambda sub: apply_op(sub, replica, inner))
    if name in ("remove", "clear"):
        return getattr(state, name)(*args)
    if name == "set":
        value, ts = args
        return state.set(replica, value, ts=ts)
    return getattr(state, name)(replica, *args)


TYPES: dict[str, tuple[Callable[[], Any], st.SearchStrategy[Op]]] = {
    "gcounter": (GCounter, st.tuples(st.just("inc"), st.tuples(st.integers(0, 5)))),
    "pncounter": (PNCounter, st.tuples(st.just("inc"), st.tuples(st.integers(-5, 5)))),
    "lww": (LWWRegister, st.tuples(st.just("set"), st.tuples(VALUES, SMALL_TS))),
    "orset": (AWORSet, orset_ops()),
    "mvreg": (MVRegister, mvreg_ops()),
    "ccounter": (CCounter, ccounter_ops()),
    "map<orset>": (ORMap.of(AWORSet), map_ops(orset_ops())),
    "map<mvreg>": (ORMap.of(MVRegister), map_ops(mvreg_ops())),
    "map<ccounter>": (ORMap.of(CCounter), map_ops(ccounter_ops())),
    "map<map<orset>>": (ORMap.of(ORMap.of(AWORSet)), map_ops(map_ops(orset_ops()))),
}


def programs(ops: st.SearchStrategy[Op]) -> st.SearchStrategy[list[tuple[int, Any]]]:
    """Steps: (replica index, op) or (replica index, ("merge", other index))."""
    step = st.one_of(
        st.tuples(st.integers(0, 2), ops),
        st.tuples(st.integers(0, 2), st.tuples(st.just("merge"), st.integers(0, 2))),
    )
    return st.lists(step, min_size=1, max_size=14)


def run(factory: Callable[[], Any], program: list[tuple[int, Any]]) -> tuple[list[Any], list[Any]]:
    """Run a program; assert delta-join == mutation at each step; return (replicas, deltas)."""
    states = [factory() for _ in REPLICAS]
    deltas: list[Any] = []
    for i, op in program:
        if op[0] == "merge":
            states[i].merge(states[op[1]])
            continue
        before = states[i].copy()
        delta = apply_op(states[i], REPLICAS[i], op)
        assert before.join(delta) == states[i], f"delta join != mutation for {op}"
        # a delta is small: it never carries more than the state it came from
        assert encode(delta) is not None and len(encode(delta)) <= len(encode(states[i])) + 64
        deltas.append(delta)
    return states, deltas


@pytest.mark.parametrize("type_name", list(TYPES))
def test_crdt_laws(type_name: str) -> None:
    factory, ops = TYPES[type_name]

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(program=programs(ops), picks=st.tuples(*[st.integers(0, 10_000)] * 3),
           seed=st.integers(0, 2**32 - 1))
    def laws(program: list[tuple[int, Any]], picks: tuple[int, int, int], seed: int) -> None:
        states, deltas = run(factory, program)
        pool = [*states, *deltas, factory()]
        a, b, c = (pool[p % len(pool)] for p in picks)
        # commutative, associative, idempotent
        assert a.join(b) == b.join(a)
        assert a.join(b).join(c) == a.join(b.join(c))
        assert a.join(a) == a
        assert a.join(b).join(b) == a.join(b)
        # merge reports change exactly when the state changed
        m = a.copy()
        assert m.merge(b) == (a.join(b) != a)
        # Avro round trip, canonical bytes
        for x in (a, b, a.join(b)):
            data = encode(x)
            assert data == slow_encode(x)  # direct writer == fastavro with the schema
            back = decode(x.CRDT_TYPE, data)
            assert back == x
            assert encode(back) == data
        # all deltas, shuffled and duplicated, give the state replicas converge to
        converged = factory()
        for s in states:
            converged.merge(s)
        shuffled = deltas * 2
        random.Random(seed).shuffle(shuffled)
        from_deltas = factory()
        for d in shuffled:
            from_deltas.merge(d)
        assert from_deltas == converged
        # ... and the replicas converge whatever order they exchange states in
        order = list(range(len(states)))
        random.Random(seed + 1).shuffle(order)
        other = factory()
        for i in order:
            other = other.join(states[i])
        assert other == converged
        assert other.value == converged.value

    laws()
