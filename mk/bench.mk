# Benchmark tables in the docs: rendered from the committed docs/bench/*.json (bench/tables.py),
# so `make generate` re-renders them without running a benchmark and `make check-generated`
# fails when a table was edited by hand or its JSON changed alone.
.PHONY: bench-docs generate-bench-tables

generate: generate-bench-tables
GENERATED_DIRS += docs

generate-bench-tables: ## re-render the docs' benchmark tables from docs/bench/*.json
	$(PY) bench/tables.py

bench-docs: ## after `make bench`: copy its JSON into docs/bench/ and re-render the tables (commit both)
	$(PY) bench/tables.py --from-results bench/results
