"""Which implementation `venetfilter` picks, and that the pure-Python one is complete on its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def implementation(env_value: str | None, block_extension: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if k != "VENETFILTER_NO_EXTENSIONS"}
    if env_value is not None:
        env["VENETFILTER_NO_EXTENSIONS"] = env_value
    code = "import sys\n"
    if block_extension:  # as if the extension had not been built
        code += "sys.modules['venetfilter.core._core'] = None\n"
    code += "import venetfilter; print(venetfilter.IMPLEMENTATION, venetfilter.AddressTable.__module__)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_cython_by_default():
    assert implementation(None) == "cython venetfilter.core._core"


@pytest.mark.parametrize("value", ["1", "yes"])
def test_no_extensions_selects_python(value):
    assert implementation(value) == "python venetfilter.core._core_py"


def test_import_failure_selects_python():
    assert implementation(None, block_extension=True) == "python venetfilter.core._core_py"


def test_active_implementation_matches_environment():
    import venetfilter

    expected = "python" if os.environ.get("VENETFILTER_NO_EXTENSIONS") else "cython"
    assert venetfilter.IMPLEMENTATION == expected
