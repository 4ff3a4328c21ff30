# The two commands of README.md. Both do all set-up on a fresh machine (scripts/bootstrap is idempotent).
.PHONY: bootstrap lab test

bootstrap:
	@scripts/bootstrap

# The main job: bring up the lab stack (its nodes on this machine; the OpenStack services grow issue by issue).
lab: bootstrap
	@scripts/lab up

test:
	@scripts/bootstrap --browser
	@venv/bin/python -m pytest -q --durations=25 tests
