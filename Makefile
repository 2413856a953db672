# ser_lightning — the two set-up commands are `make train` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lock train cv cv-emobox cv-xcorpus test lint docs mutants data bench bench-zoo bench-latency clean

install: $(STAMP)

## Exactly the locked environment: every package pinned with its hashes (requirements.lock), no resolver,
## no new upstream release. Then the project itself (editable, no dependencies of its own to resolve).
$(STAMP): pyproject.toml requirements.lock requirements-nodeps.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements-nodeps.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) .ci/lock.py --check --verify
	touch $(STAMP)

## Re-resolve pyproject.toml into requirements.lock (+ requirements-nodeps.lock) with uv; commit both.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "uv==0.13.9"
	PATH="$(VENV)/bin:$$PATH" $(PY) .ci/lock.py

## Train and test the default model (frozen Whisper tiny.en encoder + linear probe, refit on the training and
## validation speakers; RAVDESS, speaker-independent). Report 003's homebrew CNN: ARGS=model=homebrew_cnn.
## Without data (no data.root=/data= in ARGS and no $$SER_DATA_DIR/ravdess, default ./data/ravdess) it first
## downloads RAVDESS (make data), which says in one line what to do where there is no internet.
train: install
	@case "$(ARGS)" in *data.root=*|*data=*) ;; *) test -d "$${SER_DATA_DIR:-./data}/ravdess" || $(MAKE) data ;; esac
	$(PY) train.py $(ARGS)

## Speaker 6-fold cross-validation of the default model (RAVDESS: actors 1-4, 5-8, ..., 21-24 as test folds;
## the frozen encoder's embeddings are extracted once and cached, then each fold fits its probe);
## summary.csv / summary.md land in the sweep directory. Another model: ARGS=model=homebrew_cnn.
cv: install
	$(PY) train.py -m data.split=kfold 'data.fold=range(0,6)' $(ARGS)

## The same 6-fold cross-validation on EmoBox's RAVDESS actor groups (ser_lightning/conf/folds/emobox_ravdess.yaml: test actors
## 1/11/20/21, 4/10/12/14, 8/9/19/23, 3/5/7/24, 2/15/16/18, 6/13/17/22), for rows comparable with EmoBox.
cv-emobox: install
	$(PY) train.py -m folds=emobox_ravdess 'data.fold=range(0,6)' $(ARGS)

## The development protocol for robustness (benchmarks/xcorpus_cv.py): RAVDESS -> TESS, TESS -> RAVDESS and
## leave-one-corpus-out over RAVDESS, TESS and TurEV-DB (each target scored on its own classes, plain and
## transductively adapted rows), plus RAVDESS 6-fold in-corpus; one row per recipe in
## benchmarks/results/xcorpus_table.md. Default: the shipped model's recipe. Another recipe:
## make cv-xcorpus NAME=whisper_tiny_probe XCORPUS="" ARGS=model=whisper_tiny
NAME    ?= whisper_base_multicorpus
XCORPUS ?= --incorpus-extra tess turev
cv-xcorpus: install
	$(PY) -m benchmarks.xcorpus_cv --name $(NAME) $(XCORPUS) -- $(or $(ARGS),model=whisper_base)

## Fast CPU test suite (generated audio + one real-RAVDESS integration test if SER_DATA_DIR is set).
test: install
	$(PY) -m pytest -q $(ARGS)

lint: install
	$(VENV)/bin/ruff check ser_lightning tests benchmarks train.py eval.py predict.py export.py

## The documentation site (docs/, mkdocs.yml; Material theme, API reference from the docstrings by mkdocstrings):
## first the results tables, rewritten from benchmarks/results/ (benchmarks/tables.py), then a strict build into
## site/ (a broken link, anchor or docstring fails it). Offline: no web fonts, no plugin that downloads.
## Preview while editing: .venv/bin/mkdocs serve
docs: install
	$(PY) -m benchmarks.tables
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

## Mutation testing (mutmut; [tool.mutmut] in pyproject.toml) of the modules that decide an answer (labels and
## parsers, splits, crops, metrics and calibration, cross-corpus scores, the classifier's loss, inference
## aggregation) against their fast tests. A fixed sample, about one mutant in ten (those numbered ...3 in each
## function: 626 of 5,942), takes about 17 min on 2 cores; all of one module: MUTANTS='ser_lightning.data.labels.*'.
## mutants/ keeps the results: a rerun tests again only what changed. Summary in benchmarks/results/mutants.{json,md};
## fails while a survivor has no reason in .ci/mutants_survivors.txt.
MUTANTS ?= ser_lightning.*__mutmut_*3
mutants: install
	$(VENV)/bin/mutmut run --max-children 2 '$(MUTANTS)'
	$(PY) .ci/mutants.py

## Download RAVDESS speech (Zenodo record 1188976) into $${SER_DATA_DIR:-./data}.
data: install
	$(PY) -m ser_lightning.data.download --root "$${SER_DATA_DIR:-./data}"

## Performance benchmarks on real RAVDESS under $$SER_DATA_DIR (by hand; ~10 min on 2 CPU cores): input pipeline
## (reference librosa style vs ser_lightning, scaling), cache build/reopen, training throughput and peak RSS.
## JSON in benchmarks/results/. Options per script: python -m benchmarks.<pipeline|cache_build|train_throughput> --help
bench: install
	$(PY) -m benchmarks.pipeline
	$(PY) -m benchmarks.cache_build
	$(PY) -m benchmarks.train_throughput

## Model-zoo accuracy benchmark on real RAVDESS (by hand; slow). ARGS="--models homebrew_cnn plain_cnn --epochs 20"
bench-zoo: install
	$(PY) -m benchmarks.model_zoo $(ARGS)

## CPU inference latency of every zoo model, PyTorch eager vs ONNX Runtime, 1 and 2 threads (needs the
## export extra: pip install -e ".[export]"). ARGS="--models homebrew_cnn mobilenetv3_large_100 --runs 100"
bench-latency: install
	$(PY) -m benchmarks.latency $(ARGS)

clean:
	rm -rf .pytest_cache .ruff_cache outputs multirun .ser_cache mutants site
