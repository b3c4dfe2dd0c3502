"""The engine's progress callback, mapped to one progress bar for a whole step of several methods.

The engine reports (phase, fraction of that phase, message) per method. A method's share of the bar is
its expected cost (a VAE makes a stage several times longer), and within a method the phases take fixed
slices; the bar shows the sum over methods (which may run at once), so it only moves forward.
"""
from __future__ import annotations

import time

import streamlit as st

from tavaal_core import get_strategy
from tavaal_core.strategies import method_label
from tavaal_core.phases import PHASE_SCORING, PHASE_TASK, PHASE_UNSUP_VAE, PHASE_VAE

# Slices of one method's share, by phase (the engine's phase names), for methods with / without a VAE.
_SLICES_VAE = {PHASE_UNSUP_VAE: (0.0, 0.3), PHASE_TASK: (0.3, 0.5), PHASE_VAE: (0.5, 0.97), PHASE_SCORING: (0.97, 1.0)}
_SLICES_PLAIN = {PHASE_UNSUP_VAE: (0.0, 0.5), PHASE_TASK: (0.5, 0.93), PHASE_SCORING: (0.93, 1.0)}


def method_cost(method: str) -> float:
    """Rough relative cost of one stage of ``method`` (measured on moons and digits on a CPU)."""
    try:
        needs = get_strategy(method).needs
    except Exception:
        return 1.0
    cost = 1.0
    if needs.vae in ("adversarial", "rank_conditioned"):
        cost += 6.0
    if needs.head != "none":
        cost += 0.4
    if needs.mc_dropout:
        cost += 0.2
    return cost


class StepProgress:
    """``StepProgress(methods, stages)`` is a callback for ``LiveSession.step``; call ``next_stage()``
    between stages and ``finish()`` at the end.

    The status box appears only once the step has run for ``show_after`` seconds: a quick two-moons step
    needs no box (the stage counter moving is feedback enough), and every box update costs the browser a
    redraw. Anything longer than a second shows its progress."""

    def __init__(self, methods: list[str], stages: int = 1, first_stage: int = 0, label: str | None = None,
                 container=None, show_after: float = 0.4):
        self.methods = list(methods)
        self.stages = max(1, stages)
        self.done_stages = 0
        self.first_stage = first_stage
        costs = [method_cost(m) for m in self.methods]
        total = sum(costs) or 1.0
        self.shares = [c / total for c in costs]
        self._within = [0.0] * len(self.methods)  # how far each method is in this stage (they may run at once)
        self.started = time.perf_counter()
        self._last = 0.0
        self._value = 0.0
        self._label = label
        self._where = container if container is not None else st
        self._slot = self._where.empty()
        self.show_after = show_after
        self.status = None
        self.bar = None
        if show_after <= 0:
            self._show()

    def _show(self) -> None:
        with self._slot.container():
            self.status = st.status(self._label or self._stage_label(), expanded=True)
            with self.status:
                self.bar = st.progress(self._value, text="starting…")

    def _stage_label(self) -> str:
        stage = self.first_stage + self.done_stages
        if self.stages > 1:
            return f"Stage {stage} ({self.done_stages + 1} of {self.stages}): training and picking…"
        return f"Stage {stage}: training and picking…"

    def __call__(self, i: int, method: str, phase: str, fraction: float, message: str) -> None:
        slices = _SLICES_VAE if method_cost(method) > 5 else _SLICES_PLAIN
        lo, hi = slices.get(phase, (0.0, 1.0))
        self._within[i] = max(self._within[i], lo + (hi - lo) * min(max(fraction, 0.0), 1.0))
        value = (self.done_stages + sum(s * w for s, w in zip(self.shares, self._within))) / self.stages
        self._value = max(self._value, min(value, 1.0))
        now = time.perf_counter()
        if self.status is None:
            if now - self.started < self.show_after:
                return
            self._show()
        if now - self._last < 0.5 and fraction < 1.0:  # at most 2 updates a second
            return
        self._last = now
        self.bar.progress(self._value, text=f"{method_label(method)} · {phase} · {message}")

    def next_stage(self) -> None:
        self.done_stages += 1
        self._within = [0.0] * len(self.methods)
        self._value = self.done_stages / self.stages
        if self.status is None and time.perf_counter() - self.started >= self.show_after:
            self._show()
        if self.status is not None:
            self.status.update(label=self._stage_label())
            self.bar.progress(self._value, text=f"stage {self.first_stage + self.done_stages - 1} done")

    def finish(self, label: str | None = None, error: bool = False) -> None:
        """Close the box with ``label``; a step too quick to have shown one leaves no trace (unless it failed)."""
        seconds = time.perf_counter() - self.started
        if self.status is None and not error:
            return
        if self.status is None:
            self._show()
        self.bar.progress(1.0, text=f"done in {seconds:.1f} s")
        self.status.update(label=label or f"Done in {seconds:.1f} s", state="error" if error else "complete",
                           expanded=error)


class TaskProgress:
    """A single bar for one long computation with a ``progress(fraction, message)`` callback
    (embeddings, what-if)."""

    def __init__(self, label: str, container=None):
        where = container if container is not None else st
        self.started = time.perf_counter()
        self.status = where.status(label, expanded=True)
        with self.status:
            self.bar = st.progress(0.0, text="starting…")
        self._value = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        self._value = max(self._value, min(max(fraction, 0.0), 1.0))
        self.bar.progress(self._value, text=message)

    def finish(self, label: str | None = None) -> None:
        seconds = time.perf_counter() - self.started
        self.status.update(label=label or f"Done in {seconds:.1f} s", state="complete", expanded=False)
