"""Build the Cython extensions; everything else lives in pyproject.toml.

VENETFILTER_NO_EXTENSIONS=1 skips them (the pure-Python twin is used);
VENETFILTER_DEBUG_BUILD=1 builds with assertions, bounds checks and line tracing.
"""

import os

from setuptools import Extension, setup

NO_EXTENSIONS = bool(os.environ.get("VENETFILTER_NO_EXTENSIONS"))
DEBUG = bool(os.environ.get("VENETFILTER_DEBUG_BUILD"))


def extensions() -> list[Extension]:
    from Cython.Build import cythonize

    directives = {
        "language_level": 3,
        "embedsignature": True,
        "boundscheck": DEBUG,
        "wraparound": False,
        "initializedcheck": DEBUG,
        "cdivision": True,
        "linetrace": DEBUG,
    }
    macros = [("CYTHON_TRACE_NOGIL", "1")] if DEBUG else []
    cflags = ["-O0", "-g"] if DEBUG else ["-O2"]
    modules = [
        Extension(
            "venetfilter.core._core",
            ["src/venetfilter/core/_core.pyx"],
            define_macros=macros,
            extra_compile_args=cflags,
        ),
        # cimports netfilterqueue's _impl.pxd: netfilterqueue must be installed when this is built
        Extension(
            "venetfilter.worker._queue_flags",
            ["src/venetfilter/worker/_queue_flags.pyx"],
            libraries=["netfilter_queue", "nfnetlink"],
            define_macros=macros,
            extra_compile_args=cflags,
        ),
        Extension(
            "venetfilter.worker._native",
            ["src/venetfilter/worker/_native.pyx"],
            libraries=["netfilter_queue", "nfnetlink"],
            define_macros=macros,
            extra_compile_args=cflags,
        ),
    ]
    return cythonize(modules, compiler_directives=directives, include_path=["src"])


setup(ext_modules=[] if NO_EXTENSIONS else extensions())
