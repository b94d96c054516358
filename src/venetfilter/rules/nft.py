"""libnftables, the library behind the ``nft`` command, called in-process through ctypes.

One call of `Nft.run` is one nftables transaction: it applies whole or not at all. No fork, no
parsing of ``nft``'s output: listings come back as JSON. Debian's libnftables1 (a dependency of
the ``nftables`` package) provides the library; its official Python binding is a thin ctypes
wrapper too, but it is not on PyPI, so this is the part of it we use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import threading
from typing import Any

from ..errors import NftError

__all__ = ["Nft", "NftError"]

_NFT_CTX_OUTPUT_JSON = 1 << 4
_LIBRARY = "libnftables.so.1"




class _Library:
    """The C functions, loaded once."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("nftables") or _LIBRARY)
        except OSError as exc:
            raise NftError(f"cannot load libnftables ({exc}): install Debian's nftables package") from None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib = lib


_loaded: _Library | None = None
_load_lock = threading.Lock()
_run_lock = threading.Lock()  # libnftables (and the libxtables it loads) keeps global state: one call at a time


def _library() -> Any:
    global _loaded
    with _load_lock:
        if _loaded is None:
            _loaded = _Library()
        return _loaded.lib


class Nft:
    """An nftables context in the calling thread's network namespace (its netlink socket is
    opened there, at the first command). Not thread-safe: one context per thread."""

    def __init__(self) -> None:
        self._lib = _library()
        with _run_lock:
            self._ctx = self._lib.nft_ctx_new(0)
        if not self._ctx:
            raise NftError("cannot create an nftables context")
        self._lib.nft_ctx_buffer_output(self._ctx)
        self._lib.nft_ctx_buffer_error(self._ctx)

    def close(self) -> None:
        if self._ctx:
            with _run_lock:
                self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> Nft:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, commands: str) -> str:
        """Run `commands` (nft syntax, several lines) as one transaction; returns nft's output."""
        return self._run(commands, json_output=False)

    def list_json(self, what: str) -> list[dict[str, Any]]:
        """``nft -j list WHAT``, as the list of objects under "nftables" (metainfo left out)."""
        text = self._run(f"list {what}", json_output=True) or '{"nftables": []}'
        try:
            document = json.loads(text)
        except ValueError:  # nft 1.0.6 writes '"flags": ' and nothing more for a dormant netdev table
            raise NftError(f"nft listed {what} as invalid JSON: {text[:200]!r}") from None
        return [item for item in document["nftables"] if "metainfo" not in item]

    def _run(self, commands: str, *, json_output: bool) -> str:
        if not self._ctx:
            raise NftError("the nftables context is closed")
        with _run_lock:
            self._lib.nft_ctx_output_set_flags(self._ctx, _NFT_CTX_OUTPUT_JSON if json_output else 0)
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, commands.encode())
            output = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode(errors="replace")
            errors = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode(errors="replace")
        if rc != 0:
            raise NftError(" ".join(errors.split()) or f"nft failed ({rc})")
        return output
