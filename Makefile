# The two commands of README.md. Both do all set-up on a fresh machine (scripts/bootstrap is idempotent).
.PHONY: bootstrap lab test

bootstrap:
	@scripts/bootstrap

# The main job: the lab stack (today: its preview; it grows with the lab and the OpenStack services).
lab: bootstrap
	@scripts/lab preview

test: bootstrap
	@venv/bin/python -m pytest -q tests
