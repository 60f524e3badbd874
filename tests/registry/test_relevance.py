"""The relevance set (`bench/relevance_set.py`): at least 90 % of its queries, in Arabic,
French and Darija in Latin letters, have a right answer among the first three results."""

from __future__ import annotations

import pytest

from bench.relevance_set import QUERIES, corpus_load, relevance_measure

pytestmark = pytest.mark.django_db


def test_the_set_is_large_and_in_three_scripts():
    scripts = {script for _q, script, _e in QUERIES}
    assert len(QUERIES) >= 50 and scripts == {"ar", "fr", "darija"}
    assert all(sum(1 for _q, s, _e in QUERIES if s == script) >= 15 for script in scripts)


def test_top3_hit_rate_is_at_least_90_percent(reference_data):
    corpus_load()
    result = relevance_measure()
    print(f"relevance top-3 {result.top3_pct} % {result.by_script} misses {result.misses}")
    assert result.top3_pct >= 90, result.misses
