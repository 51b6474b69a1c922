"""The console quiets the libraries' own warnings, not everybody's."""

from __future__ import annotations

import logging
import warnings

import pytest

from lora_scripts.console import setup_logging


@pytest.fixture()
def quiet_console():
    """setup_logging(debug=False) with the warnings it issues recorded; logging and filters put back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with warnings.catch_warnings(record=True) as seen:
            setup_logging(debug=False)
            yield seen
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _library_warning(module: str, category: type[Warning], text: str) -> None:
    warnings.warn_explicit(text, category, f"{module.replace('.', '/')}.py", 1, module=module)


def test_library_warnings_are_quiet_but_the_users_own_show(quiet_console):
    _library_warning("diffusers.models.attention", FutureWarning, "library deprecation")
    _library_warning("torch.nn.modules.module", UserWarning, "library internals")
    _library_warning("lora_scripts.models.sd", FutureWarning, "a library deprecation at our call site")
    warnings.warn("the user's own warning", UserWarning, stacklevel=1)
    _library_warning("my_project.pipeline", RuntimeWarning, "the user's own runtime warning")
    _library_warning("torchaudio_fork", UserWarning, "a module that only starts like torch")
    shown = {str(w.message) for w in quiet_console}
    assert shown == {
        "the user's own warning",
        "the user's own runtime warning",
        "a module that only starts like torch",
    }
