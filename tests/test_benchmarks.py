"""The benchmark suite's smoke run: the one command works end to end on real images and writes its
report, keeping the sections it did not rerun."""
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_quick_run_rewrites_only_its_sections(real_dir, tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("<!-- section: gpu -->\nfigures from another machine\n<!-- /section: gpu -->\n\n"
                   "<!-- notes -->\n## Notes\nwritten by hand\n")
    command = [sys.executable, "-m", "benchmarks.run", "--quick", "--only", "decode,inference",
               "--images", "64", "--data", str(real_dir), "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert text.index("## 1. Decode + crop") < text.index("## 4. Inference") < \
        text.index("figures from another machine") < text.index("## Notes\nwritten by hand")
    assert "| 64 real images, 2 workers |" in text
    assert "| gz predict on 64 unlabelled images, warm cache |" in text
    assert "--quick --only decode,inference" in text and "quick mode" in text and "cores" in text
