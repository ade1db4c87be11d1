"""A small real project for the tests of what reads projects (workflow, report, web UI): two 5-tilt MRC stacks of
noise with their .rawtlt files, imported, then cleaned by hand."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np

ANGLES_DEG = (-6.0, -3.0, 0.0, 3.0, 6.0)
NAMES = ("TS_A", "TS_B")
#: The tilts the cleaning excludes by hand, by acquisition index.
EXCLUDED = "TS_A:1;TS_B:0,4"


def write_stacks(folder: Path) -> str:
    """Write the stacks into ``folder`` (made); return the glob that names them."""
    folder.mkdir(parents=True)
    for seed, name in enumerate(NAMES):
        with mrcfile.new(folder / f"{name}.mrc") as mrc:
            mrc.set_data(np.random.default_rng(seed).normal(10.0, 1.0, (len(ANGLES_DEG), 32, 32)).astype(np.float32))
            mrc.voxel_size = 2.5
        (folder / f"{name}.rawtlt").write_text("".join(f"{a}\n" for a in ANGLES_DEG))
    return str(folder / "*.mrc")


def import_params(glob: str) -> dict[str, object]:
    """The import's parameters for the stacks of ``glob``."""
    return {"stack": glob, "tilt_axis_angle_deg": 85.0, "dose_per_tilt_e_per_angstrom2": 3.0}


def build_project(folder: Path) -> Path:
    """A project in ``folder/project``: run 001 imports the stacks, run 002 cleans them by hand (no automatic
    tests). Returns the project root."""
    from tomoprep.execution import run_step
    from tomoprep.project import init_project
    from tomoprep.steps import get_step

    glob = write_stacks(folder / "stacks")
    root = folder / "project"
    with init_project(root) as project:
        assert run_step(project, get_step("import"), import_params(glob)).status == "SUCCEEDED"
        cleaned = run_step(project, get_step("clean"), {"auto": False, "exclude": EXCLUDED})
        assert cleaned.status == "SUCCEEDED", cleaned.error
    return root


#: The steps of :func:`build_processed_project` with their parameters: small and quick, not accurate.
PROCESSING = (
    ("motioncorr", {"local_motion": False, "odd_even": False, "dose_weighting": False}),
    ("clean", {"auto": False, "exclude": "TS_01:5"}),
    ("align", {"working_size_px": 128, "matching_iterations": 1}),
    ("ctf", {"tile_px": 128}),
)


def build_processed_project(folder: Path) -> Path:
    """A project in ``folder/project`` from a tiny simulated session (one series of 7 movies of 3 frames, from
    -30° to +30°): 001 import, 002 motioncorr, 003 clean (acquisition 5, at +30°, excluded by hand), 004 align,
    005 ctf. About a minute. Returns the project root."""
    from tomoprep.execution import run_step
    from tomoprep.project import init_project
    from tomoprep.simulate.params import SimulateParams
    from tomoprep.simulate.session import simulate_session
    from tomoprep.steps import get_step

    session = folder / "session"
    simulate_session(session, SimulateParams(preset="tiny", n_tilts=7, frames_per_tilt=3, seed=1))
    root = folder / "project"
    imported = {"mdoc": str(session / "*.mdoc"), "movies": session / "frames", "gain": session / "gain_A.mrc"}
    with init_project(root) as project:
        for name, params in (("import", imported), *PROCESSING):
            run = run_step(project, get_step(name), params)
            assert run.status == "SUCCEEDED", f"{name}: {run.error}"
    return root
