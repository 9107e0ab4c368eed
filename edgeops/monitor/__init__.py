"""Watching a deployed model: drift statistics against the reference data profile.

:class:`DriftMonitor` bins what a model sees on the device into the histograms of
its reference profile and reports PSI, KS and Wasserstein distance per input; the
functions below it work on any pair of binned distributions; :func:`monitor_model` sets one up for
a model from the reference profile next to it (what the agent does).
"""

from .drift import DriftMonitor, ks_from_counts, monitor_model, psi, psi_level, wasserstein_from_counts

__all__ = ["DriftMonitor", "monitor_model", "psi", "psi_level", "ks_from_counts", "wasserstein_from_counts"]
