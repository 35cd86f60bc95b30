# rtseg developer commands. Everything a fresh clone needs is installed from here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rtseg-installed
# Real data for the tests and benchmarks: override with RTSEG_DATA=/path/holding/camvid.
export RTSEG_DATA ?= $(abspath ../shared/datasets)

.PHONY: install web-runtime litert-env lint test test-slow test-browser bench bench-serve zoo demo serve docs shipped-graphs heldout-models teacher-members cards eval-backends your-data-example clean

# The page's runtime for `rtseg serve --in-browser` (the network runs in the browser):
# onnxruntime-web from npm, its default WebGPU + WASM build (three files, 30 MB; its package.json says
# MIT), kept out of git and out of the wheel (rtseg/serve/browser.py). Skipped with a note where
# npm is missing.
ORT_WEB := 1.31.1
WEB_RUNTIME := rtseg/web/vendor/onnxruntime-web/.version-$(ORT_WEB)

install: $(STAMP) $(WEB_RUNTIME)

web-runtime: $(WEB_RUNTIME)

$(WEB_RUNTIME):
	@if command -v npm >/dev/null; then set -e; tmp=$$(mktemp -d); \
	  (cd $$tmp && npm pack --silent onnxruntime-web@$(ORT_WEB) >/dev/null && tar xzf onnxruntime-web-$(ORT_WEB).tgz); \
	  rm -rf $(dir $@); mkdir -p $(dir $@); \
	  cp $$tmp/package/dist/ort.min.js $$tmp/package/dist/ort-wasm-simd-threaded.jsep.mjs \
	     $$tmp/package/dist/ort-wasm-simd-threaded.jsep.wasm $$tmp/package/package.json $(dir $@); \
	  rm -rf $$tmp; touch $@; \
	else echo "npm not found: rtseg serve --in-browser needs onnxruntime-web (make web-runtime)"; fi

# LiteRT's converter (rtseg export --format tflite, --backend litert): litert-torch pins
# typing-extensions below what pydantic and selenium want, so it gets its own environment, with
# rtseg installed there too; rtseg runs it as $RTSEG_LITERT_PYTHON (pyproject's litert-export).
# That environment sees the main one's packages after its own (a .pth line), so it reuses its
# PyTorch instead of a second 5.5 GB copy: 0.9 GB instead of 6.9. Its own typing-extensions
# comes first on its path; pip's note that selenium wants a newer one is about the main env.
LITERT_VENV ?= .venv-litert
LITERT_STAMP := $(LITERT_VENV)/.rtseg-installed
export RTSEG_LITERT_PYTHON ?= $(abspath $(LITERT_VENV)/bin/python)
litert-env: $(LITERT_STAMP)

$(LITERT_STAMP): pyproject.toml $(STAMP)
	test -x $(LITERT_VENV)/bin/python || $(PYTHON) -m venv $(LITERT_VENV)
	$(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > \
	  "$$($(LITERT_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/zz_rtseg_main_env.pth"
	$(LITERT_VENV)/bin/python -m pip install --quiet -e '.[litert-export]'
	touch $@

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# ruff, configured in pyproject.toml ([tool.ruff]).
lint: install
	$(VENV)/bin/ruff check .

# The quick suite; the real-data and training tests (marked slow) run in test-slow. CI runs both.
# One pytest process per folder of tests/ (tests/README.md): three runs of the whole quick suite
# in one process on an AMX Xeon died with SIGSEGV late in the run, at different tests, none of
# which fails alone or in its folder; the native runtimes (OpenVINO, oneDNN, OpenCV, ONNX
# Runtime) keep thread pools and state for the life of a process. Exit status 5: a folder whose
# tests are all of the other kind.
TEST_GROUPS := $(sort $(dir $(wildcard tests/*/test_*.py)))
define run_tests
	@set -e; for g in "$(wildcard tests/test_*.py)" $(TEST_GROUPS); do \
	  echo "== $$g" | cut -c1-60; rc=0; $(PY) -m pytest -q --durations=3 -m "$(1)" $$g || rc=$$?; \
	  [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc; done
endef

test: install
	$(call run_tests,not slow)

test-slow: install litert-env
	$(call run_tests,slow)

bench: install
	$(VENV)/bin/rtseg bench --suite --threads 2 --calibrate camvid:train:32 --json bench/results.json --markdown bench/results.md
	# Training throughput, ENet at its recipe's 240x320 crops, global batch 8: one process with 2
	# threads against two DDP processes (torchrun, gloo) with 1 thread each.
	$(VENV)/bin/rtseg bench --model enet --train-throughput --train-path eager --size 240x320 --batch 8 --threads 2 --processes 1 --steps 20 --json bench/train_throughput_1x2.json
	$(VENV)/bin/rtseg bench --model enet --train-throughput --train-path eager --size 240x320 --batch 4 --threads 1 --processes 2 --steps 20 --json bench/train_throughput_2x1.json
	# rtseg's training path (channels-last, bf16 where the CPU has it, compiled) against plain
	# float32 eager PyTorch: ENet, batch 4, 360x480, 2 threads, 3 fresh processes each, alternating.
	$(VENV)/bin/rtseg bench --model enet --train-throughput --train-path both --runs 3 --size 360x480 --batch 4 --threads 2 --steps 10 --json bench/train_speedup.json

# The browser test drives Debian's headless Chromium (Selenium, fake camera); it skips in
# `make test` where Chromium is missing. This installs Chromium and runs it.
test-browser: install
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver)
	$(PY) -m pytest -q tests/project/test_browser.py -rs

# Load test of rtseg serve: 200 requests from 16 concurrent clients against a real server; then a
# soak: 5000 requests, the server's resident memory before and after (it must not grow).
bench-serve: install
	$(PY) -m tools.serve_load --requests 200 --concurrency 16 --json bench/serve_load.json
	$(PY) -m tools.serve_load --requests 5000 --concurrency 8 --json bench/serve_soak.json

# docs/model_zoo.md and its plot from bench/zoo_latency.json (models missing from it show "-";
# python tools/zoo.py --measure re-measures all on this CPU, --only M ... some).
zoo: install
	$(PY) tools/zoo.py

# The graphs the package ships for its models (rtseg/shipped/graphs: OpenVINO int8 at the models'
# 360x480, calibrated on rtseg/shipped/calibration), so --backend auto starts a video
# at once; rebuild after retraining a shipped model or changing the export (tests/backends/test_backends_graph.py
# checks they match).
shipped-graphs: install
	$(PY) -c "from rtseg.backends.graph import build_shipped_graphs; print(*build_shipped_graphs(), sep='\n')"

# The models trained without CamVid's 0006R0 that eval-backends, your-data-example and the
# distillation recipes start from: ENet stage A (600 epochs), EDANet stage B1, EDANet stage A2
# (the pruned network after its 600 epochs, where every EDANet last stage starts), and the refined
# EDANet's two held-out distilled stages (pixel-wise; channel-wise + Lovasz, also a teacher
# member). Their stages are done, so the checkpoints left the tree; git history keeps them, and
# this writes them from there into runs/heldout/ (git-ignored). The commits are the ones that wrote each file's last state (the campaign's
# stage-done commits); they are the one place to change if a checkpoint is ever replaced. A
# shallow clone lacks them: `git fetch --unshallow` first.
HELDOUT_ENET := runs/heldout/enet_camvid_long.pt
HELDOUT_EDANET := runs/heldout/edanet_camvid_heldout.pt
HELDOUT_EDANET_A2 := runs/heldout/edanet_camvid_pruned.pt
HELDOUT_ENET_FROM := 8c9256136670ecd87764a5d824a04ded4c2e2203:bench/campaign/enet_camvid_long/last.pt
HELDOUT_EDANET_FROM := b914561b0b912af1bd0bee4914b369f9f1c1c62f:bench/campaign/edanet_camvid_long_fullres_heldout/last.pt
HELDOUT_EDANET_A2_FROM := f8a3ce7f2139404609ad8bcbe7c5785e477d45e1:bench/campaign/edanet_camvid_pruned/last.pt
# EDANet grown with refine=32 from stage A2, its distilled stage done with 0006R0 held out (session 24).
HELDOUT_EDANET_REFINE := runs/heldout/edanet_camvid_refine_heldout.pt
HELDOUT_EDANET_REFINE_FROM := 707fdf36450cadf77b2ebe3d8cbc3870c9e6328a:bench/campaign/edanet_camvid_refine_distill4_heldout/last.pt
HELDOUT_EDANET_CWD := runs/heldout/edanet_camvid_refine_cwd_heldout.pt
HELDOUT_EDANET_CWD_FROM := 1b821277aba9987b4e4ba998058f92a2185d5141:bench/campaign/edanet_camvid_refine_cwd1_lovasz1_heldout/last.pt
heldout-models: $(HELDOUT_ENET) $(HELDOUT_EDANET) $(HELDOUT_EDANET_A2) $(HELDOUT_EDANET_REFINE) $(HELDOUT_EDANET_CWD)

$(HELDOUT_ENET):
	$(call from_history,$(HELDOUT_ENET_FROM))
$(HELDOUT_EDANET):
	$(call from_history,$(HELDOUT_EDANET_FROM))
$(HELDOUT_EDANET_A2):
	$(call from_history,$(HELDOUT_EDANET_A2_FROM))
$(HELDOUT_EDANET_REFINE):
	$(call from_history,$(HELDOUT_EDANET_REFINE_FROM))
$(HELDOUT_EDANET_CWD):
	$(call from_history,$(HELDOUT_EDANET_CWD_FROM))

# Teacher members that are fixed files rather than shipped names (a name changes when its model is
# replaced): session 26's edanet-camvid-distilled, the third member of
# configs/edanet_camvid_refine_cwd_t3.yaml's teacher.
TEACHER_EDANET_CWD := runs/teachers/edanet_camvid_distilled_s26.pt
TEACHER_EDANET_CWD_FROM := 17fb9dee6f942121ea856a3825f7764129c039ab:rtseg/shipped/edanet_camvid_distilled.pt
teacher-members: $(TEACHER_EDANET_CWD)
$(TEACHER_EDANET_CWD):
	$(call from_history,$(TEACHER_EDANET_CWD_FROM))

# $(call from_history,SHA:PATH) writes that file of git history to the target, whole or not at all.
define from_history
	@git cat-file -e $(1) 2>/dev/null || { echo "make $@: $(1) is not in this clone's git history (a shallow clone? run git fetch --unshallow)" >&2; exit 1; }
	@mkdir -p $(dir $@)
	@git show $(1) > $@.tmp && mv $@.tmp $@ || { rm -f $@.tmp; exit 1; }
	@echo "$@ <- $(1)"
endef

# Accuracy of each backend on a sequence neither training nor calibration saw: a model trained
# without CamVid's 0006R0 (ENet stage A, EDANet stage B1; make heldout-models), calibrated on the
# package's street frames (val, 0006R0 not among them), scored by rtseg eval --backend on all 101
# frames of 0006R0 (docs/deployment.md). About 10 minutes on 2 cores.
EVAL_HELDOUT := enetA:$(HELDOUT_ENET) edanetB1:$(HELDOUT_EDANET)
eval-backends: install litert-env heldout-models
	@for m in $(EVAL_HELDOUT); do name=$${m%%:*}; w=$${m#*:}; \
	  for b in plain openvino-int8 torch-bf16 torch-int8 onnxruntime-int8 openvino executorch executorch-int8 litert litert-int8 ncnn; do \
	    extra=$$( [ $$b = plain ] || echo "--backend $$b" ); \
	    $(VENV)/bin/rtseg eval --weights $$w --dataset camvid --split train/0006R0 --threads 2 $$extra \
	      --json bench/eval_backends/$${name}_0006R0_$$b.json | grep -E "mIoU|error"; done; done

# The worked example of docs/your-data.md: a 5-class label set made from CamVid (never committed),
# N = 20, 50, 100 frames fine-tuned from an ENet that never saw 0006R0 (make heldout-models) against
# the same recipe from scratch, scored on 0006R0; docs/your_data_example.png and
# bench/your_data/results.json. About 30 minutes on 2 cores; a rerun skips finished trainings and
# resumes a stopped one.
your-data-example: install heldout-models
	$(PY) tools/your_data_example.py data
	$(PY) tools/your_data_example.py train
	$(PY) tools/your_data_example.py plot

# The model cards' pictures (docs/cards/: the class legend, the per-class test IoU) from the
# shipped checkpoints' class table and bench/camvid_test.json; tests/project/test_cards.py checks
# they are current.
cards: install
	$(PY) tools/model_cards.py

# The documentation site into site/ (mkdocs.yml), warnings as errors: a broken link, a missing
# page or a docstring that no longer matches fails. Builds offline.
docs: install
	$(PY) tools/docs_tables.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "site/index.html: the documentation site"

serve: install
	$(VENV)/bin/rtseg serve

demo: install
	$(VENV)/bin/rtseg predict samples/camvid --out demo_out --gif
	@echo "overlays, masks and demo_out/predictions.gif written to demo_out/"

clean:
	rm -rf demo_out .pytest_cache build site *.egg-info
