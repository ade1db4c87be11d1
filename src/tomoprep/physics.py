"""Physical constants and the relations between them that several layers use (no dependencies)."""

from __future__ import annotations

import math

PLANCK_J_S = 6.62607015e-34
ELECTRON_MASS_KG = 9.1093837015e-31
ELEMENTARY_CHARGE_C = 1.602176634e-19
SPEED_OF_LIGHT_M_S = 299792458.0
#: Rest energy of the electron, eV.
REST_ENERGY_EV = ELECTRON_MASS_KG * SPEED_OF_LIGHT_M_S**2 / ELEMENTARY_CHARGE_C


def electron_wavelength_angstrom(voltage_kv: float) -> float:
    """Relativistic electron wavelength, Å (0.01969 Å at 300 kV)."""
    volts = voltage_kv * 1e3
    momentum = math.sqrt(2 * ELECTRON_MASS_KG * ELEMENTARY_CHARGE_C * volts * (1 + volts / (2 * REST_ENERGY_EV)))
    return PLANCK_J_S / momentum * 1e10
