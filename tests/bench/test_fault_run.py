"""The fault run (bench/fault_run.py; bench/faults.py --quick) as a test: processes SIGKILLed, the broker
stopped, a spool overflowing, and still nothing lost beyond what the producers counted, nothing twice, nothing leaked.

bench/faults.py starts a broker of its own (a LocalBroker from the jars of `datamin kafka start`, on free
ports) and stops and starts it; the shared broker is never touched. The `kafka_bootstrap` fixture is
requested only to follow the suite's rule: skipped without a broker, an error under CI=true."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import fault_run as faults

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "faults.py"



def test_result_line_round_trips_and_rejects_other_lines() -> None:
    figures = {k: i for i, k in enumerate(faults.RESULT_KEYS)}
    assert faults.parse_result_line(faults.result_line(figures)) == figures
    with pytest.raises(ValueError):
        faults.parse_result_line("RESULT erasure 1.0 s ratio=1 baseline=x")


def test_tally_counts_loss_beyond_the_counted_drops_and_duplicates() -> None:
    expected = faults.Expectations()
    expected.ids["http_request"] = {"a", "b", "c"}
    expected.lossy_ids = {"l1", "l2", "l3", "l4"}
    expected.request_ids = {"r1"}
    found = {"http_request": ["a", "b", "b", "l1", "l2"], "privacy_request": ["r1"]}
    t = faults.tally(expected, found, dropped_main=0, dropped_lossy=2)
    # c is missing and nobody counted it; l3/l4 were counted as dropped
    assert (t.produced, t.dropped, t.warehoused, t.lost, t.duplicated, t.unexpected) == (8, 2, 5, 1, 1, 0)


def test_plan_has_the_asked_faults_and_no_kill_inside_an_outage() -> None:
    import random

    shape = faults.shape(quick=True)
    plan = faults.plan_faults(shape, random.Random(3))
    kinds = [f.kind for f in plan]
    assert kinds.count("kill-processor") == shape.processor_kills >= 2
    assert kinds.count("kill-sink") == shape.sink_kills >= 1
    outages = [f for f in plan if f.kind == "outage"]
    assert len(outages) == shape.outages >= 1
    for f in plan:
        assert 0 <= f.at <= shape.seconds
        if f.kind != "outage":
            assert all(not (o.at <= f.at <= o.at + o.seconds) for o in outages)


@pytest.mark.broker_control
def test_quick_fault_run_loses_duplicates_and_leaks_nothing(kafka_bootstrap: str, kafka_client: str) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--transport", kafka_client], cwd=ROOT,
                            capture_output=True, text=True,
                            timeout=600, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT faults ")]
    assert lines, f"no RESULT line; exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    figures = faults.parse_result_line(lines[-1])
    assert result.returncode == 0, result.stdout[-3000:]
    assert figures["lost"] == 0
    assert figures["duplicated"] == 0
    assert figures["leaks"] == 0
    assert figures["kills"] >= 2
    assert figures["outages"] >= 1
    assert figures["warehoused"] > 0 and figures["produced"] > figures["warehoused"]  # the spool-full loss
