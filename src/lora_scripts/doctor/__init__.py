"""The dataset doctor: everything about a training folder that is worth a human look before training."""

from .report import DoctorReport, Finding
from .run import run_doctor

__all__ = ["DoctorReport", "Finding", "run_doctor"]
