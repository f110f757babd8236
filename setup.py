"""Builds the optional compiled extensions: the Avro reader and writer (schemas/_avro.pyx)
and the SDK's hot path (producers/_accel.pyx). Everything else is declared in
pyproject.toml. If Cython or a C compiler is missing, or compilation fails, the install
still succeeds and the Python paths are used (generated encoders, fastavro's reader)."""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """A failed extension build is a warning, never an install failure."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            print(f"warning: optional extensions not built ({exc}); "
                  "using the Python paths", file=sys.stderr)

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"warning: optional extension {ext.name} not built ({exc})", file=sys.stderr)


#: (module, source): the Avro reader/writer, and the SDK's hot path (which cimports it).
EXTENSIONS = [
    ("schemas._avro", "schemas/_avro.pyx"),
    ("producers._accel", "producers/_accel.pyx"),
]


def extensions() -> list:
    if os.environ.get("CLAWSTREAM_NO_ACCEL_BUILD"):
        return []
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError:
        print("warning: Cython missing: optional extensions not built", file=sys.stderr)
        return []
    try:
        return cythonize(
            [Extension(name, [path], optional=True, extra_compile_args=["-O2"])
             for name, path in EXTENSIONS],
            compiler_directives={"language_level": "3"},
            quiet=True,
        )
    except Exception as exc:
        print(f"warning: cythonize failed ({exc}): optional extensions not built", file=sys.stderr)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
