"""One error family for everything a user can get wrong.

Each error is a sentence: what is wrong, where, and what to do. The CLI prints ``str(err)`` on one line and
exits with code 2; the traceback is shown only with ``--debug``.
"""

from __future__ import annotations


class LoraScriptsError(Exception):
    """Base class: a problem the user can fix. ``hint`` says what to do."""

    exit_code = 2

    def __init__(self, what: str, hint: str | None = None):
        self.what = what.rstrip(".")
        self.hint = hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.what}. {self.hint}" if self.hint else self.what
        return text if text.endswith((".", "?", "!")) else text + "."


class ConfigError(LoraScriptsError):
    """The YAML config or a command-line option is wrong."""


class DataError(LoraScriptsError):
    """Training images, captions or metadata.csv are wrong."""


class ModelError(LoraScriptsError):
    """The base model is missing, unreadable or of a family we cannot train."""


class FormatError(LoraScriptsError):
    """A LoRA or checkpoint file is not in a format we can read or write."""


class OutputError(LoraScriptsError):
    """The output folder cannot be written."""


class TrainingError(LoraScriptsError):
    """Training itself went wrong in a way the user can act on (NaN loss, out of disk)."""
