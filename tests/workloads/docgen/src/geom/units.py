"""Length units and conversions between them."""

# Metres per unit.
FACTORS = {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0, "in": 0.0254, "ft": 0.3048}


def convert(value, from_unit, to_unit="m"):
    """`value` in `from_unit`, expressed in `to_unit`.

    Raises KeyError for a unit not in FACTORS.
    """
    return value * FACTORS[from_unit] / FACTORS[to_unit]


def units():
    """The known unit names, sorted."""
    return sorted(FACTORS)


def _check(unit):
    return unit in FACTORS
