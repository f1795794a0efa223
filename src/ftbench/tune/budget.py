"""The numbers of a tuned comparison, checked before anything runs: trials, seeds, batch.

Each must be at least 1: a search of 0 trials has no best to retrain, a comparison on 0 seeds
tests nothing, and a batch of 0 trials never finishes a search. The final runs' seeds never
include ``tune.search_seed``: every search trial ran with it, and runs are deterministic, so a
final run on that seed would be the very trial that won on validation, and a share of the test
evidence would inherit the winner's luck. ``tune.seeds=K`` gives the first K seeds from 0 that
are not the search seed (1, 2, 3 for search seed 0); an explicit list that holds the search seed
is refused.
"""

from __future__ import annotations

from itertools import count, islice

from omegaconf import OmegaConf

from ftbench.run.checks import integer, number
from ftbench.run.failures import UserError

MAX_SEED = 2**32 - 1
MAX_SEEDS = 10_000  # final runs per configuration; more is a typo, and a list that long a hang


def check_numbers(tune) -> list[int]:
    """Refuse a budget, batch or seed count below 1 (one line each); the final runs' seeds."""
    integer("tune.trials", tune.trials, 1, why="search trials per strategy")
    integer("tune.batch", tune.batch, 1, why="trials launched at once")
    integer("tune.startup_trials", tune.startup_trials, 0)
    number("tune.heartbeat_seconds", tune.heartbeat_seconds, above=0)
    search_seed = integer("tune.search_seed", tune.search_seed, 0, MAX_SEED)
    return final_seeds(tune.seeds, search_seed)


def final_seeds(seeds, search_seed: int) -> list[int]:
    """``tune.seeds`` as the list of the final runs' seeds, apart from ``search_seed``."""
    if OmegaConf.is_list(seeds) or isinstance(seeds, list | tuple):
        listed = list(seeds)
        if not listed:
            raise UserError("tune.seeds=[] is not valid; allowed: a number of seeds >= 1, or a "
                            "non-empty list of seeds")
        chosen = [integer(f"tune.seeds[{i}]", s, 0, MAX_SEED) for i, s in enumerate(listed)]
        if len(set(chosen)) < len(chosen):
            raise UserError(f"tune.seeds={chosen} repeats a seed; allowed: distinct seeds")
        if search_seed in chosen:
            raise UserError(f"tune.seeds={chosen} holds the search seed {search_seed} "
                            "(tune.search_seed), whose final run would be the search's winning trial "
                            "itself; allowed: seeds other than it, or a number of seeds")
        return chosen
    k = integer("tune.seeds", seeds, 1, MAX_SEEDS, why="final runs per configuration, or a list")
    return list(islice((s for s in count() if s != search_seed), k))
