# Experiment (perf-notes step 12): fused-reuse-t4 with clusters of 2 and 4 column strips sharing pool1
# columns through DSMEM (-DXREUSE=<cluster size>), against the strip-recompute kernel, on one GPU.
# Run from the repo root on a GPU machine: PYTHONPATH=. python3 kernels/experiments/xreuse_ab.py
import os, sys, time, json
sys.path.insert(0, os.getcwd())
import numpy as np, cupy
from kernels.api import make_forward
from kernels.cluster_launch import max_active_clusters
from pipeline.reference import forward as ref_forward
from pipeline.verify import compare
from pipeline.phases import _median_us, fused_phase_names
res = {"correct": [], "time": {}, "phases": {}, "clusters": {}}
for cs in (2, 4):
    X = (("XREUSE", cs),)
    for b, h, w in ((2, 227, 227), (2, 200, 257)):
        try:
            f = make_forward("fused-reuse-t4", b, h, w, seed=5, defines=X)
        except ValueError as e:
            print("skip", cs, h, w, e); continue
        x = f.random_input(7); f.output.fill(cupy.nan)
        out = cupy.asnumpy(f(x)); cupy.cuda.Device().synchronize()
        rp = {k: (wt.astype(np.float64), bs.astype(np.float64)) for k, (wt, bs) in f.params.items()}
        c = compare(out, ref_forward(f.layers, cupy.asnumpy(x).astype(np.float64), rp)); c.update(cs=cs, h=h, w=w)
        print("verify", c, flush=True); res["correct"].append(c)
B = 128
fw = {"reuse-t4": make_forward("fused-reuse-t4", B, seed=1)}
for cs in (2, 4):
    fw[f"x{cs}-t4"] = make_forward("fused-reuse-t4", B, seed=1, defines=(("XREUSE", cs),))
    f = fw[f"x{cs}-t4"]
    res["clusters"][cs] = max_active_clusters(f._kern, f.grid, (256, 1, 1), f.cluster, f.smem_bytes)
    print("max active clusters", cs, res["clusters"][cs], "SMs", cupy.cuda.Device().attributes["MultiProcessorCount"], flush=True)
inputs = [fw["reuse-t4"].random_input(i) for i in range(3)]
for rnd in range(2):
    for name, f in fw.items():
        us = _median_us(lambda i: f(inputs[i % 3]), 30) / B
        res["time"].setdefault(name, []).append(us); print(f"round {rnd} {name}: {us:.2f} us/img", flush=True)
names = fused_phase_names()
for cs in (0, 2):
    d = (("PHASE_TIMING", 1),) + ((("XREUSE", cs),) if cs else ())
    inst = make_forward("fused-reuse-t4", B, seed=1, defines=d)
    ctr = cupy.ndarray((len(names) + 1,), cupy.uint64, inst.module.get_global("fused_phase_cycles"))
    for i in range(5): inst(inputs[i % 3])
    ctr.fill(0)
    for i in range(20): inst(inputs[i % 3])
    cupy.cuda.Device().synchronize()
    c = ctr.get().astype(float)
    res["phases"][cs] = {n: round(v / c[-1], 0) for n, v in zip(names, c[:-1])}  # cycles per block
    print("cycles per block, cluster", cs, res["phases"][cs], flush=True)
json.dump(res, open(os.environ.get("OUT", "/tmp") + "/xreuse_ab2.json", "w"), indent=1)
