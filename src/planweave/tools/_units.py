"""Unit conversion with pint's unit registry (lengths, masses, temperatures, speeds, data…).

Unit names are parsed by pint's own expression parser (no Python ``eval``), and kept short. The
registry is built once per process, on the first conversion, since loading its definitions
takes a fraction of a second.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

from planweave.errors import ToolError
from planweave.tools._decorator import tool

if TYPE_CHECKING:
    import pint

__all__ = ["unit_convert"]

MAX_UNIT_CHARS = 100
_lock = threading.Lock()
_registry: pint.UnitRegistry[Any] | None = None


def _units() -> pint.UnitRegistry[Any]:
    global _registry
    with _lock:
        if _registry is None:
            import pint

            _registry = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
        return _registry


@tool(sandbox="pure computation with pint's unit definitions; unit names of at most 100 characters")
def unit_convert(value: float, from_unit: str, to_unit: str) -> dict[str, Any]:
    """Convert a quantity from one unit to another, e.g. 5 km to mile, 100 degF to degC,
    60 mph to km/h, 3 GiB to MB.

    Args:
        value: The number to convert.
        from_unit: Its unit, e.g. "km", "degF", "kWh", "mile/hour".
        to_unit: The unit wanted, of the same kind.
    """
    import pint

    if not math.isfinite(value):
        raise ToolError("value must be a finite number")
    for name in (from_unit, to_unit):
        if not name.strip() or len(name) > MAX_UNIT_CHARS:
            raise ToolError(f"a unit must be 1 to {MAX_UNIT_CHARS} characters, got {name!r}")
    units = _units()
    try:
        converted = units.Quantity(value, from_unit.strip()).to(to_unit.strip())
    except pint.errors.DimensionalityError as exc:
        raise ToolError(
            f"cannot convert {from_unit!r} to {to_unit!r}: they measure different things ({exc})"
        ) from None
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError) as exc:
        raise ToolError(f"unknown unit: {exc}") from None
    except (pint.errors.PintError, ValueError, TypeError, AttributeError, SyntaxError) as exc:
        raise ToolError(f"cannot convert {from_unit!r} to {to_unit!r}: {exc}") from None
    magnitude = float(converted.magnitude)
    if not math.isfinite(magnitude):
        raise ToolError("the result is not a finite number")
    unit = f"{converted.units:~}" or str(converted.units)
    return {"value": magnitude, "unit": str(converted.units), "text": f"{magnitude:.6g} {unit}"}
