"""Queueing math for staffing: Erlang B, Erlang C (M/M/n) and Erlang A (M/M/n+M). Pure numpy.

Units: rates per second, times in seconds. `load = arrival_rate * aht_s` (Erlangs).
Everything is computed from ratios and logarithms, so loads of thousands of Erlangs
and thousands of agents neither overflow nor underflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_AGENTS = 100_000


@dataclass(frozen=True)
class Performance:
    """What an arriving caller can expect with `agents` agents (contract 7, `/v1/staffing`)."""

    agents: int
    p_wait: float  # all agents busy on arrival
    answer_rate: float  # answered within the threshold (abandons count as not answered)
    asa_s: float  # mean wait of answered callers (0 s for those answered at once)
    occupancy: float  # mean share of agents busy
    abandon_rate: float  # 0 for Erlang C


def log_inv_erlang_b(agents: int, load: float) -> float:
    """log(1/B(n, a)) by the recursion 1/B(k) = 1 + (k/a)/B(k-1), in log space (no underflow)."""
    if agents == 0:
        return 0.0
    if load <= 0:
        return math.inf
    log_load = math.log(load)
    r = 0.0  # log(1/B(0)) = log 1
    for k in range(1, agents + 1):
        x = math.log(k) - log_load + r
        r = x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))
    return r


def erlang_b(agents: int, load: float) -> float:
    """Blocking probability of M/M/n/n (Erlang B)."""
    return math.exp(-log_inv_erlang_b(agents, load))


def _erlang_c_from_b(agents: int, load: float, b: float) -> float:
    if agents <= load:
        return 1.0
    return agents * b / (agents - load * (1.0 - b))


def erlang_c(agents: int, arrival_rate: float, aht_s: float, threshold_s: float) -> Performance:
    """M/M/n: infinitely patient callers."""
    load = arrival_rate * aht_s
    return _erlang_c(agents, load, aht_s, threshold_s, erlang_b(agents, load))


def _erlang_c(agents: int, load: float, aht_s: float, threshold_s: float, b: float) -> Performance:
    if agents == 0 or agents <= load:  # unstable: the queue grows without bound
        return Performance(agents, 1.0, 0.0, math.inf, 1.0, 0.0)
    c = _erlang_c_from_b(agents, load, b)
    answer = 1.0 - c * math.exp(-(agents - load) * threshold_s / aht_s)
    asa = c * aht_s / (agents - load)
    return Performance(agents, c, answer, asa, load / agents, 0.0)


def erlang_a(
    agents: int, arrival_rate: float, aht_s: float, patience_s: float, threshold_s: float
) -> Performance:
    """M/M/n+M: callers abandon after an exponential patience of mean `patience_s`."""
    load = arrival_rate * aht_s
    log_inv_b = log_inv_erlang_b(agents, load)
    return _erlang_a(agents, arrival_rate, aht_s, patience_s, threshold_s, log_inv_b)


def _queue_terms(agents: int, lam: float, mu: float, theta: float) -> np.ndarray:
    """term[m] = pi(n+m)/pi(n) for m = 0.. until negligible (the queue's tail)."""
    n_mu = agents * mu
    peak = max(0.0, (lam - n_mu) / theta)  # terms grow until here, then fall
    length = int(peak + 12.0 * math.sqrt(lam / theta + 1.0) + 64)
    j = np.arange(1, length + 1, dtype=np.float64)
    log_terms = np.concatenate(([0.0], np.cumsum(np.log(lam / (n_mu + j * theta)))))
    keep = log_terms >= log_terms.max() - 745.0  # below that, exp() is zero in float64
    last = int(np.nonzero(keep)[0].max()) + 1
    return log_terms[:last]


def _erlang_a(
    agents: int, lam: float, aht_s: float, patience_s: float, threshold_s: float, log_inv_b: float
) -> Performance:
    mu, theta = 1.0 / aht_s, 1.0 / patience_s
    if lam <= 0:
        return Performance(agents, 0.0, 1.0, 0.0, 0.0, 0.0)
    if agents == 0:  # everyone waits until they give up
        return Performance(0, 1.0, 0.0, math.inf, 0.0, 1.0)
    log_terms = _queue_terms(agents, lam, mu, theta)
    top = float(log_terms.max())
    scaled = np.exp(log_terms - top)  # pi(n+m) / pi(n) / e^top
    tail = float(scaled.sum())  # sum over m >= 0 of pi(n+m)/pi(n), over e^top
    # sum_{k<=n} pi_k = pi_n / B, so pi(0..n-1)/pi(n) = 1/B - 1; compared in logs
    if log_inv_b <= 0:
        p_wait = 1.0
    else:
        log_below = log_inv_b + math.log1p(-math.exp(-log_inv_b)) - float(top)
        p_wait = 1.0 / (1.0 + math.exp(min(700.0, log_below - math.log(tail))))
    ahead = scaled / tail  # the number waiting ahead, for a caller who must wait
    m = np.arange(len(ahead), dtype=np.float64)
    rates = agents * mu + m * theta  # progress rate with m ahead
    stay = rates / (rates + theta)  # one step of progress before own abandonment
    served_from = np.cumprod(stay)  # P(served | m ahead)
    time_from = np.cumsum(1.0 / (rates + theta))  # mean time to service along that path
    p_served_waiting = float(ahead @ served_from)
    abandon = p_wait * (1.0 - p_served_waiting)
    answered = 1.0 - abandon
    asa = p_wait * float(ahead @ (served_from * time_from)) / answered
    within = _served_within(ahead, agents * mu, theta, threshold_s)
    answer_rate = (1.0 - p_wait) + p_wait * within
    occupancy = min(1.0, lam * answered * aht_s / agents)  # Little's law on the agents
    return Performance(agents, p_wait, answer_rate, asa, occupancy, abandon)


def _served_within(ahead: np.ndarray, n_mu: float, theta: float, t: float) -> float:
    """P(a waiting caller reaches an agent within t s, before giving up), by uniformization.

    The caller's state is the number ahead of them, m; it falls at rate n_mu + m*theta,
    the caller is served from m = 0 at rate n_mu and gives up at rate theta from any m.
    """
    if t <= 0:
        return 0.0
    significant = np.nonzero(ahead > 1e-17 * ahead.max())[0]
    ahead = ahead[: int(significant.max()) + 1]  # the far tail carries no mass
    size = len(ahead)
    m = np.arange(size, dtype=np.float64)
    down = n_mu + m * theta  # leave state m: to m-1, or to service from m = 0
    out_rate = down + theta
    uniform = float(out_rate.max())
    mean = uniform * t
    steps = int(mean + 10.0 * math.sqrt(mean) + 30)
    k = np.arange(steps + 1, dtype=np.float64)
    log_factorial = np.concatenate(([0.0], np.cumsum(np.log(k[1:]))))
    pmf = np.exp(k * math.log(mean) - mean - log_factorial)
    v = ahead.astype(np.float64).copy()
    keep = 1.0 - out_rate / uniform
    move = down / uniform
    served = 0.0
    total = 0.0
    for jumps in range(1, steps + 1):
        served += v[0] * move[0]
        # one jump: stay with `keep`, or step one place forward with `move`
        v[:-1] = v[:-1] * keep[:-1] + v[1:] * move[1:]
        v[-1] *= keep[-1]
        # served after `jumps` jumps or fewer, weighted by P(N(t) = jumps)
        total += pmf[jumps] * served
        if jumps > mean and pmf[jumps] < 1e-18:
            break
    return float(total)


def agents_for_target(
    arrival_rate: float,
    aht_s: float,
    threshold_s: float,
    target: float,
    patience_s: float | None = None,
    abandon_cap: float | None = None,
) -> int:
    """The fewest agents whose answer rate reaches `target` (and abandonment <= the cap)."""
    load = arrival_rate * aht_s
    if load <= 0:
        return 0

    def ok(n: int) -> bool:
        if patience_s is None:
            perf = erlang_c(n, arrival_rate, aht_s, threshold_s)
        else:
            perf = erlang_a(n, arrival_rate, aht_s, patience_s, threshold_s)
        if perf.answer_rate < target:
            return False
        return abandon_cap is None or perf.abandon_rate <= abandon_cap

    lo, hi = 0, max(1, math.ceil(load))
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_AGENTS:
            raise ValueError(f"more than {MAX_AGENTS} agents needed")
    while hi - lo > 1:  # ok(hi) holds, ok(lo) does not (answer rate rises with agents)
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def estimate_patience(abandoned: int, total_wait_s: float) -> float | None:
    """Mean patience under exponential patience: time spent waiting per abandonment."""
    if abandoned <= 0 or total_wait_s <= 0:
        return None
    return total_wait_s / abandoned
