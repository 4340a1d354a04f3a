"""What the hosts engine needs during the load is imported before the clock starts.

`record_bucketed` (measure/recorder.py) runs pyarrow.compute at the first second boundary of a hosts run;
importing it then stalled every host for ~70 ms. A fresh interpreter shows what building the
engine loads (this test process may have imported pyarrow.compute already).
"""

from __future__ import annotations

import os
import subprocess
import sys

_SCRIPT = """
import sys
from wefperf.load.hosts import HostsEngine, build_hosts
from wefperf.load.scheduler import Schedule

schedule = Schedule.for_run(target_eps=100, batch_size=10, total_events=0, duration_s=2, timeout_s=30)
payload, arrivals = build_hosts(run_id="imports", seed=1, hosts=2, max_items=10, schedule=schedule,
                                total_events=None, constant_eps=100)
HostsEngine(payload=payload, arrivals=arrivals, url="http://127.0.0.1:9/x", max_items=10, max_latency_s=1,
            plan_end_s=2, timeout_s=30, request_timeout_s=1)
print("pyarrow.compute" in sys.modules)
"""


def test_building_a_hosts_engine_has_imported_pyarrow_compute() -> None:
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, check=True)
    assert out.stdout.strip() == "True", out.stdout + out.stderr
