"""The cluster rendering of the migrations: one source (`infra/clickhouse/NNN_name.sql`), two
renderings.

The single-node rendering is the files' statements as they are (what chdb and a single server
run). The cluster rendering turns each statement into what a ClickHouse cluster with shards,
replicas and Keeper needs, keeping every name readers use:

- `CREATE TABLE t (...) ENGINE = XMergeTree(args)` becomes the shard-local table `t_local`
  with `ReplicatedXMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}',
  args)` (the `{shard}`/`{replica}` macros are each server's own, see
  `infra/clickhouse/cluster/`), and `t` itself becomes a `Distributed` table over the
  `t_local` of every shard, sharded by `cityHash64(agent_id)` (`rand()` for tables without
  an agent: the rollups, whose states merge on read). Every copy of an event (same event id,
  same agent) lands on one shard, so ReplacingMergeTree still collapses it there and `FINAL`
  (`final=1`), which a Distributed table forwards to the shards, stays exact.
- A view reads the local tables on each shard (`v_local`) and `v` is a Distributed table over
  it: data is sharded by agent, so an agent's plans, actions and outcomes meet on one shard.
- A materialized view fires on each shard's inserts into the local source and writes into the
  local target (`TO t_local`), which replicates like any other insert.
- `ALTER TABLE t` alters `t_local` and the Distributed `t`.
- Every DDL runs `ON CLUSTER`; an `INSERT ... SELECT` (a backfill) is not DDL: it runs once,
  through the Distributed tables.
- `schema_migrations` is replicated to every server of the cluster (one Keeper path without
  `{shard}`), with no Distributed peer: every server knows what was applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: the statements of one migration as they run on one node
Statements = list[str]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_CREATE_TABLE = re.compile(
    rf"^CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?({_IDENT})(?:\s+ON\s+CLUSTER\s+\S+)?\s*\(", re.I)
_CREATE_VIEW = re.compile(
    rf"^CREATE\s+(?:(?P<replace>OR\s+REPLACE)\s+)?(MATERIALIZED\s+)?VIEW\s+"
    rf"(IF\s+NOT\s+EXISTS\s+)?({_IDENT})\s+", re.I)
_ALTER = re.compile(rf"^ALTER\s+TABLE\s+({_IDENT})\s+", re.I)
_INSERT = re.compile(rf"^INSERT\s+INTO\s+{_IDENT}\s", re.I)
_ENGINE = re.compile(rf"\bENGINE\s*=\s*({_IDENT})", re.I)
#: a table named after FROM / JOIN (not ARRAY JOIN) / TO in a view's query or target
_REFERENCE = re.compile(rf"(?<!ARRAY\s)\b(FROM|JOIN|TO)(\s+)({_IDENT})\b", re.I)
_AGENT_COLUMN = re.compile(r"^\s*agent_id\s", re.M)


@dataclass(frozen=True)
class ClusterLayout:
    """Names the cluster rendering uses; the macros are each server's own (`<macros>`)."""

    cluster: str = "clawstream"
    local_suffix: str = "_local"
    keeper_path: str = "/clickhouse/tables/{shard}/{database}/{table}"
    replica: str = "{replica}"
    #: schema_migrations: one Keeper path for the whole cluster (every server holds it all)
    bookkeeping_path: str = "/clickhouse/tables/all/{database}/{table}"
    sharding_key: str = "cityHash64(agent_id)"

    def local(self, name: str) -> str:
        return f"{name}{self.local_suffix}"

    @property
    def on_cluster(self) -> str:
        return f"ON CLUSTER {self.cluster}"


def balanced(text: str, open_at: int) -> int:
    """The index of the parenthesis closing the one at `open_at` (quotes respected)."""
    depth, quote, i = 0, "", open_at
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced parentheses in: {text[:120]}")


def columns_of(create_table: str) -> str:
    """The column (and index) definitions of a `CREATE TABLE name (...)` statement."""
    m = _CREATE_TABLE.match(create_table)
    if m is None:
        raise ValueError(f"not a CREATE TABLE with columns: {create_table[:120]}")
    start = m.end() - 1
    return create_table[start + 1:balanced(create_table, start)].strip()


def replicated_engine(statement: str, path: str, replica: str) -> str:
    """`statement` with its `XMergeTree(args)` engine made `ReplicatedXMergeTree(path,
    replica, args)`; any other engine is refused (it has no replicated form)."""
    m = _ENGINE.search(statement)
    if m is None:
        raise ValueError(f"no ENGINE clause in: {statement[:120]}")
    engine = m.group(1)
    if not engine.endswith("MergeTree") or engine.startswith("Replicated"):
        raise ValueError(f"no replicated form for engine {engine}")
    args: list[str] = [f"'{path}'", f"'{replica}'"]
    end = m.end()
    rest = statement[end:]
    if rest.lstrip().startswith("("):
        open_at = end + len(rest) - len(rest.lstrip())
        close = balanced(statement, open_at)
        inner = statement[open_at + 1:close].strip()
        if inner:
            args.append(inner)
        end = close + 1
    return f"{statement[:m.start()]}ENGINE = Replicated{engine}({', '.join(args)}){statement[end:]}"


class ClusterRendering:
    """Renders migration statements for a cluster (`render`), knowing every table and view
    the migrations define (a later ALTER or view refers to an earlier file's table)."""

    def __init__(self, all_statements: Iterable[str], layout: ClusterLayout | None = None,
                 bookkeeping: Iterable[str] = ("schema_migrations",)) -> None:
        self.layout = layout or ClusterLayout()
        self.bookkeeping = frozenset(bookkeeping)
        self.relations: set[str] = set()
        for stmt in all_statements:
            m = _CREATE_TABLE.match(stmt)
            v = _CREATE_VIEW.match(stmt)
            if m is not None:
                self.relations.add(m.group(2))
            elif v is not None and not v.group(2):  # plain views are read like tables
                self.relations.add(v.group(4))

    def render(self, statement: str) -> Statements:
        """The cluster statements for one single-node statement (in order)."""
        if (m := _CREATE_TABLE.match(statement)) is not None:
            return self._table(statement, m)
        if (v := _CREATE_VIEW.match(statement)) is not None:
            return self._view(statement, v)
        if (a := _ALTER.match(statement)) is not None:
            name, lay = a.group(1), self.layout
            rest = statement[a.end():]
            return [f"ALTER TABLE {lay.local(name)} {lay.on_cluster} {rest}",
                    f"ALTER TABLE {name} {lay.on_cluster} {rest}"]
        if _INSERT.match(statement):
            return [statement]  # once, through the Distributed tables
        raise ValueError(f"no cluster rendering for: {statement[:120]}")

    def _table(self, statement: str, m: re.Match[str]) -> Statements:
        lay, name = self.layout, m.group(2)
        if_not_exists = m.group(1) or ""
        body = statement[m.end() - 1:]
        if name in self.bookkeeping:
            head = f"CREATE TABLE {if_not_exists}{name} {lay.on_cluster} "
            return [replicated_engine(head + body, lay.bookkeeping_path, lay.replica)]
        local = lay.local(name)
        head = f"CREATE TABLE {if_not_exists}{local} {lay.on_cluster} "
        key = lay.sharding_key if _AGENT_COLUMN.search(columns_of(statement)) else "rand()"
        return [
            replicated_engine(head + body, lay.keeper_path, lay.replica),
            f"CREATE TABLE {if_not_exists}{name} {lay.on_cluster} AS {local} ENGINE = "
            f"Distributed('{lay.cluster}', currentDatabase(), '{local}', {key})",
        ]

    def _view(self, statement: str, v: re.Match[str]) -> Statements:
        lay, name = self.layout, v.group(4)
        materialized, if_not_exists = v.group(2) or "", v.group(3) or ""
        # a replaced view's Distributed peer is replaced too: its columns follow the view's
        create = "CREATE OR REPLACE" if v.group("replace") else "CREATE"
        body = self._local_references(statement[v.end():])
        if materialized:  # no storage of its own: the TO table has it
            return [f"{create} MATERIALIZED VIEW {if_not_exists}{name} {lay.on_cluster} {body}"]
        local = lay.local(name)
        return [
            f"{create} VIEW {if_not_exists}{local} {lay.on_cluster} {body}",
            f"{create} TABLE {if_not_exists}{name} {lay.on_cluster} AS {local} ENGINE = "
            f"Distributed('{lay.cluster}', currentDatabase(), '{local}')",
        ]

    def _local_references(self, sql: str) -> str:
        """`sql` reading (and writing) the shard-local tables of the migrations' relations."""

        def local(m: re.Match[str]) -> str:
            name = m.group(3)
            return m.group(0) if name not in self.relations else (
                f"{m.group(1)}{m.group(2)}{self.layout.local(name)}")

        return _REFERENCE.sub(local, sql)
