"""One vocabulary for the allowed values of a setting: whole numbers and reals in an interval, a set of
options, true/false. Every settings class of the package (``ExperimentConfig``, ``VAALSettings``, the
dataset loaders' options, ``ExperimentSpec``, the command line, a strategy's ``Needs``) declares its
fields with these and checks them with :func:`check`, so a bad value gives the same kind of message
everywhere: :class:`ConfigError` naming the field, the allowed values and what was given.

In the spirit of scikit-learn's parameter validation (a declared constraint per parameter, one checker),
written for this package::

    RULES = {"epochs": Interval(int, 1, MAX_EPOCHS), "kl_reduction": Options(KL_REDUCTIONS)}
    check_fields(settings, RULES)
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from .errors import ConfigError

__all__ = ["Constraint", "Interval", "Options", "Boolean", "Text", "check", "check_fields", "parse_number",
           "is_whole", "is_real"]


def is_whole(value: Any) -> bool:
    """An integer (numpy's too), never a bool: ``True`` is not the number 1 to a user."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number (numpy's too), never a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Constraint:
    """What a field accepts. :meth:`convert` returns the value in its plain Python type (numpy integers
    become ``int``) or raises :class:`ConfigError` naming ``name``."""

    optional = False  # None is accepted (the field then takes a default elsewhere)

    def convert(self, name: str, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        """The allowed values in words, for messages and help texts."""
        raise NotImplementedError


def _fmt(x) -> str:
    return f"{x:,}" if isinstance(x, int) and abs(x) >= 100_000 else f"{x:g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class Interval(Constraint):
    """A whole number (``kind=int``) or a finite real (``kind=float``) from ``low`` to ``high``.

    ``open_low`` / ``open_high`` exclude the bound itself; ``hint`` is appended to a range message (why
    the bound is where it is, e.g. " (the papers train 200 epochs)")."""

    kind: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    optional: bool = False
    hint: str = ""

    def __post_init__(self):
        if self.kind not in (int, float):
            raise TypeError("Interval kind is int or float")

    def describe(self) -> str:
        noun = "a whole number" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            lo, hi = ("(" if self.open_low else "["), (")" if self.open_high else "]")
            return f"{noun} in {lo}{_fmt(self.low)}, {_fmt(self.high)}{hi}"
        if self.low is not None:
            return f"{noun} {'>' if self.open_low else '>='} {_fmt(self.low)}"
        if self.high is not None:
            return f"{noun} {'<' if self.open_high else '<='} {_fmt(self.high)}"
        return noun

    def convert(self, name: str, value: Any) -> Any:
        if self.kind is int:
            if not is_whole(value):
                raise ConfigError(name, f"must be a whole number{self.hint}, got {value!r}")
            value = int(value)
        else:
            if not is_real(value) or not math.isfinite(value):
                raise ConfigError(name, f"must be a finite number, got {value!r}")
            value = value if isinstance(value, (int, float)) else float(value)
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            raise ConfigError(name, f"must be {'>' if self.open_low else '>='} {_fmt(self.low)}{self.hint}, got {value}")
        if self.high is not None and (value >= self.high if self.open_high else value > self.high):
            raise ConfigError(name, f"must be {'<' if self.open_high else '<='} {_fmt(self.high)}{self.hint}, got {value}")
        return value


@dataclass(frozen=True)
class Options(Constraint):
    """One of ``allowed``: a tuple, or a function returning the names (a registry filled at import time,
    such as the datasets or the methods). ``what`` names an option kind in the message ("dataset")."""

    allowed: tuple | Callable[[], Iterable]
    optional: bool = False
    what: str = ""

    def choices(self) -> list:
        return list(self.allowed() if callable(self.allowed) else self.allowed)

    def describe(self) -> str:
        return "one of: " + ", ".join(map(str, self.choices()))

    def convert(self, name: str, value: Any) -> Any:
        choices = self.choices()
        try:
            known = value in choices
        except TypeError:  # an unhashable or odd value is simply not one of the names
            known = False
        if not known:
            kind = f"{self.what} " if self.what else "value "
            raise ConfigError(name, f"unknown {kind}{value!r}; choose one of: {', '.join(map(str, choices))}")
        return value


@dataclass(frozen=True)
class Boolean(Constraint):
    """True or false (numpy's bool too); never a number or a string such as "no"."""

    optional: bool = False

    def describe(self) -> str:
        return "true or false"

    def convert(self, name: str, value: Any) -> Any:
        import numpy as np

        if not isinstance(value, (bool, np.bool_)):
            raise ConfigError(name, f"must be true or false, got {value!r}")
        return bool(value)


@dataclass(frozen=True)
class Text(Constraint):
    """A string; with ``pattern`` (a compiled regular expression) one that matches it, ``what`` saying
    in words what matches ("letters, digits, '.', '_' or '-'")."""

    pattern: Any = None
    what: str = "text"
    optional: bool = False

    def describe(self) -> str:
        return self.what

    def convert(self, name: str, value: Any) -> Any:
        if not isinstance(value, str) or (self.pattern is not None and not self.pattern.match(value)):
            raise ConfigError(name, f"must be {self.what}, got {value!r}")
        return value


def parse_number(text: str, constraint: Interval, name: str = "") -> Any:
    """A command-line word read as ``constraint``'s kind, then checked by it (ConfigError naming ``name``)."""
    try:
        value = constraint.kind(text)
    except (TypeError, ValueError):
        raise ConfigError(name, f"must be {constraint.describe()}, got {text!r}") from None
    return check(name, value, constraint)


def check(name: str, value: Any, constraint: Constraint) -> Any:
    """``value`` converted by ``constraint`` (None passes when the constraint is optional)."""
    if value is None:
        if constraint.optional:
            return None
        raise ConfigError(name, f"is required ({constraint.describe()})")
    return constraint.convert(name, value)


def check_fields(obj: Any, rules: Mapping[str, Constraint], *, write_back: bool = False) -> None:
    """Check ``obj``'s attributes named in ``rules``, in order; the first bad one raises. With
    ``write_back`` the converted values are stored (frozen dataclasses included)."""
    for name, constraint in rules.items():
        value = check(name, getattr(obj, name), constraint)
        if write_back and value is not getattr(obj, name):
            object.__setattr__(obj, name, value)
