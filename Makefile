# Common targets. `make test` is the README's test command and what CI runs.
.PHONY: install test unit integration e2e install-tier lint typecheck crds crds-check demo bench images kind-up e2e-kind clean

VENV ?= .venv
BIN := $(VENV)/bin

install:            ## virtualenv + project + dev tools + Debian prometheus
	./scripts/bootstrap.sh

test:               ## lint, type-check and every test tier (what CI runs)
	./scripts/test.sh

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q tests/integration

e2e: install
	$(BIN)/pytest -q tests/e2e

install-tier: install  ## images built with podman/docker, the chart on the runtime's container backend
	$(BIN)/pytest -q tests/install

lint: install       ## ruff (lint and format), and the import contracts between the layers (pyproject [tool.importlinter])
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

crds: install       ## regenerate crds/ and charts/onnxops/crds/ from the pydantic models
	$(BIN)/onnxops gen-crds

crds-check: install
	$(BIN)/onnxops gen-crds --check

demo: install       ## the whole loop on the embedded local runtime
	$(BIN)/onnxops demo

bench: install       ## every benchmark with its default arguments (results: bench/results/*.md)
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

images:             ## build the three images (docker or podman)
	./scripts/build-images.sh

kind-up:            ## kind cluster + images + prometheus + helm install + examples
	./scripts/kind-up.sh

e2e-kind:           ## the demo's scenario on the kind cluster of `make kind-up`
	ONNXOPS_E2E_KIND=1 $(BIN)/pytest -q -m kind tests/e2e

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .onnxops
