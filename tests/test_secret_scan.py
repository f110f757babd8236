"""Secrets never leak: every secret setting is typed as one (masked in repr, str, dumps and
`clawstream settings`), and no committed file holds a password, a token or a private key
(the compose file takes every password from the `.env` that `clawstream credentials
compose-env` writes, which is ignored by git). The logs of a run on the secured broker are
scanned by tests/test_security.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from clawstream.settings import Settings
from producers.settings import SdkSettings

ROOT = Path(__file__).resolve().parent.parent
SECRET = "Xq7-not-a-real-password-0451"


def test_every_secret_looking_setting_is_a_secret() -> None:
    for model in (SdkSettings, Settings):
        for name, field in model.model_fields.items():
            if re.search(r"password|secret|token|_key$", name):
                # a secret itself is a SecretStr; a setting naming the file that holds one
                # (a TLS key) is a path, never the key's text
                assert "SecretStr" in str(field.annotation) or "Path" in str(
                    field.annotation), f"{model.__name__}.{name}"


def test_secrets_are_masked_in_repr_dumps_and_the_settings_command(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLAWSTREAM_")},
           "CLAWSTREAM_KAFKA_SASL_PASSWORD": SECRET, "CLAWSTREAM_CLICKHOUSE_PASSWORD": SECRET,
           "CLAWSTREAM_DATA_DIR": str(tmp_path), "COLUMNS": "400"}
    s = Settings(kafka_sasl_password=SECRET, clickhouse_password=SECRET, _env_file=None)
    assert isinstance(s.kafka_sasl_password, SecretStr)
    for shown in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert SECRET not in shown
    out = subprocess.run([sys.executable, "-m", "clawstream.cli", "settings"], env=env,
                         capture_output=True, text=True, timeout=60, check=True,
                         cwd=tmp_path)
    assert "CLAWSTREAM_KAFKA_SASL_PASSWORD" in out.stdout and "**" in out.stdout
    assert SECRET not in out.stdout + out.stderr


def _committed() -> list[Path]:
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                               check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / n for n in names if n and (ROOT / n).is_file()]


#: a password, secret or token given a literal value (not a ${VAR}, not a field of code)
_ASSIGNED = re.compile(
    r"""(?ix)(password|passwd|secret|token|sasl\.jaas\.config)["']?\s*[:=]\s*["']?
        (?!\$\{|\$[A-Z_]+|\s|["']?\s*$|None|null|SecretStr|Field|getattr|os\.|self\.|cred|settings)
        [^\s"',}]{6,}""")


def test_no_committed_file_holds_a_password_token_or_private_key() -> None:
    files = _committed()
    assert not any(p.name == ".env" for p in files), "the .env with the passwords is committed"
    found = []
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        if "PRIVATE KEY-----" in text and "-----BEGIN" in text and path.suffix != ".py":
            found.append(f"{path}: a private key")
        if path.suffix in {".yml", ".yaml", ".properties", ".env", ".ini", ".toml", ".json",
                           ".cfg", ".conf", ".xml"}:
            found += [f"{path}: {m.group(0)}" for m in _ASSIGNED.finditer(text)]
    assert found == []


def test_the_scan_finds_a_literal_password_and_passes_a_variable() -> None:
    for leak in ("password: clawstream", "GF_SECURITY_ADMIN_PASSWORD: clawstream",
                 '"sasl.password": "abcdefgh12"', 'token = "abcdef123456"'):
        assert _ASSIGNED.search(leak), leak
    for fine in ("password: ${CH_PASSWORD}", "password: $CLICKHOUSE_PASSWORD"):
        assert not _ASSIGNED.search(fine), fine
