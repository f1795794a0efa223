"""Ranks across tasks, Friedman's test and Nemenyi's critical difference, against hand computations
and against the worked example of Demšar (2006, JMLR 7:1-30, Section 3.2.2, Table 6)."""

from __future__ import annotations

import math

import pytest
import scikit_posthocs
import scipy.stats

from ftbench.stats.ranks import (
    friedman,
    iman_davenport,
    min_tasks,
    nemenyi_q,
    rank_strategies,
)

# Five tasks, three strategies, ties on t2 (A = B) and t4 (A = C). Ranks by hand, 1 = highest:
#   t1: A .90, B .85, C .80 -> 1,   2,   3
#   t2: A .70, B .70, C .60 -> 1.5, 1.5, 3     (A and B share ranks 1 and 2)
#   t3: A .88, B .80, C .82 -> 1,   3,   2
#   t4: A .75, B .77, C .75 -> 2.5, 1,   2.5   (A and C share ranks 2 and 3)
#   t5: A .95, B .90, C .85 -> 1,   2,   3
HAND = {
    "t1": {"A": 0.90, "B": 0.85, "C": 0.80},
    "t2": {"A": 0.70, "B": 0.70, "C": 0.60},
    "t3": {"A": 0.88, "B": 0.80, "C": 0.82},
    "t4": {"A": 0.75, "B": 0.77, "C": 0.75},
    "t5": {"A": 0.95, "B": 0.90, "C": 0.85},
}

# Table 6 of the paper: AUC of C4.5 and three tuned variants on 14 UCI data sets. The table
# prints three decimals; on voting it ranks C4.5+cf 2nd and C4.5+m+cf 3rd although both read
# 0.975, so the unrounded values differ and C4.5+m+cf's is entered as 0.9749.
DEMSAR_NAMES = ("C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf")
DEMSAR_AUC = {
    "adult (sample)": (0.763, 0.768, 0.771, 0.798),
    "breast cancer": (0.599, 0.591, 0.590, 0.569),
    "breast cancer wisconsin": (0.954, 0.971, 0.968, 0.967),
    "cmc": (0.628, 0.661, 0.654, 0.657),
    "ionosphere": (0.882, 0.888, 0.886, 0.898),
    "iris": (0.936, 0.931, 0.916, 0.931),
    "liver disorders": (0.661, 0.668, 0.609, 0.685),
    "lung cancer": (0.583, 0.583, 0.563, 0.625),
    "lymphography": (0.775, 0.838, 0.866, 0.875),
    "mushroom": (1.000, 1.000, 1.000, 1.000),
    "primary tumor": (0.940, 0.962, 0.965, 0.962),
    "rheum": (0.619, 0.666, 0.614, 0.669),
    "voting": (0.972, 0.981, 0.975, 0.9749),
    "wine": (0.957, 0.978, 0.946, 0.970),
}
DEMSAR = {task: dict(zip(DEMSAR_NAMES, aucs)) for task, aucs in DEMSAR_AUC.items()}


def test_ties_share_the_average_of_their_ranks():
    ranking = rank_strategies(HAND)
    assert ranking.ranks["t1"] == {"A": 1.0, "B": 2.0, "C": 3.0}
    assert ranking.ranks["t2"] == {"A": 1.5, "B": 1.5, "C": 3.0}
    assert ranking.ranks["t4"] == {"A": 2.5, "B": 1.0, "C": 2.5}


def test_average_ranks_friedman_iman_davenport_and_cd_match_a_hand_computation():
    ranking = rank_strategies(HAND)
    # rank sums A 1+1.5+1+2.5+1 = 7, B 2+1.5+3+1+2 = 9.5, C 3+3+2+2.5+3 = 13.5 (total N k(k+1)/2 = 30)
    assert ranking.average_ranks == pytest.approx({"A": 1.4, "B": 1.9, "C": 2.7})
    assert ranking.strategies == ("A", "B", "C")
    # chi2_F = 12N/(k(k+1)) [sum R_j^2 - k(k+1)^2/4] = 60/12 * (1.96 + 3.61 + 7.29 - 12) = 5 * 0.86
    assert ranking.friedman_chi2 == pytest.approx(4.3)
    # chi-square with 2 degrees of freedom: p = exp(-x/2)
    assert ranking.friedman_p == pytest.approx(math.exp(-2.15))
    # F_F = (N-1) chi2_F / (N(k-1) - chi2_F) = 4 * 4.3 / (10 - 4.3) = 17.2 / 5.7
    assert ranking.iman_davenport_f == pytest.approx(17.2 / 5.7)
    # F with (2, 8) degrees of freedom: p = (1 + 2F/8)^(-4) = 1.754386^-4 = 0.10556
    assert ranking.iman_davenport_p == pytest.approx((1 + 2 * (17.2 / 5.7) / 8) ** -4)
    assert ranking.iman_davenport_p == pytest.approx(0.10556, abs=1e-5)
    # Nemenyi: q_0.05 = 2.343 for k = 3 (Demšar, Table 5a); CD = 2.343 sqrt(3*4 / (6*5)) = 1.4818
    assert ranking.cd == pytest.approx(2.343 * math.sqrt(12 / 30), abs=1e-3)
    assert ranking.min_tasks == 5


def test_without_a_difference_in_friedmans_test_nemenyi_separates_nothing():
    ranking = rank_strategies(HAND)  # Iman–Davenport p = 0.106 > 0.05
    assert ranking.tested and not ranking.differs
    assert ranking.groups == (("A", "B", "C"),)
    assert not ranking.different("A", "C")  # 2.7 - 1.4 = 1.3 < CD, and Friedman's gate is shut anyway
    assert "finds no difference" in ranking.note


def test_nemenyi_critical_values_match_demsars_table():
    # Demšar, Table 5(a), alpha = 0.05, k = 2..10
    table = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    for k, q in enumerate(table, start=2):
        assert nemenyi_q(k, 0.05) == pytest.approx(q, abs=1e-3), k
    assert nemenyi_q(4, 0.10) == pytest.approx(2.291, abs=1e-3)  # quoted in Section 3.2.2


def test_demsars_worked_example():
    ranking = rank_strategies(DEMSAR, alpha=0.05)
    assert ranking.average_ranks == pytest.approx(
        {"C4.5": 3.143, "C4.5+m": 2.000, "C4.5+cf": 2.893, "C4.5+m+cf": 1.964}, abs=5e-4
    )
    assert ranking.friedman_chi2 == pytest.approx(9.28, abs=5e-3)
    assert ranking.iman_davenport_f == pytest.approx(3.69, abs=5e-3)
    # F(3, 39) at 0.05 is 2.85 < 3.69: the paper rejects the null hypothesis
    assert ranking.differs
    # CD = 2.569 sqrt(4*5 / (6*14)) = 1.25: even the best and worst (1.179 apart) are not told apart
    assert ranking.cd == pytest.approx(1.25, abs=5e-3)
    assert ranking.groups == (("C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5"),)
    assert not ranking.different("C4.5", "C4.5+m+cf")


def test_demsars_worked_example_at_alpha_010_gives_his_two_groups():
    ranking = rank_strategies(DEMSAR, alpha=0.10)
    # CD = 2.291 sqrt(4*5 / (6*14)) = 1.12: C4.5 is worse than C4.5+m and C4.5+m+cf, and C4.5+cf
    # belongs to neither side (Figure 1a)
    assert ranking.cd == pytest.approx(1.12, abs=5e-3)
    assert ranking.groups == (("C4.5+m+cf", "C4.5+m", "C4.5+cf"), ("C4.5+cf", "C4.5"))
    assert ranking.different("C4.5", "C4.5+m") and ranking.different("C4.5", "C4.5+m+cf")
    assert not ranking.different("C4.5", "C4.5+cf") and not ranking.different("C4.5+cf", "C4.5+m")


def test_pairs_agree_with_scikit_posthocs_nemenyi():
    ranking = rank_strategies(DEMSAR, alpha=0.10)
    p = scikit_posthocs.posthoc_nemenyi_friedman([list(row.values()) for row in DEMSAR.values()])
    for i, a in enumerate(DEMSAR_NAMES):
        for j, b in enumerate(DEMSAR_NAMES):
            if i != j:
                assert ranking.different(a, b) == (p.iloc[i, j] < 0.10), (a, b)


def test_without_ties_friedman_matches_scipy():
    table = {
        f"t{i}": {s: ((7 * i + 3 * j) % 11) / 11 + j / 100 for j, s in enumerate("PQRST")} for i in range(7)
    }
    ranking = rank_strategies(table)
    by_strategy = [[table[t][s] for t in table] for s in "PQRST"]
    chi2, p = scipy.stats.friedmanchisquare(*by_strategy)
    assert ranking.friedman_chi2 == pytest.approx(chi2)
    assert ranking.friedman_p == pytest.approx(p)


def test_too_few_tasks_gives_ranks_only_and_says_so():
    four = {task: HAND[task] for task in ("t1", "t2", "t3", "t4")}
    ranking = rank_strategies(four)
    # rank sums A 6, B 7.5, C 10.5 over 4 tasks
    assert ranking.average_ranks == pytest.approx({"A": 1.5, "B": 1.875, "C": 2.625})
    assert not ranking.tested and not ranking.differs
    assert ranking.friedman_chi2 is None and ranking.iman_davenport_p is None and ranking.cd is None
    assert ranking.groups == ()
    assert ranking.min_tasks == 5
    assert "Too few tasks" in ranking.note and "4 tasks" in ranking.note and "ranks only" in ranking.note
    assert "Too few tasks" in rank_strategies({"t1": HAND["t1"]}).note


def test_the_tasks_needed_are_five_or_what_a_unanimous_suite_needs():
    assert [min_tasks(k, 0.05) for k in range(2, 11)] == [5] * 9
    # k = 2 at 0.01: q = z_0.995 = 2.5758, N >= q^2 * 2*3 / (6 * 1) = 6.63
    assert min_tasks(2, 0.01) == 7


def test_friedman_and_iman_davenport_from_average_ranks():
    # the four-task example: chi2 = 12*4/(3*4) (1.5^2 + 1.875^2 + 2.625^2 - 12) = 4 * 0.65625
    chi2, _ = friedman([1.5, 1.875, 2.625], 4)
    assert chi2 == pytest.approx(2.625)
    assert iman_davenport(chi2, 4, 3)[0] == pytest.approx(3 * 2.625 / (8 - 2.625))  # = 63/43
    # every task in the same order: chi2 = N(k-1), F infinite
    assert friedman([1.0, 2.0, 3.0], 6)[0] == pytest.approx(12.0)
    # unanimous: F infinite, p the exact chance that 6 tasks agree on one of 3! orders, never 0
    assert iman_davenport(12.0, 6, 3) == (math.inf, pytest.approx(6.0 ** -5))


def test_unanimous_tasks_separate_the_first_from_the_last():
    table = {f"t{i}": {"A": 0.9, "B": 0.8, "C": 0.7} for i in range(6)}
    ranking = rank_strategies(table)
    assert ranking.iman_davenport_f == math.inf and ranking.differs
    # CD = 2.343 sqrt(12 / 36) = 1.353: 1 apart is too close, 2 apart is not
    assert ranking.groups == (("A", "B"), ("B", "C"))
    assert ranking.different("A", "C") and not ranking.different("A", "B")


def test_all_ties_give_no_difference():
    table = {f"t{i}": {"A": 1.0, "B": 1.0, "C": 1.0} for i in range(6)}
    ranking = rank_strategies(table)
    assert ranking.average_ranks == {"A": 2.0, "B": 2.0, "C": 2.0}
    assert ranking.friedman_chi2 == 0.0 and ranking.friedman_p == pytest.approx(1.0)
    assert not ranking.differs


def test_a_strategy_missing_on_a_task_is_left_out_by_name():
    table = {task: dict(row, D=0.99) for task, row in HAND.items()}
    del table["t2"]["D"]
    table["t4"]["D"] = None
    table["t5"]["E"] = math.nan
    ranking = rank_strategies(table)
    assert ranking.strategies == ("A", "B", "C")
    assert ranking.dropped == ("D", "E")
    assert ranking.average_ranks == pytest.approx({"A": 1.4, "B": 1.9, "C": 2.7})
    assert "D (no result on t2, t4)" in ranking.note and "E (no result on t1, t2, t3, t4, t5)" in ranking.note


def test_one_strategy_has_nothing_to_compare():
    ranking = rank_strategies({f"t{i}": {"A": 0.5} for i in range(6)})
    assert not ranking.tested and "nothing to compare" in ranking.note
    assert ranking.average_ranks == {"A": 1.0}


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="alpha"):
        rank_strategies(HAND, alpha=1.5)
    with pytest.raises(ValueError, match="no tasks"):
        rank_strategies({})


def test_with_few_tasks_the_p_that_decides_is_the_exact_permutation_p_never_0():
    # 2 strategies, 5 unanimous tasks: the exact two-sided sign test, 2 * 0.5**5
    two = rank_strategies({f"t{i}": {"A": 0.9, "B": 0.8} for i in range(5)})
    assert two.p_method == "exact permutation" and two.p_value == pytest.approx(0.0625)
    assert not two.differs and two.iman_davenport_f == math.inf
    # 4 unanimous strategies on 5 tasks: only the 24 arrangements where all tasks agree reach it
    four = rank_strategies({f"t{i}": {"A": 0.9, "B": 0.8, "C": 0.7, "D": 0.6} for i in range(5)})
    assert four.p_value == pytest.approx(24.0 ** -4) and four.differs


def test_the_exact_count_matches_enumeration_with_ties_and_sampling_agrees():
    import itertools

    from ftbench.stats.permutation import friedman_exact_p, friedman_permutation_p

    rows = [[1, 2.5, 2.5], [1, 3, 2], [2, 1, 3], [1, 2, 3]]
    observed = sum(s * s for s in map(sum, zip(*rows, strict=True)))
    arrangements = list(itertools.product(*[itertools.permutations(r) for r in rows]))
    reached = sum(sum(s * s for s in map(sum, zip(*combo, strict=True))) >= observed - 1e-9
                  for combo in arrangements)
    assert friedman_exact_p(rows) == pytest.approx(reached / len(arrangements))  # 34/216
    assert friedman_permutation_p(rows) == pytest.approx(reached / len(arrangements), abs=0.01)
    assert friedman_permutation_p([[1, 2, 3]] * 12, draws=100) == pytest.approx(1 / 101)  # never 0


def test_above_ten_tasks_iman_davenport_decides():
    table = {f"t{i}": {"A": 0.9 - 0.01 * (i % 3), "B": 0.85, "C": 0.7 + 0.1 * (i % 2)} for i in range(12)}
    ranking = rank_strategies(table)
    assert ranking.p_method == "Iman–Davenport F" and ranking.p_value == ranking.iman_davenport_p



def _null_distribution(k: int, n: int) -> dict[int, float]:
    """Friedman's statistic (sum of squared rank sums) under the null, every order of every
    task's k ranks equally likely: statistic -> probability."""
    import itertools
    from collections import Counter

    orders = list(itertools.permutations(range(1, k + 1)))
    by_sums: Counter = Counter({(0,) * k: 1.0})
    for _ in range(n):
        step: Counter = Counter()
        for sums, p in by_sums.items():
            for order in orders:
                step[tuple(a + b for a, b in zip(sums, order, strict=True))] += p / len(orders)
        by_sums = step
    statistic: Counter = Counter()
    for sums, p in by_sums.items():
        statistic[sum(s * s for s in sums)] += p
    return dict(statistic)


def test_the_permutation_test_rejects_equal_strategies_at_most_alpha_with_few_tasks():
    import numpy as np

    from ftbench.stats.permutation import friedman_exact_p

    for k, size in ((2, 0.0), (4, 0.04434)):
        null = _null_distribution(k, 5)
        tail = {s: sum(p for t, p in null.items() if t >= s) for s in null}
        rng = np.random.default_rng(k)
        for _ in range(20):  # the module's p is this distribution's tail
            table = [list(rng.permutation(k) + 1) for _ in range(5)]
            statistic = sum(int(c) ** 2 for c in np.sum(table, axis=0))
            assert friedman_exact_p(table) == pytest.approx(tail[statistic])
        # its size: the null probability of a p below 0.05, at most alpha (2 strategies: never)
        rejected = sum(p for s, p in null.items() if tail[s] < 0.05)
        assert rejected == pytest.approx(size, abs=1e-5) and rejected <= 0.05
