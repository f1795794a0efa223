"""How ftbench judges a difference: the statistics behind the report's words, on numbers alone.

The two-level bootstrap over seeds and test examples (``bootstrap``), the joint bounds of the
verdict (``bounds``), the verdict itself (``verdict``: equivalent, worse or undecided against the
best, and the cheapest pick), what more evidence would decide it (``advice``), the settings they
take (``choice``), and across tasks, Friedman's test with Nemenyi's critical difference
(``ranks``, ``permutation``). Nothing here reads a run, a file or a config, or writes text: the
report (``ftbench.report``) gathers the evidence and says what these modules decide. The method
is explained for the reader in docs/report.md and docs/suites.md.
"""
