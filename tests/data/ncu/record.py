"""Record the ncu parser fixtures in this folder (run on a GPU machine with ncu, from the repo root):

    python tests/data/ncu/record.py [OUTDIR]

Profiles the two-kernel self-test forward (pipeline/stages/profile_target.py, batch 2, 64x64: 8192
pixels, 3 FLOPs each) in range replay and kernel replay exactly as the profile rule does, and
keeps the two .ncu-rep files, ncu's own CSV export of each, the profile.json and a meta.json
with the known answers. The files are small (tens of KB).
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from pipeline import ncu  # noqa: E402

BATCH, HEIGHT, WIDTH = 2, 64, 64


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng, krn = out / "selftest_range.ncu-rep", out / "selftest_kernels.ncu-rep"
    res = ncu.profile("selftest", BATCH, rng, krn, height=HEIGHT, width=WIDTH, warmup=2,
                      factory="pipeline.stages.profile_target:make_selftest_forward", log_file=out / "ncu.log")
    (out / "selftest_profile.json").write_text(json.dumps(res, indent=1))
    for rep in (rng, krn):
        csv = subprocess.run(ncu.export_csv_command(rep, ncu.find_ncu()), capture_output=True, text=True, check=True)
        rep.with_suffix(".csv").write_text(csv.stdout)
    meta = {"batch": BATCH, "height": HEIGHT, "width": WIDTH, "pixels": BATCH * HEIGHT * WIDTH,
            "flops_per_image": 3 * HEIGHT * WIDTH, "ncu_version": res.get("ncu_version"),
            "cache_control": res.get("cache_control"), "clock_control": res.get("clock_control")}
    (out / "selftest_meta.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(res, indent=1)[:3000])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
