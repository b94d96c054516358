"""The tc layer: an eBPF filter on the node end of each container link (the next default mode).

Built without a compiler: `asm` assembles the program, `program` writes the per-link filter,
`btf` finds the sk_buff fields it reads in the kernel's BTF, `syscall` loads it and its counters
map with bpf(2), `attach` puts it on a link with pyroute2.
Measured in bench/README.md ("Below netfilter: tc filters"): 0.961-0.972x of no-rules delivery,
where the netdev chains reach 0.934-0.951x. Not wired into the modes yet.
"""
