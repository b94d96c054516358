"""Hooks that plug venetfilter into container runtimes: OCI hooks (podman, CRI-O) and LXC hooks.

Each hook maps the runtime's event (the container's network namespace exists / the container is
gone) to `venetfilter.lifecycle.Node.start` / `Node.stop`, with the CTID from the runtime's own
metadata. They know nothing of packets or rules; the CLI (``venetctl hook ...``) is a thin layer.
"""
