"""A/B loop for kernel work: build, check and time several variants in ONE device call.

    python -m pipeline.bench [--variants a,b] [--batch 128] [--repeats 30] [--checks 1x227x227;3x231x199]
                             [--arch sm_90] [--out DIR] [--no-time] [--phases] [--cubin-cache DIR [--prebuild]]
                             [--against REV | --set NAME=VALUE[,NAME=VALUE] [--set ...] [--rounds 2]]

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

``--against REV`` makes it an A/B against a git revision's kernels (pipeline/revision.py): each
hand-written variant is also built from REV's source with REV's registry defines, checked on the
same inputs and reference as the tree's, and the two are timed alternately ``--rounds`` times in
one process (the A/B of docs/perf-notes.md). Both sides then compile at run time, so they differ
in their kernel source only (NVRTC; except a build with clusters, which nvcc compiles for sm_90a
where the other side may be NVRTC's); the host code is the tree's.

``--set NAME=VALUE`` makes it an A/B of the tree's kernels against themselves with other -D values
(``<variant>@NAME=VALUE``), the same way: ``--set WCLUSTER=1,CONV2_WGMMA=0`` runs the fused
tensor-core kernels without clusters (wgmma reads the cluster ring), ``--set CONV2_CHUNK=64``
another chunk. ``--set`` may be given several times:
each is one more build of every hand-written variant, all checked and timed in turn in the same
process (``--set CONV2_WGMMA=0 --set CONV2_WGMMA=0,RING_WAIT_CLUSTER=1``). A fused_tc build's EXPECT_SMEM_BYTES is
recomputed for the new values (pipeline/revision.py defines_with); the host code reads the
variant's defines (its clusters, for one), so it follows.
``--phases`` adds the phases stage's breakdown (``pipeline.stages.phases.measure_phases``: per lbl
kernel, or per fused phase from a ``-DPHASE_TIMING=1`` build) of every build at ``--batch``.

The builds compiled at run time for an arch-specific target (sm_90a: the fused tensor-core kernels
with clusters) go through nvcc into a cache (``pipeline.core.gpu.nvcc_cubin``). ``--cubin-cache
DIR`` puts that cache in DIR, and ``--prebuild`` fills it and stops, on a machine without a GPU
(nvcc only): carried to the GPU machine and named again there, the call then spends its device
time checking and timing, not compiling (docs/perf-notes.md step 29, a script over the same cache:
14 builds checked at 3 shapes and timed twice in a 33 s call).
What --prebuild builds: every ``--set`` side and, with ``--phases``, every fused build's
instrumented twin; the plain builds (no ``--set``) are the build stage's own, made in the call.

Generated variants (``lbl-gen``, ``vgg_e.first5.fused-reuse-t2x14-gen-fp16``) are built at their
network's input size: a check at another size compiles them with NVRTC, and they are timed at
that size.
"""

import argparse
import concurrent.futures as cf
import json
import sys
import time
from pathlib import Path

from pipeline.stages.job import network_input_hw

CHECKS = "1x227x227;3x231x199;16x227x227"


def build_all(names: list[str], arch: str, out: Path) -> dict[str, str | None]:
    """variant -> cubin path (None for variants without a source), printing registers and spills."""
    from kernels.registry import Variant
    from pipeline.stages.build import build_variant

    def one(name: str) -> tuple[str, str | None]:
        if not Variant.parse(name).strategy.own_kernels:
            return name, None
        cubin = out / f"{name}.cubin"
        rep = build_variant(name, arch, cubin, out / f"{name}.json", out / f"{name}.log")
        regs = ", ".join(f"{k['name']}:{k['registers']}r/{k['spill_store_bytes']}sp" for k in rep["kernels"])
        print(f"  built {name}: {regs}", flush=True)
        return name, str(cubin)

    with cf.ThreadPoolExecutor(8) as ex:
        return dict(ex.map(one, names))


def _sides(n: str, alts: dict | None) -> list[tuple]:
    """(label, context) for each build of ``n`` to run: the tree's, then each other build that
    ``alts`` holds for it ({variant: {label: {"source", "defines"}}}): ``<variant>@<label>``, the
    registry's record swapped for the block."""
    from contextlib import nullcontext

    from pipeline.revision import variant_built_as

    sides = [(n, nullcontext())]
    for label, b in ((alts or {}).get(n) or {}).items():
        sides.append((f"{n}@{label}", variant_built_as(n, b["source"], b["defines"])))
    return sides


def check_all(names: list[str], cubins: dict, checks: str, rtol: float | None = None,
              alts: dict | None = None) -> list[dict]:  # fmt: skip
    """Every variant on every check shape, against one float64 reference per shape; with ``alts``
    (see :func:`_sides`), each variant in it also as each of its other builds, reported as
    ``<variant>@<label>``."""
    import numpy as np

    from kernels.api import make_forward, random_params
    from kernels.registry import Variant, group_chain
    from pipeline.stages.verify import check_forward, reference_output

    rows = []
    for spec in checks.split(";"):
        b, h, w = (int(v) for v in spec.split("x"))
        groups: dict[tuple, tuple] = {}  # (network, group) -> (params, float32 input): shared by its variants
        refs: dict[tuple, tuple] = {}  # (network, group, precision) -> (input, reference), rounded to it
        for n in names:
            try:
                v = Variant.parse(n)
                key = (v.network, v.group)
                if key not in groups:
                    layers, s_in = group_chain(v.network, v.group, h, w)
                    x32 = np.random.default_rng(11).standard_normal((b, s_in.channels, s_in.height, s_in.width),
                                                                    dtype=np.float32)  # fmt: skip
                    groups[key] = (random_params(layers, s_in, 7), x32)
                params, x32 = groups[key]
                cubin = cubins[n] if not v.generated or (h, w) == network_input_hw(v.network) else None
            except Exception as err:
                rows.append({"variant": n, "passed": False, "rel_l2_error": float("inf"), "error": repr(err)[:300],
                             "check": spec})  # fmt: skip
                print(f"  {spec:>12} {n:24s} passed=False {err!r}"[:300], flush=True)
                continue
            for label, built in _sides(n, alts):
                try:
                    with built:
                        fwd = make_forward(n, b, h, w, params=params, cubin=cubin if label == n else None)
                        if (*key, fwd.precision) not in refs:
                            t0 = time.time()
                            xp = fwd.encode(x32)
                            refs[(*key, fwd.precision)] = (xp, reference_output(fwd, xp))
                            print(f"reference {spec} {v.network}.{v.group} {fwd.precision}: {time.time() - t0:.1f} s",
                                  flush=True)  # fmt: skip
                        r = check_forward(fwd, *refs[(*key, fwd.precision)], rtol=rtol)
                except Exception as err:  # report and go on: one broken variant must not hide the rest
                    r = {"passed": False, "rel_l2_error": float("inf"), "error": repr(err)[:300]}
                rows.append({**r, "variant": label, "check": spec})
                worst = r.get("max_abs_error_scaled", float("nan"))
                print(f"  {spec:>12} {label:24s} rel={r['rel_l2_error']:.2e} max={worst:.2e} passed={r['passed']} "
                      f"{r.get('error', '')}", flush=True)  # fmt: skip
    return rows


def time_all(names: list[str], cubins: dict, batch: int, repeats: int, alts: dict | None = None,
             rounds: int = 1) -> dict[str, list[float]]:  # fmt: skip
    """us/image per variant (lbl twice, for the run-to-run spread); with ``alts``, the tree's build
    and each other build of each variant in it in turn, ``rounds`` times (``<variant>@<label>``)."""
    from kernels.registry import Variant
    from pipeline.stages.time import time_variant

    times: dict[str, list[float]] = {}
    plain = names + (["lbl"] if "lbl" in names and not alts else [])
    for _ in range(rounds):
        for n in plain:
            for label, built in _sides(n, alts):
                try:
                    h, w = network_input_hw(Variant.parse(n).network)
                    with built:
                        cubin = cubins[n] if label == n else None  # the other side: compiled at run time
                        us = time_variant(n, batch, cubin, height=h, width=w, warmup=5, repeats=repeats,
                                          min_seconds=0.2)["us_per_image_median"]  # fmt: skip
                except Exception as err:
                    print(f"time {label}: {err!r}"[:300])
                    us = float("nan")
                times.setdefault(label, []).append(us)
    return times


def run_time_nvcc_builds(names: list[str], alts: dict, arch: str, phases: bool) -> list[tuple[str, str, tuple, str]]:
    """(label, source, defines, target) of every build that this call compiles at run time with
    nvcc: the sides of ``alts`` (the tree's included, since those calls compile every side at run
    time) and, with ``phases``, each fused side's PHASE_TIMING twin, where the target is
    arch-specific (``pipeline.core.nvcc.target_arch``; the others go to NVRTC). The defines are
    spelled as ``kernels.api`` passes them, so the cache keys match."""
    from kernels.registry import VARIANTS, Variant
    from pipeline.core.nvcc import target_arch
    from pipeline.stages.phases import PHASE_DEFINE

    out, seen = [], set()
    for n in names:
        v = VARIANTS.get(n)
        if v is None or not v.source:
            continue
        every = [(n, v.defines)] + [(f"{n}@{label}", b["defines"]) for label, b in (alts.get(n) or {}).items()]
        sides = every if alts else []  # without alts the tree's build is the build stage's
        if phases and Variant.parse(n).strategy in ("reuse", "recompute"):  # lbl's phases are its own kernels
            sides += [(f"{label}+phases", d + PHASE_DEFINE) for label, d in every]
        for label, d in sides:
            target = target_arch(dict(d), arch, label)
            key = (v.source, tuple(d), target)
            if target.endswith("a") and key not in seen:  # a --set of the registry's own value: built once
                seen.add(key)
                out.append((label, *key))
    return out


def prebuild(builds: list[tuple[str, str, tuple, str]]) -> int:
    """nvcc each of :func:`run_time_nvcc_builds` into the cubin cache, in parallel; no GPU needed."""
    from pipeline.core.gpu import cubin_cache_dir, nvcc_cubin

    def one(b: tuple) -> tuple[bool, str]:
        label, source, defines, target = b
        t0 = time.time()
        try:  # report and go on: one build that fails must not hide the rest
            return True, f"  {label} ({target}): {nvcc_cubin(source, defines, target).name}, {time.time() - t0:.0f} s"
        except RuntimeError as err:
            return False, f"  {label} ({target}) FAILED: {err}"[:2000]

    t0 = time.time()
    with cf.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(one, builds))
    for _, line in results:
        print(line, flush=True)
    failed = sum(not ok for ok, _ in results)
    print(f"prebuilt {len(builds) - failed} of {len(builds)} cubins in {time.time() - t0:.0f} s into {cubin_cache_dir()}")
    return 1 if failed else 0


def phases_all(names: list[str], cubins: dict, batch: int, alts: dict | None = None) -> dict[str, dict]:
    """The phases stage's record of every hand-written variant's builds at ``batch`` (label ->
    {phase: us/image}, with "total"), printed as it goes."""
    from kernels.registry import Variant
    from pipeline.stages.phases import measure_phases

    out: dict[str, dict] = {}
    for n in names:
        v = Variant.parse(n)
        if not v.strategy.own_kernels or v.generated:
            continue
        for label, built in _sides(n, alts):
            try:
                with built:
                    r = measure_phases(n, batch, cubin=cubins[n] if label == n else None, launches=10)
                out[label] = {"total": r["us_per_image_median"], **{p["phase"]: p["us_per_image"] for p in r["phases"]}}
                print(f"phases {label}: {out[label]['total']:.2f} us/image; "
                      + ", ".join(f"{p['phase']} {p['us_per_image']:.2f}" for p in r["phases"]), flush=True)  # fmt: skip
            except Exception as err:
                print(f"phases {label}: {err!r}"[:300], flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    from kernels.registry import VARIANTS, variant, vendor_available

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--checks", default=CHECKS, help="batch x height x width, ';'-separated")
    ap.add_argument("--arch", default=None, help="nvcc target (default: the GPU's)")
    ap.add_argument("--rtol", type=float, default=None, help="default: the verify stage's, per precision")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench"))
    ap.add_argument("--no-time", action="store_true")
    ap.add_argument("--against", metavar="REV", help="A/B: also build each hand-written variant as of git revision "
                    "REV (its source, its registry's defines), check both, time them alternately")  # fmt: skip
    ap.add_argument("--set", metavar="NAME=VALUE[,...]", action="append",
                    help="A/B: also run each hand-written variant with these -D values in place of (or beside) its "
                    "registry's, check both, time them alternately; repeat for more builds")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=2, help="with --against or --set: alternations of the timings")
    ap.add_argument("--phases", action="store_true", help="also each build's phases (per lbl kernel, per fused phase)")
    ap.add_argument("--cubin-cache", type=Path, metavar="DIR", help="keep the run-time nvcc builds in DIR "
                    "(default: the temporary folder)")  # fmt: skip
    ap.add_argument("--prebuild", action="store_true", help="only nvcc the run-time builds into --cubin-cache, "
                    "without a GPU, and stop")  # fmt: skip
    a = ap.parse_args(argv)
    if a.against and a.set:
        ap.error("--against and --set are two kinds of A/B: give one")
    if a.prebuild and (a.against or not a.cubin_cache):
        ap.error("--prebuild fills --cubin-cache DIR (give one) with the --set and --phases builds; "
                 "--against's sides come from another revision's tree")  # fmt: skip
    if a.cubin_cache:
        import os

        from pipeline.core.gpu import CUBIN_CACHE_ENV

        os.environ[CUBIN_CACHE_ENV] = str(a.cubin_cache.resolve())
    if a.set:  # before the GPU imports: a mistyped --set fails at once, on any machine
        from pipeline.revision import parse_set

        try:
            sets = [parse_set(spec) for spec in a.set]
        except ValueError as err:
            ap.error(str(err))
        labels = [",".join(f"{k}={v}" for k, v in o.items()) for o in sets]
        if len(set(labels)) < len(labels):
            ap.error(f"--set given twice with the same values: {' | '.join(labels)}")
    names = [n for n in a.variants.split(",") if n]
    for n in names:
        try:
            variant(n)
        except ValueError as err:
            ap.error(f"{err}; hand-written: {', '.join(VARIANTS)}; generated: lbl-gen, fused-reuse-t2x7-gen-fp16, "
                     "vgg_e.first5.fused-reuse-t2x14-gen-fp16, ...")  # fmt: skip
    set_alts: dict[str, dict[str, dict]] = {}  # variant -> {label: its --set build}
    if a.set:
        from pipeline.revision import defines_with

        set_alts = {n: {lab: {"source": VARIANTS[n].source, "defines": defines_with(n, o)}
                        for lab, o in zip(labels, sets)}
                    for n in names if n in VARIANTS and VARIANTS[n].source}  # fmt: skip
    if a.prebuild:
        return prebuild(run_time_nvcc_builds(names, set_alts, a.arch or "sm_90", a.phases))
    ok, why = vendor_available()
    anchors = [n for n in names if variant(n).strategy == "vendor"]
    if not ok and anchors:
        print(f"{', '.join(anchors)} skipped: {why}")
        names = [n for n in names if n not in anchors]
    import cupy

    from pipeline.core.gpus import detect_gpus

    gpus = detect_gpus()
    arch = a.arch or (gpus[0].arch if gpus else "sm_90")
    a.out.mkdir(parents=True, exist_ok=True)
    alts: dict[str, dict[str, dict]] = {}  # variant -> {label: its other build}
    if a.against:
        from pipeline.revision import export_revision, resolve, revision_builds

        rev = resolve(a.against)[:8]
        alts = {n: {rev: b} for n, b in revision_builds(export_revision(a.against), names).items()}
        print(f"A/B against {a.against} ({rev}): {', '.join(alts) or 'no variant'} built by both; both sides compiled at run time")
        cubins = {n: None for n in names}
    elif a.set:
        alts = set_alts
        print(f"A/B with {' | '.join(labels)}: {', '.join(alts) or 'no variant'} built {len(labels) + 1} ways; all compiled "
              "at run time")  # fmt: skip
        cubins = {n: None for n in names}
    else:
        t0 = time.time()
        cubins = build_all(names, arch, a.out)
        print(f"built {len(cubins)} for {arch} in {time.time() - t0:.1f} s")
    device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    checks = check_all(names, cubins, a.checks, a.rtol, alts)
    rounds = a.rounds if alts else 1
    times = {} if a.no_time else time_all(names, cubins, a.batch, a.repeats, alts, rounds)
    phases = phases_all(names, cubins, a.batch, alts) if a.phases else {}
    (a.out / "results.json").write_text(json.dumps({"device": device, "arch": arch, "batch": a.batch, "checks": checks,
                                                    "us_per_image": times, "phases": phases}, indent=1))  # fmt: skip
    print(f"\n{device}, batch {a.batch} (us/image: median of >= {a.repeats} CUDA-event-timed launches)")
    print(f"{'variant':33s} {'max rel err':>11s} {'all passed':>10s} {'us/image':>14s}")
    for n in [label for n in names for label, _ in _sides(n, alts)]:
        mine = [r for r in checks if r["variant"] == n]
        worst = max(r["rel_l2_error"] for r in mine)
        passed = all(r["passed"] for r in mine)
        print(f"{n:33s} {worst:11.2e} {str(passed):>10s} {' / '.join(f'{v:.2f}' for v in times.get(n, [])):>14s}")
    for n, others in alts.items():  # the A/B: best of the rounds, each other build over the tree's
        ours = min(times.get(n, [float("nan")]))
        for label in others:
            theirs = min(times.get(f"{n}@{label}", [float("nan")]))
            print(f"A/B {n}: {ours:.3f} us/image here, {theirs:.3f} at {label}: {theirs / ours:.3f}x")
    return 0 if all(r["passed"] for r in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
