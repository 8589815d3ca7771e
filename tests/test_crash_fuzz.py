"""The crash fuzzer, bounded and seeded (the method and the long run: tests/fuzz_crash.py).

Random flows with a run store get SIGKILL or SIGINT at a random moment, are resumed in new
processes until they end, and must equal an uninterrupted run, with every task completed
before the signal run exactly once, an intact file and no unfinished rows."""

from __future__ import annotations

import signal

import pytest

from tests.fuzz_crash import flow_source, run_trial, signal_of

SEEDS = range(4100, 4124)  # 24 trials, about 15 s on an idle core


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_interrupted_runs_resume_to_the_uninterrupted_result(tmp_path, seed):
    trial = run_trial(seed, tmp_path)
    assert not trial.problems, (trial, "\n".join(trial.problems))


def test_the_bounded_trials_cover_both_signals_and_both_concurrencies():
    """Ctrl-C (issue 11, reliability 1: SIGINT during a COMMIT) is fuzzed, not only kill -9."""
    kinds = {(signal_of(seed)[1], flow_source(seed)[2]) for seed in SEEDS}
    assert {s for s, _ in kinds} == {signal.SIGKILL, signal.SIGINT}
    assert {c for _, c in kinds} == {1, 4}
    assert (signal.SIGINT, 1) in kinds and (signal.SIGINT, 4) in kinds
