#!/usr/bin/env bash
# Run a command with a Kafka broker available: reuse one that answers at
# CLAWSTREAM_BOOTSTRAP_SERVERS (default 127.0.0.1:9092), else start the local one with
# `clawstream up` and stop it afterwards (also when the command fails or is interrupted).
# Exits with the command's own status.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CS="$ROOT/.venv/bin/clawstream"
started=0

cleanup() {
  if [[ $started == 1 ]]; then
    started=0
    "$CS" down || echo "with_broker: could not stop the broker it started" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! "$CS" status --no-lag >/dev/null 2>&1; then
  "$CS" up || exit 1
  started=1
fi

rc=0
"$@" || rc=$?
exit $rc
