# Two commands run everything (see README):
#   make course   execute every notebook (profile from COURSE_PROFILE, default auto) + report
#   make test     unit tests + every notebook under nbval in the smoke profile
# Both create .venv and install the pinned dependencies when needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: course test unit notebooks student site report bench lab clean setup browser-test chromium smoke-sweep

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

course: $(STAMP)
	$(BIN)/python scripts/run_course.py

test: $(STAMP) chromium
	COURSE_PROFILE=smoke TQDM_DISABLE=1 $(BIN)/python -m pytest -q -rs tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider

# The real-browser tests need Debian's chromium: installed through apt when missing and we are root;
# otherwise one line says how to enable them (they skip). No browser build is downloaded from elsewhere.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser tests (apt-get)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "could not install chromium through apt: the browser tests will skip"; \
	else echo "chromium is missing: the browser tests will skip (as root, 'apt-get install chromium' enables them)"; fi

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

# Only the real-browser tests: JupyterLab + headless Chromium run notebooks 00 and 05 (tests/test_browser.py).
browser-test: $(STAMP) chromium
	COURSE_PROFILE=smoke TQDM_DISABLE=1 $(BIN)/python -m pytest -q -rs -p no:cacheprovider tests/test_browser.py

# Time-to-quality benchmarks for the targets (classroom settings; run on an otherwise idle machine).
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/bench_ae_vae.py
	$(BIN)/python benchmarks/bench_vq.py
	$(BIN)/python benchmarks/bench_vqa.py

# Smoke checks on any CPU: every notebook in the smoke profile with 1 and 2 threads and COURSE_SEED 0, 1, 2.
smoke-sweep: $(STAMP)
	$(BIN)/python scripts/smoke_sweep.py --threads 1 2 --seeds 0 1 2

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf build data/artifacts data/cache
