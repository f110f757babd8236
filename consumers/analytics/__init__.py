"""Analytics over the ClickHouse tables: canned query SQL (one place, parameterized), filter
parsing, Grafana macro expansion and inline-SVG charts. Pure: no I/O here; callers run the SQL
through `consumers.clickhouse.query`."""
