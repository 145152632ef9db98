"""The two source trees of an A/B run: git worktrees, child environments, import checks.

Both trees run under the same interpreter (this venv's python). The venv holds an editable
install of trailkeeper pointing at /work/main/src, so a child must put its own tree first on
the path (PYTHONPATH=<tree>/src:<tree>) and prove, before anything is timed, that
`trailkeeper`, the bench modules and the test helpers they import resolve inside that tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
TREE_ENV = "TRAILKEEPER_AB_TREE"
DEPENDENCY_FILES = ("pyproject.toml", "uv.lock", "requirements*")

# Run by the child interpreter before the benchmark: refuse to run if trailkeeper or the bench
# module would come from anywhere but the tree under test (e.g. the venv's editable install).
_GUARD = """
import importlib.util, os, sys
tree = os.path.realpath(os.environ["TRAILKEEPER_AB_TREE"])
def _inside(path, what):
    real = os.path.realpath(path or "?")
    if not real.startswith(tree + os.sep):
        sys.exit(f"ab guard: {what} resolves to {real}, outside the tree under test {tree}")
import trailkeeper
_inside(trailkeeper.__file__, "trailkeeper")
_inside(importlib.util.find_spec(sys.argv[1]).origin, sys.argv[1])
"""
_RUN_MAIN = _GUARD + """
import runpy
module = sys.argv[1]
sys.argv = [module, *sys.argv[2:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""
_BUILD_TRAIL = _GUARD + """
import importlib, pathlib
importlib.import_module(sys.argv[1]).build(pathlib.Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
"""
# What a console script of the venv (trailkeeper server, trailkeeper validate) would import:
# its sys.path[0] is the venv's bin directory, then PYTHONPATH, then site-packages.
_RESOLVE = """
import importlib.util, json, sys
sys.path[0] = sys.argv[1]
import trailkeeper, trailkeeper.cli
print(json.dumps({name: importlib.util.find_spec(name).origin for name in sys.argv[2:]}
                 | {"trailkeeper": trailkeeper.__file__, "trailkeeper.cli": trailkeeper.cli.__file__}))
"""


class AbError(Exception):
    """The A/B cannot be run as asked (bad commit, shadowed package, failed set-up)."""


@dataclass(frozen=True)
class Tree:
    label: str  # "old" or "new"
    ref: str  # as given on the command line
    commit: str  # full hash of the checked-out commit (HEAD of the tree)
    path: Path
    dirty: bool  # uncommitted changes to tracked files
    temporary: bool  # a worktree made by this run, removed at the end

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "ref": self.ref, "commit": self.commit, "path": str(self.path),
                "dirty": self.dirty, "temporary_worktree": self.temporary}


def git(*args: str, cwd: Path = ROOT) -> str:
    # No optional locks: other people may be working in this repository while the A/B runs.
    proc = subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AbError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def open_tree(label: str, ref: str, scratch: Path) -> Tree:
    """An existing directory is used as it is (uncommitted changes included); anything else is
    a commit, checked out as a detached worktree under `scratch`."""
    if Path(ref).is_dir():
        path = Path(ref).resolve()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", cwd=path).strip())
        return Tree(label, ref, git("rev-parse", "HEAD", cwd=path).strip(), path, dirty, temporary=False)
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    path = scratch / f"{label}-{commit[:10]}"
    git("worktree", "add", "--quiet", "--detach", str(path), commit)
    return Tree(label, ref, commit, path, dirty=False, temporary=True)


def close_tree(tree: Tree) -> None:
    if tree.temporary:
        git("worktree", "remove", "--force", str(tree.path))


def state(tree: Tree) -> str:
    """A short hash of what the tree's children would run: its commit, its uncommitted changes
    and its untracked files (name, size, mtime). It changes if someone edits the tree mid-run."""
    digest = hashlib.sha256(git("rev-parse", "HEAD", cwd=tree.path).encode())
    digest.update(git("diff", "HEAD", "--binary", cwd=tree.path).encode())
    for name in git("ls-files", "--others", "--exclude-standard", cwd=tree.path).splitlines():
        try:
            info = (tree.path / name).stat()
        except FileNotFoundError:
            continue
        digest.update(f"{name} {info.st_size} {info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


def child_env(tree: Tree) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{tree.path / 'src'}{os.pathsep}{tree.path}", TREE_ENV: str(tree.path)}


def run_main_argv(module: str, args: list[str]) -> list[str]:
    return [str(PYTHON), "-c", _RUN_MAIN, module, *args]


def build_trail_argv(module: str, out: Path, periods: int, events: int) -> list[str]:
    """`module.build(out, periods, events)`: the validator bench's trail, made by this tree's code."""
    return [str(PYTHON), "-c", _BUILD_TRAIL, module, str(out), str(periods), str(events)]


def check_imports(tree: Tree, modules: list[str]) -> dict[str, str]:
    """Where trailkeeper (as a console script sees it) and `modules` resolve for this tree's
    children; AbError unless every one is inside the tree."""
    proc = subprocess.run([str(PYTHON), "-c", _RESOLVE, str(PYTHON.parent), *modules], cwd=tree.path,
                          env=child_env(tree), capture_output=True, text=True)
    if proc.returncode != 0:
        raise AbError(f"{tree.label} tree: import check failed:\n{proc.stderr.strip()}")
    origins: dict[str, str] = json.loads(proc.stdout)
    root = tree.path.resolve()
    for name, origin in origins.items():
        if origin is None or not Path(origin).resolve().is_relative_to(root):
            raise AbError(f"{tree.label} tree: {name} resolves to {origin}, not inside {root}")
    return origins


def dependency_diff(old: Tree, new: Tree) -> str:
    """`git diff --stat` of the dependency files between the old commit and the new tree as it
    is on disk; empty when they are the same."""
    return git("diff", "--stat", old.commit, "--", *DEPENDENCY_FILES, cwd=new.path).strip()


def compile_tree(tree: Tree) -> None:
    """Byte-compile the tree. PYTHONDONTWRITEBYTECODE=1 is set here, so without it every
    server and CLI process of a fresh worktree would compile its modules on start while the
    main tree's would load cached bytecode."""
    folders = [name for name in ("src", "bench", "tests") if (tree.path / name).is_dir()]
    subprocess.run([str(PYTHON), "-m", "compileall", "-q", *folders], cwd=tree.path, check=True,
                   stdout=subprocess.DEVNULL)


def same_filesystem(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def interpreter_note() -> str:
    return f"{PYTHON} (Python {sys.version.split()[0]})"
