"""Turn a pytest-benchmark JSON file of bench/test_bench_core.py into the ratios the README quotes.

    python bench/report.py .benchmarks/core.json
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    with open(path) as f:
        run = json.load(f)
    median = {b["name"]: b["stats"]["median"] * 1e9 for b in run["benchmarks"]}  # ns
    extra = {b["name"]: b["extra_info"] for b in run["benchmarks"]}
    print(f"# {run['machine_info']['cpu'].get('brand_raw', '?')}, {run['datetime'][:10]}, medians")
    print("\n| packet | cython ns | python ns | naive ns | naive/cython | python/cython | batch ns/pkt | naive/batch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for family in ("v4", "v6"):
        for path in ("accept", "drop"):
            key = f"{family}-{path}"
            c, p, n = (median[f"test_classify[{key}-{k}]"] for k in ("cython", "python", "naive"))
            batch = median[f"test_classify_batch[{key}-cython]"] / 1024
            print(f"| {family} {path} | {c:.0f} | {p:.0f} | {n:.0f} | {n / c:.1f}x | {p / c:.1f}x | {batch:.1f} | {n / batch:.0f}x |")
    print("\n| family | 10 addresses ns | 1M addresses ns | ratio |")
    print("|---|---:|---:|---:|")
    for family in ("v4", "v6"):
        small, big = median[f"test_table_size[{family}-10]"], median[f"test_table_size[{family}-1M]"]
        print(f"| {family} | {small:.0f} | {big:.0f} | {big / small:.2f}x |")
    spread = {k: v for k, v in median.items() if k.startswith("test_table_size_spread")}
    if spread:
        print("\n| family | 10 addresses ns/pkt (1,024 sources) | 1M addresses ns/pkt | ratio |")
        print("|---|---:|---:|---:|")
        for family in ("v4", "v6"):
            small = spread[f"test_table_size_spread[{family}-10]"] / 1024
            big = spread[f"test_table_size_spread[{family}-1M]"] / 1024
            print(f"| {family} | {small:.1f} | {big:.1f} | {big / small:.2f}x |")
    memory = extra.get("test_table_memory_and_build_time", {})
    if memory:
        print(f"\n1,000,000 addresses: {memory['bytes_per_address']:.1f} bytes per address (RSS delta), "
              f"built in {memory['build_seconds']:.2f} s")
    reloads = {n: median[f"test_reload[{n}-links]"] / 1e6 for n in (10, 300) if f"test_reload[{n}-links]" in median}
    if reloads:
        print("\nDefault mode, one reload (the netdev table installed again): "
              + ", ".join(f"{n} links {ms:.0f} ms" for n, ms in reloads.items()))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".benchmarks/core.json")
