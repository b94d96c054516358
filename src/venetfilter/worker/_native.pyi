"""Type stub of the native NFQUEUE backend."""

from collections.abc import Callable

from ..core import AddressTable, Verdict

class NativeQueue:
    queue_num: int
    recv_calls: int
    verdict_messages: int
    verdict_errors: int
    truncated: int
    enobufs: int
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
    def gaps(self) -> int: ...
    @property
    def drops_not_kept(self) -> int: ...
    def serve_once(self, timeout: float, wakeup_fd: int) -> bool: ...
    def close(self) -> None: ...
