"""The suite's own scheduling list names real test files (a renamed file would silently run last)."""

from pathlib import Path

from suite_order import LONGEST_FIRST

ROOT = Path(__file__).parents[1]


def test_every_file_started_first_exists():
    missing = [name for name in LONGEST_FIRST if not (ROOT / name).is_file()]
    assert not missing, f"tests/suite_order.py LONGEST_FIRST names files that are not there: {missing}"
