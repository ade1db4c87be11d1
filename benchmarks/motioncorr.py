"""Motion correction: tomoprep against RELION 3.1's own implementation, on the same simulated 4096² movies.

Simulates tilt movies with known trajectories (EER, 300 raw frames, and TIFF), imports them into a tomoprep
project (not timed, as RELION is handed its movie list), then runs in turn, with the same number of threads,
``tomoprep motioncorr`` (the command, in a fresh process) and ``relion_run_motioncorr --use_own`` (Debian's
RELION 3.1), alternating ``--repeats`` times. Prints per movie the median wall time of each program's process,
its peak memory and the RMS trajectory error against the truth (pixels, after removing each trajectory's mean),
and ends with one summary line.

    python benchmarks/motioncorr.py --quick        # one 4096² EER tilt (minutes)
    python benchmarks/motioncorr.py                # EER and TIFF: sessions of 2 series of 8 tilts
    python benchmarks/motioncorr.py --jitter       # TIFF movies whose trajectories jitter: 1.1 e⁻/px per frame,
                                                   # a random walk of 0.8 px per frame on top of the drift

The jitter case is the one where a trajectory model that smooths regardless of the evidence fails: 10 frames of
4096² at 3.8 e⁻/Å² (1.1 e⁻ per pixel and frame at 1.7 Å), whose motion has a random-walk jitter of 1 Å per axis
and frame (``tomoprep simulate --jitter-step-angstrom 1``) on top of the settling and drift.

A session of several series (``--series``) holds the simulated series and copies of it under other names (the
movies linked, the mdoc renamed): each program processes every movie of the session in one run, as it would a
real session, without simulating more movies.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe_machine

THREADS = 2
EER_GROUP = 30  # raw EER frames per group for both programs (300 frames -> 10 groups)
#: Simulation options of each case beyond the preset's: the format and, for the jitter case, a jittery motion.
CASES = {
    "eer": ["--movie-format", "eer"],
    "tiff": ["--movie-format", "tiff", "--frames-per-tilt", "20"],
    "tiff-jitter": [
        "--movie-format",
        "tiff",
        "--frames-per-tilt",
        "10",
        "--dose-per-tilt-e-per-angstrom2",
        "3.8",
        "--jitter-step-angstrom",
        "1.0",
    ],
}


def machine() -> str:
    """One line naming the machine this ran on."""
    return describe_machine(THREADS)


def simulate(folder: Path, case: str, n_tilts: int) -> dict:
    """A 4096² session of ``n_tilts`` tilts of a case of :data:`CASES`; returns its truth. A session already there
    (``--keep``) is reused."""
    truth = folder / "truth.json"
    if truth.exists() and len(json.loads(truth.read_text())["tilt_series"][0]["tilts"]) == n_tilts:
        return json.loads(truth.read_text())
    shutil.rmtree(folder, ignore_errors=True)
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
            "--seed",
            "3",
            *CASES[case],
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads((folder / "truth.json").read_text())


def replicate(session: Path, truth: dict, n_series: int) -> dict:
    """The session grown to ``n_series`` tilt series: the simulated one and copies named TS_02, TS_03, ... (the
    mdoc rewritten, the movies linked), as a session of several series is processed in one run; returns the
    truth with every series."""
    first = truth["tilt_series"][0]
    mdoc = (session / first["mdoc"]).read_text()
    every = [first]
    for k in range(2, n_series + 1):
        name = f"TS_{k:02d}"
        (session / first["mdoc"].replace(first["name"], name)).write_text(mdoc.replace(first["name"], name))
        tilts = []
        for tilt in first["tilts"]:
            movie = tilt["movie"].replace(first["name"], name)
            if not (session / movie).exists():
                (session / movie).symlink_to((session / tilt["movie"]).name)
            tilts.append({**tilt, "movie": movie})
        every.append({**first, "name": name, "tilts": tilts})
    return {**truth, "tilt_series": every}


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


def prepare_tomoprep(session: Path, work: Path) -> Path:
    """A project with the session imported (not timed: RELION is given its movie list ready-made)."""
    project = work / "project"
    for args in (
        ["init", str(project)],
        ["import", "-p", str(project), "--mdoc", f"{session}/*.mdoc", "--movies", f"{session}/frames"],
    ):
        subprocess.run([sys.executable, "-m", "tomoprep.cli", *args], check=True, stdout=subprocess.DEVNULL)
    return project


def run_tomoprep(project: Path) -> tuple[float, float, Path]:
    """``tomoprep motioncorr`` as a user runs it (a fresh process: Python, torch and all), timed."""
    before = set(project.glob("runs/*_motioncorr"))
    command = [
        sys.executable,
        "-m",
        "tomoprep.cli",
        "motioncorr",
        "-p",
        str(project),
        "--eer-frames-per-group",
        str(EER_GROUP),
        "--no-odd-even",
        "--no-dose-weighting",
        "--no-local-motion",
    ]
    seconds, peak = timed(command, env=dict(os.environ, OMP_NUM_THREADS=str(THREADS)))
    (run_dir,) = set(project.glob("runs/*_motioncorr")) - before
    return seconds, peak, run_dir


def step_seconds(run_dir: Path) -> float:
    """Time the motion-correction run itself took (its run.json), without interpreter start and import."""
    from datetime import datetime

    record = json.loads((run_dir / "run.json").read_text())
    started, finished = (datetime.fromisoformat(record[key]) for key in ("started_at", "finished_at"))
    return (finished - started).total_seconds()


def relion_input(session: Path, truth: dict, work: Path) -> Path:
    series = truth["tilt_series"][0]
    rows = "\n".join(f"{session / t['movie']} 1" for ts in truth["tilt_series"] for t in ts["tilts"])
    star = work / "movies.star"
    star.write_text(
        "data_optics\n\nloop_\n_rlnOpticsGroupName\n_rlnOpticsGroup\n_rlnMicrographOriginalPixelSize\n_rlnVoltage\n"
        f"_rlnSphericalAberration\n_rlnAmplitudeContrast\nopticsGroup1 1 {series['pixel_spacing_angstrom']} "
        f"{series['voltage_kv']} {series['cs_mm']} {series['amplitude_contrast']}\n\n"
        f"data_movies\n\nloop_\n_rlnMicrographMovieName\n_rlnOpticsGroup\n{rows}\n"
    )
    return star


def run_relion(session: Path, truth: dict, work: Path, repeat: int) -> tuple[float, float, Path]:
    gain = truth["gains"][0]
    out = work / f"relion_{repeat}"  # a fresh folder: RELION skips the movies already done in its output
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

    errors = []
    for series, tilt in ((ts, t) for ts in truth["tilt_series"] for t in ts["tilts"]):
        spacing = series["pixel_spacing_angstrom"]
        estimate = -read_motion_shifts(star_of(series, tilt))  # both write RELION's sign: minus the motion
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


def compare(case: str, n_tilts: int, n_series: int, root: Path, repeats: int) -> dict[str, tuple[float, float, float]]:
    """Per program: median seconds per movie over ``repeats`` alternating runs, peak GiB, trajectory error."""
    session = root / f"session_{case}"
    truth = replicate(session, simulate(session, case, n_tilts), n_series)
    n = sum(len(series["tilts"]) for series in truth["tilt_series"])
    work = root / f"tomoprep_{case}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(root / f"relion_{case}", ignore_errors=True)
    work.mkdir()
    (root / f"relion_{case}").mkdir()
    project = prepare_tomoprep(session, work)
    relion = shutil.which("relion_run_motioncorr") is not None
    times: dict[str, list[float]] = {"tomoprep": [], "tomoprep (step only)": [], "relion": []}
    peaks: dict[str, float] = {}
    errors: dict[str, float] = {}
    for repeat in range(repeats):
        seconds, peak, run_dir = run_tomoprep(project)
        times["tomoprep"].append(seconds / n)
        times["tomoprep (step only)"].append(step_seconds(run_dir) / n)
        peaks["tomoprep"] = peaks["tomoprep (step only)"] = max(peak, peaks.get("tomoprep", 0.0))
        errors["tomoprep"] = errors["tomoprep (step only)"] = trajectory_error_px(
            truth, lambda ts, t, d=run_dir: d / ts["name"] / (Path(t["movie"]).name.rsplit(".", 1)[0] + ".star")
        )
        if relion:
            seconds, peak, out = run_relion(session, truth, root / f"relion_{case}", repeat)
            times["relion"].append(seconds / n)
            peaks["relion"] = max(peak, peaks.get("relion", 0.0))
            # RELION names its outputs after the movie with every dot but the suffix's turned into "_".
            errors["relion"] = trajectory_error_px(
                truth,
                lambda ts, t, o=out: next(o.rglob(Path(t["movie"]).name.rsplit(".", 1)[0].replace(".", "_") + ".star")),
            )
    return {
        program: (float(np.median(values)), peaks[program], errors[program])
        for program, values in times.items()
        if values
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one 4096² EER tilt only")
    parser.add_argument(
        "--jitter", action="store_true", help="only TIFF movies with jittery trajectories (module notes)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    parser.add_argument("--tilts", type=int, default=8, help="tilts per series without --quick (default 8)")
    parser.add_argument(
        "--series", type=int, default=2, help="tilt series in the session without --quick: copies of one (default 2)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each program, alternating (median)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="tomoprep_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    if args.quick:
        cases = [("eer", 1, 1)]
    elif args.jitter:
        cases = [("tiff-jitter", args.tilts, args.series)]
    else:
        cases = [("eer", args.tilts, args.series), ("tiff", args.tilts, args.series)]
    print(f"{'movie':11} {'program':21} {'s/movie':>8} {'peak GiB':>9} {'traj RMS px':>12}")
    summary = {}
    for case, n_tilts, n_series in cases:
        for program, (seconds, peak, error) in compare(case, n_tilts, n_series, root, args.repeats).items():
            print(f"{case:11} {program:21} {seconds:8.1f} {peak:9.2f} {error:12.3f}")
            summary.setdefault(program, []).append((seconds, error))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    print(f"(median of {args.repeats} alternating runs each; per movie: a program's wall time / movies)")
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
