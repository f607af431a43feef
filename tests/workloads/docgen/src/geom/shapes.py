"""Plane shapes and their measures.

Every shape answers `area()` and `perimeter()` in the units its sides were given in.
"""

import math


class Circle:
    """A circle of a given radius."""

    def __init__(self, radius):
        self.radius = radius

    def area(self):
        """The area, pi r squared."""
        return math.pi * self.radius**2

    def perimeter(self):
        """The circumference, 2 pi r."""
        return 2 * math.pi * self.radius


class Rectangle:
    """An axis-aligned rectangle.

    A square is a rectangle whose sides are equal; see `square`.
    """

    def __init__(self, width, height):
        self.width = width
        self.height = height

    def area(self):
        """Width times height."""
        return self.width * self.height

    def perimeter(self):
        """Twice the sum of the sides."""
        return 2 * (self.width + self.height)

    def _scaled(self, k):
        # private: not documented
        return Rectangle(self.width * k, self.height * k)


def square(side):
    """A Rectangle with both sides equal to `side`."""
    return Rectangle(side, side)


def total_area(shapes, *, skip_empty=True):
    """The sum of the areas of `shapes`.

    Shapes whose area is zero are skipped when `skip_empty` is true.
    """
    return sum(s.area() for s in shapes if s.area() or not skip_empty)
