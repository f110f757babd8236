#!/usr/bin/env bash
# Set up this checkout on a fresh Debian machine, idempotently and quietly:
#   1. system packages (apt-get, only when something is missing; `apt-get update` at most once)
#   2. the Python virtual environment .venv with `pip install -e '.[dev]'`
#      (re-run when pyproject.toml changes, tracked by a stamp file)
#   3. the Apache Kafka broker jars from Maven Central (once, into the ignored cache)
#   4. the local schema registry (Apicurio Registry, Quarkus build from Maven Central; once)
# Prints nothing when everything is in place, one line per step that did something, and the
# tail of the log when a step fails. Details go to .run/bootstrap.log.
#
# Environment: PYTHON (interpreter for the venv, default python3), CLAWSTREAM_SKIP_APT=1 to
# never call apt-get (then missing packages are only reported).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mkdir -p .run
LOG="$ROOT/.run/bootstrap.log"
VENV="$ROOT/.venv"
STAMP="$VENV/.clawstream-install.stamp"
PYTHON="${PYTHON:-python3}"

say() { echo "bootstrap: $*"; }
log() { echo "[$(date '+%F %T')] $*" >>"$LOG"; }
fail() {
  say "FAILED: $* (log: $LOG)" >&2
  tail -n 25 "$LOG" >&2 || true
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# --- 1. system packages ---------------------------------------------------------------------
missing=()
java_ok() {
  have java || return 1
  local v
  v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  [[ -n "$v" && "$v" -ge 17 ]]
}
java_ok || missing+=(default-jre-headless)
have mvn || missing+=(maven)
have tesseract || missing+=(tesseract-ocr)
have Xvfb || missing+=(xvfb)
have scrot || missing+=(scrot)
have xauth || missing+=(xauth)
have prometheus || missing+=(prometheus)
have prometheus-alertmanager || missing+=(prometheus-alertmanager)
have kcat || missing+=(kcat)
have chromium || missing+=(chromium)  # the report test, the browser corpus and agent test
have caddy || missing+=(caddy)  # the compose test validates the ingest proxy's Caddyfile
# font families of the perception corpus (corpus/tk_screens.py, corpus/html_screens.py)
for pkg in fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-urw-base35 \
           fonts-freefont-ttf fonts-crosextra-carlito fonts-open-sans fonts-cantarell; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# Tk for the GUI tests: the venv's interpreter, or Debian's python3 as a fallback runner
if ! "$PYTHON" -c 'import tkinter' >/dev/null 2>&1 \
   && ! /usr/bin/python3 -c 'import tkinter' >/dev/null 2>&1; then
  missing+=(python3-tk)
fi
if [[ ! -x "$VENV/bin/python" ]] && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi

if ((${#missing[@]})); then
  if [[ "${CLAWSTREAM_SKIP_APT:-0}" == 1 ]] || ! have apt-get; then
    say "missing system packages (install them yourself): ${missing[*]}" >&2
  else
    SUDO=()
    if [[ "$(id -u)" != 0 ]]; then
      have sudo || fail "need root or sudo to apt-get install ${missing[*]}"
      SUDO=(sudo)
    fi
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q >>"$LOG" 2>&1 || fail "apt-get update"
    "${SUDO[@]}" apt-get install -y -q "${missing[@]}" >>"$LOG" 2>&1 \
      || fail "apt-get install ${missing[*]}"
    say "installed system packages: ${missing[*]}"
  fi
fi
java_ok || fail "Java 17+ is required for the Kafka broker (apt-get install default-jre-headless)"
have mvn || fail "Maven is required to fetch the Kafka broker (apt-get install maven)"

# --- 2. Python virtual environment ------------------------------------------------------------
want="$(cat pyproject.toml setup.py producers/_accel.pyx schemas/_avro.pyx schemas/_avro.pxd 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || fail "$PYTHON is older than Python 3.11 (set PYTHON=/path/to/python3.11)"
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV" >>"$LOG" 2>&1 || fail "creating the virtual environment"
  fi
  log "pip install -e .[dev]"
  "$VENV/bin/python" -m pip install -q --upgrade pip >>"$LOG" 2>&1 || fail "upgrading pip"
  "$VENV/bin/python" -m pip install -q -e '.[dev]' >>"$LOG" 2>&1 || fail "pip install -e '.[dev]'"
  echo "$want" >"$STAMP"
  say "python environment ready: $VENV"
fi

# Runs the Python on stdin in the venv; says what it printed, fails with $1 if it fails.
venv_step() {
  local out
  out="$("$VENV/bin/python" - 2>>"$LOG")" || fail "$1"
  [[ -z "$out" ]] || say "$out"
}

# --- 3. Kafka broker jars ---------------------------------------------------------------------
venv_step "fetching the Kafka jars with Maven" <<'EOF'
from clawstream.broker import fetch_kafka, jars_ready
from clawstream.settings import get_settings

s = get_settings()
if not jars_ready(s):
    print(f"Kafka {s.kafka_version} jars fetched with Maven: {fetch_kafka(s)}")
EOF

# --- 4. schema registry (Apicurio Registry, Confluent-compatible REST API) -------------------
venv_step "building the schema registry with Maven" <<'EOF'
from clawstream.schema_registry import build_registry, registry_built
from clawstream.settings import get_settings

s = get_settings()
if not registry_built(s):
    print(f"schema registry built with Maven: {build_registry(s)}")
EOF
exit 0
