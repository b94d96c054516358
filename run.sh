#!/usr/bin/env bash
# venetfilter's one entry point, as root on Debian 12. Each command first does all the set-up itself
# (Debian packages, the virtual environment in .venv, the build: scripts/bootstrap), then:
#   ./run.sh demo    the whole stack on namespaces of its own, then removes them
#   ./run.sh test    the test suite
#   ./run.sh bench   the microbenchmarks of the per-packet path, with the ratios the README quotes
set -euo pipefail
cd "$(dirname "$0")"
command=${1:-}
shift || true
scripts/bootstrap
case "$command" in
    demo)
        exec .venv/bin/python -m venetfilter.demo "$@"
        ;;
    test)
        .venv/bin/python -m pytest -q --durations=10 "$@"
        # the selector, with the C extension switched off by the environment
        VENETFILTER_NO_EXTENSIONS=1 .venv/bin/python -m pytest -q tests/test_selector.py
        ;;
    bench)
        mkdir -p .benchmarks
        .venv/bin/python -m pytest -q bench --benchmark-only --benchmark-columns=median,iqr,ops \
            --benchmark-sort=name --benchmark-json=.benchmarks/core.json "$@"
        .venv/bin/python bench/report.py .benchmarks/core.json
        ;;
    *)
        echo "usage: $0 demo|test|bench [pytest arguments]" >&2
        exit 2
        ;;
esac
