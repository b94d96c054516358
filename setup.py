"""Build the Cython extensions; everything else lives in pyproject.toml.

VENETFILTER_NO_EXTENSIONS=1 skips them (the pure-Python twin is used);
VENETFILTER_DEBUG_BUILD=1 builds with assertions, bounds checks and line tracing.

Cython runs in ``build_ext`` only, after a probe that the C compiler, the Python headers and the
libnetfilter_queue headers are there: an sdist needs none of them, and a machine that lacks them
gets one message naming the Debian packages instead of a compiler error deep in Cython's output.
"""

import os
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, ExecError, PlatformError, SetupError

NO_EXTENSIONS = bool(os.environ.get("VENETFILTER_NO_EXTENSIONS"))
DEBUG = bool(os.environ.get("VENETFILTER_DEBUG_BUILD"))

DEBIAN_BUILD_DEPS = "build-essential python3-dev libnetfilter-queue-dev libmnl-dev libnfnetlink-dev"

# what each probe needs, the Debian package that has it, and the C it compiles
PROBES = [
    ("a working C compiler", "build-essential", "int main(void) { return 0; }\n"),
    ("the Python headers (Python.h)", "python3-dev", "#include <Python.h>\n"),
    (
        "the libnetfilter_queue headers",
        "libnetfilter-queue-dev libmnl-dev libnfnetlink-dev",
        "#include <libnetfilter_queue/libnetfilter_queue.h>\n"
        "#include <libnetfilter_queue/linux_nfnetlink_queue.h>\n"
        "#include <libnfnetlink/libnfnetlink.h>\n",
    ),
]


def extensions() -> list[Extension]:
    """The extensions, from their .pyx sources (cythonized by `BuildExt`)."""
    macros = [("CYTHON_TRACE_NOGIL", "1")] if DEBUG else []
    cflags = ["-O0", "-g"] if DEBUG else ["-O2"]

    def extension(name: str, libraries: tuple[str, ...] = ()) -> Extension:
        source = "src/" + name.replace(".", "/") + ".pyx"
        return Extension(name, [source], libraries=list(libraries), define_macros=macros, extra_compile_args=cflags)

    nfqueue = ("netfilter_queue", "nfnetlink")
    return [
        extension("venetfilter.core._core"),
        # cimports netfilterqueue's _impl.pxd: netfilterqueue must be installed when this is built
        extension("venetfilter.worker._queue_flags", nfqueue),
        extension("venetfilter.worker._native", nfqueue),
    ]


class BuildExt(build_ext):
    """``build_ext`` that probes for what the build needs, then cythonizes and compiles."""

    def build_extensions(self) -> None:
        # here the compiler is set up (and the Python include directory is in self.include_dirs)
        self.probe()
        # the .pyx sources become the generated .c (the Extension objects stay the ones set up)
        for extension, cythonized in zip(self.extensions, self.cythonized(self.extensions)):
            extension.sources = cythonized.sources
        super().build_extensions()

    @staticmethod
    def cythonized(modules: list[Extension]) -> list[Extension]:
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
        return cythonize(modules, compiler_directives=directives, include_path=["src"])

    def probe(self) -> None:
        """Compile a few lines for each of `PROBES`; a clear error naming the packages if one fails."""
        with tempfile.TemporaryDirectory(prefix="venetfilter-probe-") as tmp:
            for index, (what, packages, code) in enumerate(PROBES):
                source = os.path.join(tmp, f"probe{index}.c")
                with open(source, "w") as f:
                    f.write(code)
                try:
                    self.compiler.compile([source], output_dir=tmp, include_dirs=self.include_dirs)
                except (CompileError, ExecError, PlatformError, OSError) as exc:
                    raise SetupError(
                        f"venetfilter: cannot build its C extensions: {what} not found ({exc}). "
                        f"On Debian or Ubuntu, as root: apt-get install {packages} "
                        f"(everything the build needs: apt-get install {DEBIAN_BUILD_DEPS}). "
                        "VENETFILTER_NO_EXTENSIONS=1 builds without them (pure-Python core, no native worker)."
                    ) from None


setup(ext_modules=[] if NO_EXTENSIONS else extensions(), cmdclass={"build_ext": BuildExt})
