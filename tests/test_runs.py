"""Training runs in a background process: events recorded as they come, stop honoured, the
server's threads untouched."""
import time

from dataclasses import replace

import pytest
import torch
from conftest import TINY

from gzcore import runs


@pytest.mark.slow
def test_a_run_reports_progress_and_stops_when_asked(dashboard_env, tmp_path):
    cfg = replace(TINY, epochs=50, threads=1)  # one thread, as the dashboard runs them
    run = runs.Run(tmp_path / "missing", cfg, tmp_path / "bad.pt").start()
    run.thread.join(timeout=60)
    assert run.error and "no such folder" in run.error and run.status().startswith("failed")

    threads = torch.get_num_threads()
    run = runs.Run(dashboard_env["GZ_DATA"], cfg, runs.run_path(tmp_path, cfg)).start()
    deadline = time.time() + 120
    while not len(run.epochs()) and time.time() < deadline:
        time.sleep(0.1)
    assert run.running and 0 < run.progress < 1 and len(run.steps()) >= 1
    run.stop.set()
    run.thread.join(timeout=60)
    assert run.result and "stopped early" in run.status() and run.out.is_file()
    assert run.status().endswith("(cpu, fp32)")  # what ran, as resolved
    assert torch.get_num_threads() == threads  # the dashboard gets its threads back
    assert runs.checkpoints(tmp_path) == [run.out] and runs.describe(run.out)["model"] == "dieleman"
