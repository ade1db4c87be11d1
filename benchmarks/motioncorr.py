"""Motion correction: tomoprep against RELION 3.1's own implementation, on the same simulated 4096² movies.

Simulates tilt movies with known trajectories (EER, 300 raw frames, and TIFF), then runs, one after the other
with the same number of threads, ``tomoprep motioncorr`` and ``relion_run_motioncorr --use_own`` (Debian's
RELION 3.1) on them, and prints per movie the time, the peak memory of the process and the RMS trajectory
error against the truth (pixels, after removing each trajectory's mean). Ends with one summary line.

    python benchmarks/motioncorr.py --quick        # one 4096² EER tilt (minutes)
    python benchmarks/motioncorr.py                # EER and TIFF, 3 tilts each
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from machine import describe_machine

THREADS = 2
EER_GROUP = 30  # raw EER frames per group for both programs (300 frames -> 10 groups)


def machine() -> str:
    """One line naming the machine this ran on."""
    return describe_machine(THREADS)


def simulate(folder: Path, movie_format: str, n_tilts: int) -> dict:
    """A 4096² session of ``n_tilts`` tilts; returns its truth."""
    extra = ["--frames-per-tilt", "20"] if movie_format == "tiff" else []
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tomoprep.cli",
            "simulate",
            str(folder),
            "--preset",
            "full",
            "--n-tilts",
            str(n_tilts),
            "--movie-format",
            movie_format,
            "--seed",
            "3",
            *extra,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads((folder / "truth.json").read_text())


PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
    "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def timed(command: list[str], *, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall time (s) and peak resident memory (GiB) of ``command``, run under its own parent process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *command], check=True, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    return seconds, int(done.stdout.split()[-1]) / 2**20


TOMOPREP = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(int(sys.argv[4]))
    from tomoprep.project import init_project
    from tomoprep.execution import run_step
    from tomoprep.steps import get_step
    with init_project(sys.argv[1]) as p:
        run_step(p, get_step("import"), {"mdoc": sys.argv[2] + "/*.mdoc", "movies": sys.argv[2] + "/frames"})
        run = run_step(p, get_step("motioncorr"), {"eer_frames_per_group": int(sys.argv[3]), "odd_even": False,
                                                    "dose_weighting": False, "local_motion": False})
        assert run.status == "SUCCEEDED", run.error
""")


def run_tomoprep(session: Path, work: Path) -> tuple[float, float, Path]:
    script = work / "tomoprep_run.py"
    script.write_text(TOMOPREP)
    seconds, peak = timed(
        [sys.executable, str(script), str(work / "project"), str(session), str(EER_GROUP), str(THREADS)]
    )
    return seconds, peak, work / "project" / "runs" / "002_motioncorr"


def step_seconds(run_dir: Path) -> float:
    """Time the motion-correction run itself took (its run.json), without interpreter start and import."""
    from datetime import datetime

    record = json.loads((run_dir / "run.json").read_text())
    started, finished = (datetime.fromisoformat(record[key]) for key in ("started_at", "finished_at"))
    return (finished - started).total_seconds()


def relion_input(session: Path, truth: dict, work: Path) -> Path:
    series = truth["tilt_series"][0]
    rows = "\n".join(f"{session / t['movie']} 1" for t in series["tilts"])
    star = work / "movies.star"
    star.write_text(
        "data_optics\n\nloop_\n_rlnOpticsGroupName\n_rlnOpticsGroup\n_rlnMicrographOriginalPixelSize\n_rlnVoltage\n"
        f"_rlnSphericalAberration\n_rlnAmplitudeContrast\nopticsGroup1 1 {series['pixel_spacing_angstrom']} "
        f"{series['voltage_kv']} {series['cs_mm']} {series['amplitude_contrast']}\n\n"
        f"data_movies\n\nloop_\n_rlnMicrographMovieName\n_rlnOpticsGroup\n{rows}\n"
    )
    return star


def run_relion(session: Path, truth: dict, work: Path) -> tuple[float, float, Path]:
    gain = truth["gains"][0]
    out = work / "relion"
    command = [
        "relion_run_motioncorr",
        "--i",
        str(relion_input(session, truth, work)),
        "--o",
        f"{out}/",
        "--use_own",
        "--j",
        str(THREADS),
        "--eer_grouping",
        str(EER_GROUP),
        "--bfactor",
        "150",
        "--gainref",
        str(session / gain["file"]),
        "--gain_rot",
        str(gain["rotation_deg"] // 90),
        "--gain_flip",
        {"none": "0", "y": "1", "x": "2"}[gain["flip"]],
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    seconds, peak = timed(command, env=env)
    return seconds, peak, out


def trajectory_error_px(truth: dict, star_of) -> float:
    """RMS over all frames of all movies of (estimate − truth), each about its mean, in pixels."""
    from tomoprep.io.relion_motion import read_motion_shifts

    series = truth["tilt_series"][0]
    spacing, errors = series["pixel_spacing_angstrom"], []
    for tilt in series["tilts"]:
        estimate = -read_motion_shifts(star_of(tilt))  # both programs write RELION's sign: minus the motion
        true = np.array(tilt["trajectory_angstrom"]) / spacing
        groups = len(estimate)
        # Truth is per motion fraction; average it over the raw frames of each group.
        per_frame = np.repeat(true, tilt["fraction_frames"], axis=0)
        size = len(per_frame) // groups
        grouped = np.array(
            [per_frame[i * size : (i + 1) * size if i < groups - 1 else None].mean(0) for i in range(groups)]
        )
        errors.append((estimate - estimate.mean(0)) - (grouped - grouped.mean(0)))
    stacked = np.concatenate(errors)
    return float(np.sqrt((stacked**2).sum(axis=1).mean()))


def compare(movie_format: str, n_tilts: int, root: Path) -> dict[str, tuple[float, float, float]]:
    session = root / f"session_{movie_format}"
    truth = simulate(session, movie_format, n_tilts)
    n = len(truth["tilt_series"][0]["tilts"])
    results = {}
    work = root / f"tomoprep_{movie_format}"
    work.mkdir()
    seconds, peak, run_dir = run_tomoprep(session, work)
    name = truth["tilt_series"][0]["name"]
    error = trajectory_error_px(truth, lambda t: run_dir / name / (Path(t["movie"]).name.rsplit(".", 1)[0] + ".star"))
    results["tomoprep"] = (seconds / n, peak, error)
    results["tomoprep (step only)"] = (step_seconds(run_dir) / n, peak, error)
    if shutil.which("relion_run_motioncorr"):
        work = root / f"relion_{movie_format}"
        work.mkdir()
        seconds, peak, out = run_relion(session, truth, work)
        results["relion"] = (
            seconds / n,
            peak,
            trajectory_error_px(
                # RELION names its outputs after the movie with every dot but the suffix's turned into "_".
                truth,
                lambda t: next(out.rglob(Path(t["movie"]).name.rsplit(".", 1)[0].replace(".", "_") + ".star")),
            ),
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one 4096² EER tilt only")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="tomoprep_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    cases = [("eer", 1)] if args.quick else [("eer", 3), ("tiff", 3)]
    print(f"{'movie':6} {'program':21} {'s/movie':>8} {'peak GiB':>9} {'traj RMS px':>12}")
    summary = {}
    for movie_format, n_tilts in cases:
        for program, (seconds, peak, error) in compare(movie_format, n_tilts, root).items():
            print(f"{movie_format:6} {program:21} {seconds:8.1f} {peak:9.2f} {error:12.3f}")
            summary.setdefault(program, []).append((seconds, error))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    ours = summary["tomoprep"][0]
    if "relion" in summary:
        theirs = summary["relion"][0]
        print(
            f"motioncorr: tomoprep {ours[0]:.1f} s, {ours[1]:.3f} px; relion {theirs[0]:.1f} s, {theirs[1]:.3f} px; "
            f"speedup {theirs[0] / ours[0]:.2f}"
        )
    else:
        print(f"motioncorr: tomoprep {ours[0]:.1f} s, {ours[1]:.3f} px; relion not installed")


if __name__ == "__main__":
    main()
