# Two commands do everything on a fresh Debian 12 machine, as root:
#   make demo   - builds the project and runs the demo in its own network namespaces
#   make test   - builds the project and runs the whole test suite
.PHONY: setup demo test bench clean

setup:
	@scripts/bootstrap

demo: setup
	.venv/bin/python -m venetfilter.demo

test: setup
	.venv/bin/python -m pytest -q
	VENETFILTER_NO_EXTENSIONS=1 .venv/bin/python -m pytest -q tests/test_selector.py

bench: setup
	mkdir -p .benchmarks
	.venv/bin/python -m pytest -q bench --benchmark-only --benchmark-columns=median,iqr,ops --benchmark-sort=name --benchmark-json=.benchmarks/core.json
	.venv/bin/python bench/report.py .benchmarks/core.json

clean:
	rm -rf .venv build src/*.egg-info
	find src -name '*.so' -o -name '*.c' -path '*/venetfilter/*' | xargs -r rm -f
