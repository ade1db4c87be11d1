"""Which tilt each row of an alignment file made elsewhere (IMOD ``.xf``/``.tlt``/``.xtilt``, AreTomo ``.aln``)
describes.

IMOD lists one row per section of the stack it aligned, in stack order; AreTomo's ``.aln`` rows carry the stack
section in their ``SEC`` column (see :mod:`tomoprep.io.aretomo`). The stack order of a tilt series is:

- for a series imported from a stack (every ``TiltImage.stack_path`` set): ``section_index``, the position of the
  tilt in that stack;
- otherwise (tilt images from motion correction, which tomoprep stacks itself when it runs or exports to IMOD and
  AreTomo): the tilts sorted by nominal tilt angle, ties broken by acquisition order, as RELION 5 sorts the
  stack it gives IMOD.

A file may describe all tilts of that order or only the included ones (excluded tilts left out of the stack).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tomoprep.errors import InputError
from tomoprep.model import TiltImage


def stack_order(tilts: Sequence[TiltImage]) -> list[TiltImage]:
    """All tilts (excluded ones included) in the order of the stack an external aligner sees.

    Parameters
    ----------
    tilts
        The tilts of one series, in any order.

    Returns
    -------
    list of TiltImage
        By ``section_index`` when every tilt comes from a stack, otherwise by nominal tilt angle (then
        acquisition index).

    Raises
    ------
    ValueError
        If only some tilts come from a stack (a series is imported one way or the other), or if two
        stack tilts share a section index.
    """
    from_stack = [t.acquisition.stack_path is not None for t in tilts]
    if all(from_stack) and tilts:
        ordered = sorted(tilts, key=lambda t: t.acquisition.section_index)
        sections = [t.acquisition.section_index for t in ordered]
        if len(set(sections)) != len(sections):
            raise ValueError(f"tilts share a stack section index: {sections}.")
        return ordered
    if any(from_stack):
        raise ValueError("only some tilts come from a stack; stack order is undefined for a mixed series.")
    return sorted(tilts, key=lambda t: (t.acquisition.nominal_tilt_angle_deg, t.acquisition.acquisition_index))


def views_in_file_order(tilts: Sequence[TiltImage], *, n_rows: int, path: Path | str) -> list[TiltImage]:
    """The tilt each row of an IMOD or AreTomo alignment file describes, row by row.

    Parameters
    ----------
    tilts
        The tilts of one series, in any order, excluded ones included.
    n_rows
        Number of views the file lists (rows of an ``.xf``/``.tlt``/``.xtilt``, sections of the stack an
        ``.aln`` refers to).
    path
        The file, named in the error.

    Returns
    -------
    list of TiltImage
        :func:`stack_order` of all tilts when the file lists them all, otherwise of the included tilts only.

    Raises
    ------
    InputError
        If ``n_rows`` is neither the number of tilts nor the number of included tilts.
    """
    ordered = stack_order(tilts)
    if n_rows == len(ordered):
        return ordered
    included = [t for t in ordered if not t.excluded]
    if n_rows == len(included):
        return included
    raise InputError(
        path,
        f"lists {n_rows} views, but the tilt series has {len(ordered)} tilts, {len(included)} of them included.",
        "give the alignment file made for this tilt series (one row per tilt, or per included tilt, in stack order).",
    )
