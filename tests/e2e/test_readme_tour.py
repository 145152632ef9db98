"""The README's tour, executed as written in a scratch directory, so it cannot drift from the
code. Only the port is chosen by the test (the tour reads $PORT), and `scripts/setup.sh dev`
is the already-installed checkout's own."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.e2e.harness import BIN, free_port

ROOT = Path(__file__).resolve().parents[2]


def tour_script() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- tour:begin -->\n```sh\n(.*?)```\n<!-- tour:end -->", readme, re.S)
    assert block, "README.md has no tour block between <!-- tour:begin --> and <!-- tour:end -->"
    return block.group(1)


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + tour_script()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRAILKEEPER_"))}
    env.update(PORT=str(free_port()), TMPDIR=str(tmp_path), PATH=f"{BIN}:{env['PATH']}",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout
    assert "Login" in out and "alice" in out  # alice's own event, searchable
    assert "main-logs" in out  # describe-trails and s3 ls: the bucket is named as the tour says
    assert re.search(r"\d+/\d+ digest files valid", out) and "INVALID" not in out
    scratch = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert scratch and not (ROOT / "td").exists() and not (ROOT / "ev.json").exists()  # nothing left in the checkout
