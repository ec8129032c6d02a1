"""A/B loop for kernel work: build, check and time several variants in ONE device call.

    python -m pipeline.bench [--variants a,b] [--batch 128] [--repeats 30] [--checks 1x227x227;3x231x199]
                             [--arch sm_90] [--out DIR] [--no-time]

A thin command over the workflow's own stage functions, so every number it prints is one the
workflow would measure the same way:
1. ``pipeline.stages.build.build_variant`` (the build rule's nvcc line and resource report), all
   selected variants in parallel;
2. per check shape (batch x H x W), one set of random weights and input and ONE float64 reference,
   then every variant through ``pipeline.stages.verify.check_forward`` (NaN-poisoned output, the
   verify rule's tolerance);
3. ``pipeline.stages.time.time_variant`` (the time rule's CUDA-event loop, with NVML) at
   ``--batch``; lbl is timed twice to show the run-to-run spread.
Prints a short table last; writes ``results.json`` and the build reports under ``--out``.
"""

import argparse
import concurrent.futures as cf
import json
import sys
import time
from pathlib import Path

CHECKS = "1x227x227;3x231x199;16x227x227"


def build_all(names: list[str], arch: str, out: Path) -> dict[str, str | None]:
    """variant -> cubin path (None for variants without a source), printing registers and spills."""
    from kernels.registry import VARIANTS
    from pipeline.stages.build import build_variant

    def one(name: str) -> tuple[str, str | None]:
        if VARIANTS[name].source is None:
            return name, None
        cubin = out / f"{name}.cubin"
        rep = build_variant(name, arch, cubin, out / f"{name}.json", out / f"{name}.log")
        regs = ", ".join(f"{k['name']}:{k['registers']}r/{k['spill_store_bytes']}sp" for k in rep["kernels"])
        print(f"  built {name}: {regs}", flush=True)
        return name, str(cubin)

    with cf.ThreadPoolExecutor(8) as ex:
        return dict(ex.map(one, names))


def check_all(names: list[str], cubins: dict, checks: str, rtol: float | None = None) -> list[dict]:
    """Every variant on every check shape, against one float64 reference per shape."""
    from kernels.api import make_forward
    from pipeline.stages.verify import check_forward, reference_output

    rows = []
    for spec in checks.split(";"):
        b, h, w = (int(v) for v in spec.split("x"))
        base = make_forward("lbl", b, h, w, seed=7, cubin=cubins.get("lbl"))
        x32 = base.random_input(11)
        refs: dict[str, tuple] = {}  # precision -> (input, reference): weights and input rounded to it
        for n in names:
            try:
                fwd = make_forward(n, b, h, w, params=base.params, cubin=cubins[n])
                if fwd.precision not in refs:
                    t0 = time.time()
                    xp = fwd.encode(x32)
                    refs[fwd.precision] = (xp, reference_output(fwd, xp))
                    print(f"reference {spec} {fwd.precision}: {time.time() - t0:.1f} s", flush=True)
                r = check_forward(fwd, *refs[fwd.precision], rtol=rtol)
            except Exception as err:  # report and go on: one broken variant must not hide the rest
                r = {"variant": n, "passed": False, "rel_l2_error": float("inf"), "error": repr(err)[:300]}
            rows.append({**r, "check": spec})
            print(f"  {spec:>12} {n:24s} rel={r['rel_l2_error']:.2e} max={r.get('max_abs_error_scaled', float('nan')):.2e} "
                  f"passed={r['passed']} {r.get('error', '')}", flush=True)  # fmt: skip
    return rows


def time_all(names: list[str], cubins: dict, batch: int, repeats: int) -> dict[str, list[float]]:
    from pipeline.stages.time import time_variant

    times: dict[str, list[float]] = {}
    for n in names + (["lbl"] if "lbl" in names else []):
        try:
            us = time_variant(n, batch, cubins[n], warmup=5, repeats=repeats, min_seconds=0.2)["us_per_image_median"]
        except Exception as err:
            print(f"time {n}: {err!r}"[:300])
            us = float("nan")
        times.setdefault(n, []).append(us)
    return times


def main(argv: list[str] | None = None) -> int:
    from kernels.registry import VARIANTS, vendor_available

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--checks", default=CHECKS, help="batch x height x width, ';'-separated")
    ap.add_argument("--arch", default=None, help="nvcc target (default: the GPU's)")
    ap.add_argument("--rtol", type=float, default=None, help="default: the verify stage's, per precision")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench"))
    ap.add_argument("--no-time", action="store_true")
    a = ap.parse_args(argv)
    names = [n for n in a.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    ok, why = vendor_available()
    anchors = [n for n in names if VARIANTS[n].strategy == "vendor"]
    if not ok and anchors:
        print(f"{', '.join(anchors)} skipped: {why}")
        names = [n for n in names if n not in anchors]
    import cupy

    from pipeline.core.gpus import detect_gpus

    gpus = detect_gpus()
    arch = a.arch or (gpus[0].arch if gpus else "sm_90")
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    cubins = build_all(names, arch, a.out)
    print(f"built {len(cubins)} for {arch} in {time.time() - t0:.1f} s")
    device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    checks = check_all(names, cubins, a.checks, a.rtol)
    times = {} if a.no_time else time_all(names, cubins, a.batch, a.repeats)
    (a.out / "results.json").write_text(json.dumps({"device": device, "arch": arch, "batch": a.batch,
                                                    "checks": checks, "us_per_image": times}, indent=1))  # fmt: skip
    print(f"\n{device}, batch {a.batch} (us/image: median of >= {a.repeats} CUDA-event-timed launches)")
    print(f"{'variant':24s} {'max rel err':>11s} {'all passed':>10s} {'us/image':>14s}")
    for n in names:
        mine = [r for r in checks if r["variant"] == n]
        worst = max(r["rel_l2_error"] for r in mine)
        passed = all(r["passed"] for r in mine)
        print(f"{n:24s} {worst:11.2e} {str(passed):>10s} {' / '.join(f'{v:.2f}' for v in times.get(n, [])):>14s}")
    return 0 if all(r["passed"] for r in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
