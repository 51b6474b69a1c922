"""kohya's `N_name` folder convention (`10_tech phone`: its images repeat 10 times, named "tech phone").
In config/ because a dataset TOML is checked against it when the config is read; data/ reads repeats with
it."""

from __future__ import annotations

import re

_REPEATS_FOLDER = re.compile(r"^(\d+)_(.+)$")


def repeats_from_folder(folder_name: str) -> tuple[int, str] | None:
    """``10_tech phone`` -> (10, "tech phone"); None for other names (and for 0_ or fewer repeats)."""
    match = _REPEATS_FOLDER.match(folder_name)
    if match is None or int(match.group(1)) < 1:
        return None
    return int(match.group(1)), match.group(2)
