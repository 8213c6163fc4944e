"""One GPU check, ready to run: ``python -m realnet.tools.gpucheck --out gpu_check.json`` (``make gpu-check``).

Runs, each in its own process with its own time limit, on the first CUDA device:

1. ``python -m realnet.tools.bench`` at full scale (batch 512, full-width ResNet-18, CIFAR-10 shape, every
   predictor, the conventional pipeline as baseline, the STL-10-shaped row) with ``--json``;
2. ``python -m realnet.tools.numerics`` (fast path against eager fp32, 3 seeds of the Fashion-MNIST
   recipe at a short length) with ``--json``;
3. ``pytest -m gpu``.

Then it checks the issue's targets against the bench numbers -- a 50,000-image CIFAR epoch in at
most 3 s at batch 512 (DirectPred row), at least 5x the conventional pipeline, DirectPred's extra
cost under 5 % of its step -- and writes every number, each part's exit code and wall time, and
the verdicts to one JSON. Without CUDA it stops at once with exit code 2. The defaults fit in
about 10 minutes on one H100/H200; ``--budget`` scales the parts' limits.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["PARTS", "targets", "main"]

#: Target figures (the GPU acceptance check).
EPOCH_S_MAX, SPEEDUP_MIN, DIRECTPRED_OVERHEAD_MAX = 3.0, 5.0, 0.05


def PARTS(tmp: Path) -> list[tuple[str, list[str], float]]:
    """``(name, command, share of the time budget)`` of each part."""
    py = sys.executable
    return [
        ("bench", [py, "-m", "realnet.tools.bench", "--device", "cuda", "--json", str(tmp / "bench.json")],
         0.45),
        ("numerics", [py, "-m", "realnet.tools.numerics", "--steps", "300", "--json",
                      str(tmp / "numerics.json"), "device=cuda"], 0.35),
        ("pytest_gpu", [py, "-m", "pytest", "-q", "-m", "gpu", "tests"], 0.2),
    ]


def targets(bench: dict[str, Any]) -> dict[str, Any]:
    """The targets read off a ``realnet.tools.bench --json`` result: the DirectPred on-device CIFAR-10
    row's epoch time and speed-up over the conventional pipeline, and DirectPred's extra cost
    (the eigh of ``F`` and the setting of ``Wp``, timed alone) as a share of its step."""
    rows = bench.get("rows", [])
    dp = next((r for r in rows if r.get("pipeline") == "on-device"
               and r.get("predictor") == "directpred" and str(r.get("input", "")).startswith("cifar10")),
              None)
    out: dict[str, Any] = {}
    if dp is not None:
        speedup = dp.get("speedup")
        speedup = None if speedup is None or speedup != speedup else speedup  # NaN: no baseline
        out.update(epoch_s=dp["epoch_s"], epoch_ok=dp["epoch_s"] <= EPOCH_S_MAX, speedup=speedup,
                   speedup_ok=speedup is not None and speedup >= SPEEDUP_MIN)
    over = bench.get("directpred_overhead") or {}
    if over.get("set_s") is not None and over.get("step_s"):
        share = over["set_s"] / over["step_s"]
        out.update(directpred_overhead=share, directpred_overhead_ok=share < DIRECTPRED_OVERHEAD_MAX)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m realnet.tools.gpucheck", description=" ".join(__doc__.strip().split("\n\n")[0].split()).replace("``", ""))
    p.add_argument("--out", default="gpu_check.json", help="the JSON written (default gpu_check.json)")
    p.add_argument("--budget", type=float, default=570.0, help="seconds for all parts together")
    a = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA device here; the GPU check needs one", file=sys.stderr)
        return 2
    out = Path(a.out)
    tmp = out.with_suffix(".parts")
    tmp.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                              "parts": {}}
    for name, cmd, share in PARTS(tmp):
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=share * a.budget)
            rc, text = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as e:
            rc, text = 124, f"timed out after {share * a.budget:.0f} s\n{e.stdout or ''}"
        part = {"rc": rc, "wall_s": time.perf_counter() - t, "output_tail": text[-4000:]}
        data = tmp / f"{name}.json"
        if data.exists():
            part["result"] = json.loads(data.read_text())
        result["parts"][name] = part
        print(f"{name}: exit {rc} in {part['wall_s']:.0f} s", flush=True)
    bench = result["parts"]["bench"].get("result")
    result["targets"] = targets(bench) if bench else {}
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["targets"], indent=2))
    return 0 if all(part["rc"] == 0 for part in result["parts"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
