"""The experiments' test: a mixture sequential probability ratio test (mSPRT), valid however
often its results are looked at.

A fixed-horizon test (a t-test read once, at a sample size chosen in advance) promises a 5%
false positive rate only if nobody acts on it before the end; looked at every day and stopped
at the first "significant", it declares a winner between identical variants far more often.
The mSPRT (Johari, Pekelis and Walsh, "Always valid inference", 2017; the Gaussian mixture of
Robbins, 1970) gives p-values and confidence intervals that hold at every look at once.

For a difference of means Δ (variant minus control) estimated by Δ̂ with variance

    V = s_a² / n_a + s_b² / n_b

(the per-unit sample variances, so any per-unit metric works: a 0/1 conversion, revenue),
and a normal mixture of alternatives θ ~ N(0, τ²), the likelihood ratio against Δ = 0 is

    Λ = sqrt(V / (V + τ²)) · exp( τ² Δ̂² / (2 V (V + τ²)) ).

Under Δ = 0, Λ is (asymptotically) a nonnegative martingale with mean 1, so by Ville's
inequality P(Λ ever exceeds 1/α) ≤ α. Hence

    p = min over the looks so far of min(1, 1/Λ)            (an always-valid p-value)
    Δ̂ ± sqrt( V (V + τ²) / τ² · (2 log(1/α) + log((V + τ²) / V)) )    (a confidence sequence)

the interval holding the true Δ at every look with probability ≥ 1 - α. The price of looking
freely is width: the interval is about 1.5 to 2 times the fixed-horizon one, so the same
precision takes more units (`benchmarks/experiments.py` measures how many). τ is where the test
is most sensitive: the smallest effect worth finding (`Experiment.minimum_effect`, relative,
times the pooled mean). It is normal-approximate: no decision before `MIN_UNITS` units and
`MIN_SUCCESSES` units with the outcome in each arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_UNITS = 100
MIN_SUCCESSES = 10
"""Per arm, before any decision: below these the normal approximation is not to be trusted."""


@dataclass(frozen=True)
class Comparison:
    difference: float
    low: float
    high: float
    """The 1 - alpha confidence sequence for the difference, at this look."""
    likelihood_ratio: float
    p_value: float
    """Always valid at this look alone; `running_p` takes the minimum over the looks."""


def mixture_ratio(difference: float, variance: float, tau: float) -> float:
    """Λ for an estimate `difference` of variance `variance` against a zero difference."""
    if variance <= 0 or tau <= 0:
        return 1.0
    t2 = tau * tau
    exponent = t2 * difference * difference / (2.0 * variance * (variance + t2))
    return math.sqrt(variance / (variance + t2)) * math.exp(min(exponent, 700.0))


def half_width(variance: float, tau: float, alpha: float) -> float:
    """Half the confidence sequence's width for an estimate of variance `variance`."""
    if variance <= 0:
        return 0.0
    if tau <= 0:
        return math.inf
    t2 = tau * tau
    return math.sqrt(variance * (variance + t2) / t2 * (2.0 * math.log(1.0 / alpha) + math.log((variance + t2) / variance)))


def compare(n_a: int, mean_a: float, var_a: float, n_b: int, mean_b: float, var_b: float, tau: float,
            alpha: float) -> Comparison:
    """Variant b against control a at one look (their units' count, mean and sample variance)."""
    variance = var_a / max(n_a, 1) + var_b / max(n_b, 1)
    difference = mean_b - mean_a
    ratio = mixture_ratio(difference, variance, tau)
    width = half_width(variance, tau, alpha)
    return Comparison(difference, difference - width, difference + width, ratio, min(1.0, 1.0 / ratio))


def mean_interval(n: int, mean: float, var: float, tau: float, alpha: float) -> tuple[float, float]:
    """A confidence sequence for one arm's mean (`tau` on the same scale as the differences'),
    for the plots."""
    width = half_width(var / max(n, 1), tau, alpha)
    return mean - width, mean + width


def ready(n_a: int, successes_a: int, n_b: int, successes_b: int) -> bool:
    """Enough units in both arms for the approximation to be trusted."""
    return min(n_a, n_b) >= MIN_UNITS and min(successes_a, successes_b) >= MIN_SUCCESSES


@dataclass(frozen=True)
class Arm:
    """One variant's units at a look: how many, their metric's mean and sample variance, and
    how many have a nonzero value."""

    n: int
    mean: float
    var: float
    successes: int


def scale(arms: list[Arm], minimum_effect: float) -> float:
    """τ: the relative `minimum_effect` times the mean of every arm's units together."""
    units = sum(a.n for a in arms)
    return minimum_effect * sum(a.n * a.mean for a in arms) / units if units else 0.0


def decide(control: Arm, variant: Arm, tau: float, alpha: float) -> Comparison | None:
    """The variant against the control at one look; None while there are too few units."""
    if tau <= 0 or not ready(control.n, control.successes, variant.n, variant.successes):
        return None
    return compare(control.n, control.mean, control.var, variant.n, variant.mean, variant.var, tau, alpha)
