"""Type stub of the queue-flags helper."""

from netfilterqueue import NetfilterQueue

def set_queue_flags(queue: NetfilterQueue, fail_open: bool, gso: bool) -> None: ...
