"""Tests for l3loc.external_tables: the right-level rule."""
import math

from l3loc.external_tables import right_level


def test_right_level_inside_the_body_or_within_10mm():
    assert right_level(300.0, 316.3, 330.4, 302.1)          # 2.1 mm below the inferior endplate
    assert not right_level(296.0, 316.3, 330.4, 302.1)      # 6.1 mm below it
    assert right_level(335.4, 316.3, 330.4, 302.1)
    assert right_level(326.0, 316.3) and not right_level(327.0, 316.3)
    assert not right_level(math.nan, 316.3)
