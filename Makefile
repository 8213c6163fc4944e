PYTHON ?= python3
FIGURES_OUT ?= figures/out

.PHONY: lock
# Rewrite constraints.txt (the lock of every runtime and test dependency) from pip's resolution of
# .[test] at the versions installed here; run the suite afterwards.
lock:
	$(PYTHON) -m realnet.tools.lock --out constraints.txt

.PHONY: scorecards
# Rebuild the committed scorecards of DirectPred's tables at 4096-pair probes from the committed
# runs' snapshots.npz alone (a fresh clone has them): the freq and c_j x freq tables (the runs
# the challenger of analysis.questions was designed on), and the eps, EMA and weight-decay runs
# with the recipe's own (held out: retrained after the challenger was declared).
withsnap = $(foreach d,$(1),$(if $(and $(wildcard $(d)/snapshots.npz),$(wildcard $(d)/summary.json)),$(d)))
ORD := figures/out/sweeps/orderings_cpu
scorecards:
	$(PYTHON) -m analysis scorecard $(call withsnap,$(wildcard $(ORD)/freq=*/seed*) $(wildcard $(ORD)/cj=*/seed*)) \
	  --out figures/out/scorecard/directpred_tables
	$(PYTHON) -m analysis scorecard $(call withsnap,$(wildcard $(ORD)/base/seed*) $(wildcard $(ORD)/eps=*/seed*) \
	  $(wildcard $(ORD)/ema=*/seed*) $(wildcard $(ORD)/optim.weight_decay=*/seed*)) \
	  --out figures/out/scorecard/heldout_eps_ema_wd
	$(PYTHON) -m figures.results

.PHONY: figures
# Every theory figure (paper Figs. 3-5, 7-10, collapse phase diagram), regenerated from scratch
# into $(FIGURES_OUT)/<name>/ (PNG, PDF, the plotted numbers as CSV, summary.json).
figures:
	$(PYTHON) -m figures.theory --fresh --out $(FIGURES_OUT)

.PHONY: sweep-cpu
SWEEP_OUT ?= figures/out/sweeps/cpu
# The Fashion-MNIST CPU recipe, 3 seeds: the predictors table of the README and DirectPred's
# ablations (paper's Tables 6-7): 22 settings x 3 seeds = 66 runs, two at a time with one thread
# each; resumable (rerun to continue), then tables.md.
sweep-cpu:
	nice -n 5 $(PYTHON) -m realnet.sweeps figures/sweeps/cpu.toml --out $(SWEEP_OUT) --jobs 2

.PHONY: scorecard-cpu
# Forward predictions from 15 % of each run of the CPU sweep's predictors table, against baselines
# (needs the sweep's run folders with their spectra: `make sweep-cpu` first).
scorecard-cpu:
	$(PYTHON) -m analysis scorecard $$(ls -d $(SWEEP_OUT)/*/seed* | grep -v -e 'cj=' -e 'freq=' -e 'eps=') --out figures/out/scorecard/cpu

.PHONY: scorecard-cpu-ablations
# The same across DirectPred's c_j x freq and freq tables (finished runs only; the orderings across
# runs are the point there).
finished = $(foreach d,$(1),$(if $(wildcard $(d)/summary.json),$(d)))
scorecard-cpu-ablations:
	$(PYTHON) -m analysis scorecard $(call finished,$(wildcard $(SWEEP_OUT)/base/seed*) $(wildcard $(SWEEP_OUT)/freq=2/seed*) $(wildcard $(SWEEP_OUT)/cj=*/seed*)) --out figures/out/scorecard/cpu_cj
	$(PYTHON) -m analysis scorecard $(call finished,$(wildcard $(SWEEP_OUT)/base/seed*) $(wildcard $(SWEEP_OUT)/freq=*/seed*)) --out figures/out/scorecard/cpu_freq

.PHONY: scorecard-cpu-probe4096
# The scorecard on runs whose snapshots use 4096 view pairs (bootstrap intervals on sigma2_j):
# nice python -m realnet.sweeps figures/sweeps/scorecard_cpu.toml --out figures/out/sweeps/scorecard_cpu --jobs 2
scorecard-cpu-probe4096:
	$(PYTHON) -m analysis scorecard $(call finished,$(wildcard figures/out/sweeps/scorecard_cpu/*/seed*)) --out figures/out/scorecard/cpu_probe4096

.PHONY: fig6-cpu
# The paper's Fig. 6 at the CPU recipe (symmetric linear predictor, no EMA; alpha_p x predictor
# weight decay, 3 seeds: 30 runs, resumable), its figure with Eqn 17 as a forecast of failing runs,
# and the scorecard across the runs (orderings over alpha_p and the predictor's weight decay).
fig6-cpu:
	nice -n 5 $(PYTHON) -m realnet.sweeps figures/sweeps/fig6_cpu.toml --out figures/out/sweeps/fig6_cpu --jobs 2
	$(PYTHON) -m figures.fig6_alpha_p figures/out/sweeps/fig6_cpu --out $(FIGURES_OUT)
	$(PYTHON) -m analysis scorecard $(call finished,$(wildcard figures/out/sweeps/fig6_cpu/*/seed*)) --out figures/out/scorecard/fig6_cpu

.PHONY: methods-cpu
# SimCLR, SwAV, BYOL, SimSiam, DirectPred, BYOL without BN in the heads, BYOL with GN + WS at the
# CPU recipe, 3 seeds (21 runs, resumable), and the alignment-uniformity figure.
methods-cpu:
	nice -n 5 $(PYTHON) -m realnet.sweeps figures/sweeps/methods_cpu.toml --out figures/out/sweeps/methods_cpu --jobs 2
	$(PYTHON) -m figures.fig_align_uniform figures/out/sweeps/methods_cpu --out $(FIGURES_OUT)

.PHONY: gpu-check
# On a CUDA machine: full-scale realnet.tools.bench, realnet.tools.numerics and pytest -m gpu in about 10
# minutes, every number and the targets' verdicts in gpu_check.json.
gpu-check:
	$(PYTHON) -m realnet.tools.gpucheck --out gpu_check.json

.PHONY: orderings-cpu
# DirectPred's eps, EMA and weight decay swept at the CPU recipe with 4096-pair probes (30 runs,
# resumable; a fresh clone has the summaries, not the snapshots, so those runs train again), then
# one scorecard per sweep: the orderings of the final number of surviving modes
# and participation ratio across the sweep's runs (the recipe's runs belong to each sweep).
ORD_OUT ?= figures/out/sweeps/orderings_cpu
orderings-cpu:
	nice -n 5 $(PYTHON) -m realnet.sweeps figures/sweeps/orderings_cpu.toml --out $(ORD_OUT) --jobs 2 --rerun-without-spectra
	for knob in eps ema optim.weight_decay; do \
	  $(PYTHON) -m analysis scorecard $(call finished,$(wildcard $(ORD_OUT)/base/seed*)) \
	    $$(for d in $(ORD_OUT)/$$knob=*/seed*; do [ -f $$d/summary.json ] && echo $$d; done) \
	    --out figures/out/scorecard/orderings_$${knob#optim.}; done
	$(PYTHON) -m analysis scorecard $(call finished,$(wildcard $(ORD_OUT)/*/seed*)) --out figures/out/scorecard/orderings_all
