"""Kinds of data: what a step needs from its input run and what it makes, the contract between steps.

A step names the kinds of data it reads (``Step.needs``) and adds (``Step.makes``), never other steps, so a new
step fits the workflow without editing the others. A run holds the kinds its step needs (read from the input run
and carried on in the tilt-series set it writes), those it makes, and every other kind its input run holds: a
cleaning of an aligned series keeps the alignment. A kind the step may make is its own in the output: made anew,
or, where its options leave it out, not there. The runner takes as input the newest successful run that holds every
kind a step needs (:mod:`tomoprep.execution.inputs`).

A kind is a short name. The built-in ones are below; a plugin step may use them or name kinds of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

Kind = str

#: Tilt angles, dose, optics and acquisition order of each tilt series: every run holds it.
TILT_SERIES: Final = "tilt_series"
#: The raw movies of the tilts (an import of movies with their mdoc files).
MOVIES: Final = "movies"
#: One image per tilt: motion-corrected sums, or the sections of an imported tilt stack.
TILT_IMAGES: Final = "tilt_images"
#: Sums of the odd and of the even frames of each movie (for Noise2Noise denoising).
ODD_EVEN: Final = "odd_even"
#: Tilts judged bad (dark, shifted, blurred, or by hand), flagged with their reason.
EXCLUSIONS: Final = "exclusions"
#: Each tilt's pose (tilt axis, tilt angle, shifts) and the specimen's thickness.
ALIGNMENT: Final = "alignment"
#: Defocus, astigmatism and fit of each tilt, and the series' defocus hand.
CTF: Final = "ctf"
#: Reconstructed volumes, one per binning, with their odd/even halves and denoised copies (reconstruct).
TOMOGRAMS: Final = "tomograms"

#: How each built-in kind is named in messages and docs.
DESCRIPTIONS: Final[dict[Kind, str]] = {
    TILT_SERIES: "tilt-series metadata",
    MOVIES: "movies",
    TILT_IMAGES: "tilt images",
    ODD_EVEN: "odd/even sums",
    EXCLUSIONS: "exclusions",
    ALIGNMENT: "alignment",
    CTF: "CTF",
    TOMOGRAMS: "tomograms",
}

#: Kinds computed from others: a step that makes any kind on the right makes the kind on the left stale, so it
#: does not take as input a run that holds it (its output would carry a value computed from images it replaced).
#: Exclusions are not among them: they are judgements about tilts, kept when the images are made again (a new
#: cleaning judges them again).
DERIVED_FROM: Final[dict[Kind, frozenset[Kind]]] = {
    ALIGNMENT: frozenset({TILT_IMAGES}),
    CTF: frozenset({TILT_IMAGES}),
    TOMOGRAMS: frozenset({TILT_IMAGES, EXCLUSIONS, ALIGNMENT, CTF}),
}


def made_stale_by(made: Iterable[Kind]) -> frozenset[Kind]:
    """The kinds that a step making ``made`` leaves stale in its input (directly or through other stale kinds),
    those it makes again excepted."""
    made = frozenset(made)
    stale: set[Kind] = set()
    grew = True
    while grew:
        grew = False
        for kind, sources in DERIVED_FROM.items():
            if kind not in stale and sources & (made | stale):
                stale.add(kind)
                grew = True
    return frozenset(stale - made)


def describe(kinds: Iterable[Kind]) -> str:
    """``kinds`` in words, in the order of :data:`DESCRIPTIONS` (others after, by name): ``movies, tilt images``."""
    order = list(DESCRIPTIONS)
    ranked = sorted(set(kinds), key=lambda k: (order.index(k) if k in DESCRIPTIONS else len(order), k))
    return ", ".join(DESCRIPTIONS.get(kind, kind) for kind in ranked) or "nothing"
