"""Build the optional Cython extension; install the pure-Python package when it cannot build.

The extension is self-contained C (no OpenSSL headers needed). With no C compiler (or
``P2P_NO_EXTENSIONS=1`` at build time) the install still succeeds and ``p2p.ueps`` uses its
pure-Python implementation.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build extensions, but never fail the install because of them."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # no compiler, no Python headers, ...
            self._skip(e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            self._skip(e)

    @staticmethod
    def _skip(e):
        sys.stderr.write(
            f"p2p-ueps: building the Cython extension failed ({e}); "
            "installing the pure-Python implementation only\n"
        )


def extensions():
    if os.environ.get("P2P_NO_EXTENSIONS", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        sys.stderr.write("p2p-ueps: Cython not available; pure-Python implementation only\n")
        return []
    ext = Extension(
        "p2p.ueps._speedups",
        ["src/p2p/ueps/_speedups.pyx"],
        include_dirs=["src/p2p/ueps"],
        depends=[
            "src/p2p/ueps/_sha256.h",
            "src/p2p/ueps/_wsframe.pxi",
            "src/p2p/ueps/_msgopen.pxi",
        ],
        extra_compile_args=["-O3"] if os.name != "nt" else [],
    )
    try:
        return cythonize([ext], language_level=3, quiet=True)
    except Exception as e:
        sys.stderr.write(f"p2p-ueps: cythonize failed ({e}); pure-Python implementation only\n")
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
