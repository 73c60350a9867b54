"""Erlang B, C and A against an independent computation: the queue's chain solved numerically."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.core.erlang import agents_for_target, erlang_a, erlang_b, erlang_c, estimate_patience


def stationary(n: int, lam: float, mu: float, theta: float, states: int) -> np.ndarray:
    """pi of the birth-death chain of M/M/n+M (theta = 0: M/M/n), from pi Q = 0, sum 1."""
    q = np.zeros((states, states))
    for k in range(states):
        if k + 1 < states:
            q[k, k + 1] = lam
        if k > 0:
            q[k, k - 1] = min(k, n) * mu + max(k - n, 0) * theta
        q[k, k] = -q[k].sum()
    a = np.vstack([q.T, np.ones(states)])
    rhs = np.zeros(states + 1)
    rhs[-1] = 1.0
    pi, *_ = np.linalg.lstsq(a, rhs, rcond=None)
    return np.asarray(pi)


def expm(m: np.ndarray) -> np.ndarray:
    """Matrix exponential by scaling and squaring of a Taylor series."""
    norm = np.abs(m).sum(axis=1).max()
    s = max(0, math.ceil(math.log2(norm + 1e-300)) + 1)
    a = m / 2**s
    out = np.eye(len(m))
    term = np.eye(len(m))
    for k in range(1, 30):
        term = term @ a / k
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


def tagged(n: int, mu: float, theta: float, ahead: np.ndarray, t: float) -> tuple[float, float]:
    """For a caller who must wait: P(served within t) and E[wait; served], via the
    caller's own absorbing chain (states: m ahead, then served, then abandoned)."""
    size = len(ahead)
    g = np.zeros((size + 2, size + 2))
    served, gone = size, size + 1
    for m in range(size):
        g[m, m - 1 if m else served] = n * mu + m * theta
        g[m, gone] = theta
        g[m, m] = -(n * mu + m * theta + theta)
    start = np.concatenate([ahead, [0.0, 0.0]])
    within = float((start @ expm(g * t))[served])
    sub = g[:size, :size]
    p_served = np.linalg.solve(-sub, g[:size, served])  # P(served | m ahead)
    time_served = np.linalg.solve(-sub, p_served)  # E[wait; served | m ahead]
    return within, float(ahead @ time_served)


def reference(
    n: int, per_hour: float, aht: float, patience: float | None, t: float
) -> dict[str, float]:
    lam, mu = per_hour / 3600, 1 / aht
    theta = 0.0 if patience is None else 1 / patience
    states = n + 400
    pi = stationary(n, lam, mu, theta, states)
    k = np.arange(states)
    p_wait = float(pi[n:].sum())
    ahead = pi[n:] / p_wait
    abandon = float((np.maximum(k - n, 0) * theta * pi).sum() / lam)
    within, wait_served = tagged(n, mu, theta, ahead, t)
    answered = 1 - abandon
    return {
        "p_wait": p_wait,
        "answer_rate": (1 - p_wait) + p_wait * within,
        "abandon_rate": abandon,
        "occupancy": float((np.minimum(k, n) * pi).sum() / n),
        "asa_s": p_wait * wait_served / answered,
    }


GRID = [
    # agents, calls per hour, AHT s, patience s (None: Erlang C), threshold s
    (1, 10, 180, None, 30),
    (3, 50, 180, None, 20),
    (12, 200, 180, None, 30),
    (12, 200, 180, 120, 30),
    (8, 200, 180, 60, 30),  # overloaded: only patience keeps it finite
    (25, 450, 200, 300, 15),
    (40, 800, 170, 90, 30),
    (2, 100, 300, 40, 30),
]


@pytest.mark.parametrize(("n", "per_hour", "aht", "patience", "t"), GRID)
def test_against_the_chain(
    n: int, per_hour: float, aht: float, patience: float | None, t: float
) -> None:
    want = reference(n, per_hour, aht, patience, t)
    lam = per_hour / 3600
    if patience is None:
        if n <= lam * aht:
            pytest.fail("grid case must be stable for Erlang C")
        got = erlang_c(n, lam, aht, t)
    else:
        got = erlang_a(n, lam, aht, patience, t)
    for key, value in want.items():
        assert getattr(got, key) == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_erlang_b_known_values() -> None:
    # B(1, a) = a / (1 + a); B(2, 1) = (1/2) / (1 + 1 + 1/2) = 0.2
    assert erlang_b(1, 3.0) == pytest.approx(0.75)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)
    assert erlang_b(0, 5.0) == 1.0


def test_large_loads_stay_finite_and_exact() -> None:
    """2,000 Erlangs and 5,000 agents: log-space detailed balance as the reference."""
    lam, aht, patience, n = 2000 / 300, 300.0, 120.0, 2050
    mu, theta = 1 / aht, 1 / patience
    k = np.arange(0, n + 3000)
    rates = np.where(k[1:] <= n, k[1:] * mu, n * mu + (k[1:] - n) * theta)
    log_pi = np.concatenate([[0.0], np.cumsum(np.log(lam / rates))])
    pi = np.exp(log_pi - log_pi.max())
    pi /= pi.sum()
    got = erlang_a(n, lam, aht, patience, 30)
    assert got.p_wait == pytest.approx(float(pi[n:].sum()), rel=1e-8)
    assert got.abandon_rate == pytest.approx(
        float(((k - n).clip(0) * theta * pi).sum() / lam), rel=1e-8
    )
    huge = erlang_a(5000, lam, aht, patience, 30)
    assert (
        0 <= huge.p_wait < 1e-250
        and huge.answer_rate == 1.0
        and huge.occupancy == pytest.approx(0.4)
    )
    c = erlang_c(5000, lam, aht, 30)
    assert (c.p_wait, c.answer_rate) == (0.0, 1.0)
    assert c.occupancy == pytest.approx(0.4)


def test_agents_for_target_is_the_fewest() -> None:
    lam, aht = 200 / 3600, 180.0  # 10 Erlangs
    n = agents_for_target(lam, aht, 30, 0.8)
    assert erlang_c(n, lam, aht, 30).answer_rate >= 0.8 > erlang_c(n - 1, lam, aht, 30).answer_rate
    assert n == 13
    # with patience, a cap on abandonment needs more agents than the answer rate alone
    a_rate = agents_for_target(lam, aht, 30, 0.8, patience_s=60)
    capped = agents_for_target(lam, aht, 30, 0.8, patience_s=60, abandon_cap=0.01)
    assert a_rate <= capped
    assert erlang_a(capped, lam, aht, 60, 30).abandon_rate <= 0.01 < erlang_a(
        capped - 1, lam, aht, 60, 30
    ).abandon_rate or (erlang_a(capped - 1, lam, aht, 60, 30).answer_rate < 0.8)


def test_patience_estimate() -> None:
    assert estimate_patience(4, 480.0) == 120.0
    assert estimate_patience(0, 480.0) is None
