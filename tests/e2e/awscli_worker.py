"""Runs the unmodified AWS CLI in-process, once per request line, for tests that call it many
times: the CLI's start-up (about a second) is paid once instead of per call.

Protocol: one JSON object per line on stdin, {"args": [...], "env": {...}}; one JSON object
per line on stdout, {"rc": int, "stdout": str, "stderr": str}. The environment of each call
is exactly `env` on top of the worker's own, so no setting leaks from one call to the next.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys


def run(args: list[str], env: dict[str, str]) -> dict[str, object]:
    from awscli.clidriver import create_clidriver

    saved = dict(os.environ)
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = create_clidriver().main(args)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 255
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> None:
    replies = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        replies.write(json.dumps(run(request["args"], request["env"])) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
