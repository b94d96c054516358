"""Type stub of the native NFQUEUE backend."""

from collections.abc import Callable, Collection, Iterable
from typing import Literal

from ..core import AddressTable, Verdict

class NativeQueue:
    queue_num: int
    recv_calls: int
    enobufs: int
    receive_buffer: int
    setup_warnings: int
    def __init__(
        self,
        queue: int,
        table: AddressTable,
        on_drop: Callable[[Verdict, bytes, int, int], None] | None,
        *,
        fail_open: bool = ...,
        gso: bool = ...,
        copy_range: int = ...,
        max_length: int = ...,
        receive_buffer: int = ...,
    ) -> None: ...
    @property
    def packets(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def drops_not_kept(self) -> int: ...
    @property
    def verdict_messages(self) -> int: ...
    @property
    def verdict_errors(self) -> int: ...
    @property
    def gaps(self) -> int: ...
    @property
    def truncated(self) -> int: ...
    @property
    def single_verdicts(self) -> int: ...
    @property
    def resent_drops(self) -> int: ...
    def serve_once(self, timeout: float, wakeup_fd: int) -> bool: ...
    def close(self) -> None: ...

def _plan_for_test(
    rounds: Iterable[Iterable[tuple[int, int]]], failures: Collection[int]
) -> list[tuple[Literal["batch", "single"], int, int, bool]]: ...
