# Two commands run everything (see README):
#   make course   execute every notebook (profile from COURSE_PROFILE, default auto) + report
#   make test     unit tests + every notebook under nbval in the smoke profile
# Both create .venv and install the pinned dependencies when needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: course test unit notebooks student site report bench lab clean setup browser-test

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
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

# The student edition: exercise solutions replaced by NotImplementedError stubs, outputs stripped.
student: $(STAMP)
	$(BIN)/python -m course_lib.student --out build/student

# Static HTML of the executed course (build/site/index.html); run `make course` first.
site: $(STAMP)
	$(BIN)/python -m course_lib.report
	$(BIN)/python -m course_lib.site build/notebooks

# JupyterLab + headless Chromium run notebook 00 (tests/test_browser.py). Installs playwright into
# the venv and, as root only, Debian's chromium; never downloads a browser build of its own.
browser-test: $(STAMP)
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	else echo "chromium is missing and this is not root: install Debian's chromium package (the test will skip)"; fi
	COURSE_PROFILE=smoke TQDM_DISABLE=1 $(BIN)/python -m pytest -q -rs -p no:cacheprovider tests/test_browser.py

# Time-to-quality benchmarks for the targets (classroom settings; run on an otherwise idle machine).
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/bench_ae_vae.py
	$(BIN)/python benchmarks/bench_vq.py

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf build data/artifacts data/cache
