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

    def extension(name: str, libraries: tuple[str, ...] = ()) -> Extension:
        source = "src/" + name.replace(".", "/") + ".pyx"
        return Extension(name, [source], libraries=list(libraries), define_macros=macros, extra_compile_args=cflags)

    nfqueue = ("netfilter_queue", "nfnetlink")
    modules = [
        extension("venetfilter.core._core"),
        # cimports netfilterqueue's _impl.pxd: netfilterqueue must be installed when this is built
        extension("venetfilter.worker._queue_flags", nfqueue),
        extension("venetfilter.worker._native", nfqueue),
    ]
    return cythonize(modules, compiler_directives=directives, include_path=["src"])


setup(ext_modules=[] if NO_EXTENSIONS else extensions())
