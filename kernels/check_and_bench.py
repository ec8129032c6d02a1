"""Build, verify and time several variants in ONE device call (device time is scarce).

    python kernels/check_and_bench.py [--variants a,b] [--batch 128] [--repeats 30] [--out DIR]

1. nvcc -cubin every selected variant in parallel (same flags as pipeline/stages/build.py), printing
   registers / spills from -Xptxas -v;
2. for each check config (batch x H x W) draw one set of random weights and input, compute the
   float64 reference once, run every variant on NaN-poisoned output and compare;
3. time each variant at --batch with CUDA events (warm-up, then the median of --repeats launches,
   rotating 3 inputs), lbl timed twice to show the run-to-run spread.
Prints a short table last; writes results.json under --out.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from kernels.registry import VARIANTS, nvcc_flags, vendor_available  # noqa: E402

CHECKS = ((1, 227, 227), (3, 231, 199), (16, 227, 227))


def build(name: str, outdir: Path) -> tuple[str, str | None, str]:
    v = VARIANTS[name]
    if v.source is None:
        return name, None, ""
    cubin = outdir / f"{name}.cubin"
    cmd = ["nvcc", "-cubin", "-arch=sm_90", "-O3", "-std=c++17", "-lineinfo", "-Xptxas", "-v",
           f"-I{REPO / 'kernels'}", *nvcc_flags(v), str(REPO / v.source), "-o", str(cubin)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"nvcc failed for {name}:\n{p.stderr[-3000:]}")
    regs = re.findall(r"Compiling entry function '(\w+)'.*?Used (\d+) registers.*?(\d+) bytes spill stores",
                      p.stderr, re.S)  # noqa
    summary = ", ".join(f"{e}:{r}r" for e, r, _ in regs)
    return name, str(cubin), summary


def time_variant(fwd, repeats: int) -> float:
    import cupy

    xs = [fwd.random_input(100 + i) for i in range(3)]
    for i in range(5):
        fwd(xs[i % 3])
    cupy.cuda.get_current_stream().synchronize()
    times = []
    for i in range(repeats):
        a, b = cupy.cuda.Event(), cupy.cuda.Event()
        a.record()
        fwd(xs[i % 3])
        b.record()
        b.synchronize()
        times.append(cupy.cuda.get_elapsed_time(a, b) * 1e3)
    return float(np.median(times))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--checks", default=";".join(f"{b}x{h}x{w}" for b, h, w in CHECKS))
    ap.add_argument("--out", default="/tmp/cab")
    ap.add_argument("--no-time", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.variants.split(",") if n]
    import cupy

    from kernels.api import make_forward
    from pipeline.core.reference import forward as ref_forward
    from pipeline.stages.verify import compare

    ok, why = vendor_available()
    if not ok and "vendor" in names:
        print("vendor unavailable:", why)
        names.remove("vendor")
    t0 = time.time()
    with cf.ThreadPoolExecutor(8) as ex:
        built = {n: (c, s) for n, c, s in ex.map(lambda n: build(n, out), names)}
    print(f"built {len(built)} in {time.time() - t0:.1f}s")
    for n, (_, s) in built.items():
        print(f"  {n}: {s}")
    dev = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    results: dict = {"device": dev, "verify": [], "time_us_per_image": {}}
    errs: dict[str, list[float]] = {n: [] for n in names}
    for spec in args.checks.split(";"):
        b, h, w = (int(v) for v in spec.split("x"))
        base = make_forward("lbl", b, h, w, seed=7, cubin=built["lbl"][0] if "lbl" in built else None)
        x = base.random_input(11)
        t1 = time.time()
        p64 = {k: (wt.astype(np.float64), bb.astype(np.float64)) for k, (wt, bb) in base.params.items()}
        ref = ref_forward(base.layers, cupy.asnumpy(x).astype(np.float64), p64)
        print(f"reference {spec}: {time.time() - t1:.1f}s")
        for n in names:
            try:
                fwd = make_forward(n, b, h, w, params=base.params, cubin=built[n][0])
                fwd.output.fill(cupy.nan)
                y = cupy.asnumpy(fwd(x))
                r = compare(y, ref)
            except Exception as err:  # report and go on: one broken variant must not hide the rest
                r = {"rel_l2_error": float("inf"), "max_abs_error_scaled": float("inf"), "error": repr(err)[:300]}
            r.update(variant=n, check=spec)
            results["verify"].append(r)
            errs[n].append(r["rel_l2_error"])
            print(f"  {spec:>12} {n:22s} rel={r['rel_l2_error']:.2e} max={r['max_abs_error_scaled']:.2e} "
                  f"nonfinite={r.get('nonfinite_outputs')} {r.get('error', '')}")  # fmt: skip
    if not args.no_time:
        for n in names + (["lbl"] if "lbl" in names else []):
            try:
                fwd = make_forward(n, args.batch, cubin=built[n][0])
                us = time_variant(fwd, args.repeats) / args.batch
            except Exception as err:
                print(f"time {n}: {err!r}"[:300])
                us = float("nan")
            results["time_us_per_image"].setdefault(n, []).append(us)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\n{dev}, batch {args.batch}")
    print(f"{'variant':22s} {'max rel err':>11s} {'us/image':>10s}")
    for n in names:
        t = results["time_us_per_image"].get(n, [])
        print(f"{n:22s} {max(errs[n]):11.2e} {' / '.join(f'{v:.1f}' for v in t):>10s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
