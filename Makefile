# Two commands run everything (see README):
#   make course   execute every notebook (profile from COURSE_PROFILE, default auto) + report
#   make test     unit tests + every notebook under nbval in the smoke profile
# Both create .venv and install the pinned dependencies when needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: course test unit notebooks student site report bench lab clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip -q
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

course: $(STAMP)
	$(BIN)/python scripts/run_course.py

test: $(STAMP)
	COURSE_PROFILE=smoke TQDM_DISABLE=1 $(BIN)/python -m pytest -q tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests -p no:cacheprovider

report: $(STAMP)
	$(BIN)/python -m course_lib.report

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf build data/artifacts data/cache
