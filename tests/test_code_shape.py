"""The shape of the code: a Python module over 400 lines says why in its module docstring.

A long module is usually several things that want to be split; when it truly is one thing
(a catalog of constants, tests sharing one expensive fixture), its docstring says so with the
marker `Over 400 lines on purpose:` followed by the reason. Fast: reads files, no broker.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: the project's Python packages and folders this rule covers
CHECKED = ("schemas", "producers", "streams", "consumers", "clawstream", "corpus", "bench",
           "tests", "infra", "scripts")

MAX_LINES = 400
MARKER = "Over 400 lines on purpose:"


def _modules() -> list[Path]:
    return sorted(p for d in CHECKED if (ROOT / d).is_dir() for p in (ROOT / d).rglob("*.py")
                  if "__pycache__" not in p.parts)


def long_modules_without_reason(paths: list[Path], root: Path = ROOT) -> list[str]:
    """`path (N lines)`, relative to `root`, of each module over MAX_LINES whose docstring
    lacks MARKER."""
    offenders = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text, filename=str(path))) or ""
        if MARKER not in doc:
            offenders.append(f"{path.relative_to(root)} ({lines} lines)")
    return offenders


def test_the_rule_covers_the_project() -> None:
    modules = _modules()
    assert any(p.parts[-2:] == ("schemas", "serde.py") for p in modules)
    assert any(p.name == "test_code_shape.py" for p in modules)


def test_modules_over_400_lines_say_why() -> None:
    offenders = long_modules_without_reason(_modules())
    assert not offenders, (
        f"modules over {MAX_LINES} lines without {MARKER!r} and a reason in their module "
        "docstring (split them, or say why each is one thing): " + ", ".join(offenders))


def test_the_check_names_an_offender(tmp_path: Path) -> None:
    long = tmp_path / "long.py"
    long.write_text('"""A long module."""\n' + "x = 1\n" * MAX_LINES)
    reasoned = tmp_path / "reasoned.py"
    reasoned.write_text(f'"""A catalog.\n\n{MARKER} constants only.\n"""\n'
                        + "x = 1\n" * MAX_LINES)
    short = tmp_path / "short.py"
    short.write_text("x = 1\n" * MAX_LINES)
    assert long_modules_without_reason([long, reasoned, short], tmp_path) == [
        f"long.py ({MAX_LINES + 1} lines)"]
