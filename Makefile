# The two set-up commands are `make demo` and `make test` (see README.md).
.PHONY: demo test down lint

demo:
	bash scripts/bootstrap.sh
	.venv/bin/python -m devstack demo

test:
	bash scripts/test.sh

down:
	@if [ -x .venv/bin/python ]; then .venv/bin/python -m devstack down; fi

lint:
	.venv/bin/ruff check .
