PYTHON ?= python
FIGURES_OUT ?= figures/out

.PHONY: figures
# Every theory figure (paper Figs. 3-5, 7-10, collapse phase diagram), regenerated from scratch
# into $(FIGURES_OUT)/<name>/ (PNG, PDF, the plotted numbers as CSV, summary.json).
figures:
	$(PYTHON) -m figures.theory --fresh --out $(FIGURES_OUT)
