"""The repository testing itself: the test suite, and the operator's whole flow run on test
configurations in a scratch copy of the repository (``inv dev.test``, ``inv dev.e2e``).

``dev.e2e`` answers "does the main job work for a cluster that is not the bundled example?"
without touching the work tree: each configuration gets its own temporary copy of the
repository (every file git tracks or would track, as it is now, uncommitted changes
included), its ``cluster.yaml`` and ``nodes.yaml`` are dropped in, and the same commands an
operator runs are run there, as separate ``inv`` processes. It tests the template, never
the operator's cluster: the secrets are the bundled example's (``tests/fixtures/example/
cluster.sops.yaml``), or the configuration's own ``cluster.sops.yaml`` when its choices need
others (no Cloudflare, a webhook secret), the keys the test-only ones
(``tests/fixtures/example-operator``), so it runs the same on any clone, in CI without the
operator's key, on a repository whose own ``cluster.sops.yaml`` is encrypted to a key CI does
not have.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tasks.lib.errors import UserError
from tasks.lib.paths import OPERATOR_DIR_ENV, Paths
from tasks.lib.tools.runner import TOOLS_DIR_ENV, Command, Outcome, run_one, tools_dir

#: Test configurations: one directory each, holding cluster.yaml and nodes.yaml.
CONFIGS_DIR = Path("tests") / "fixtures" / "configs"
CONFIG_FILES = ("cluster.yaml", "nodes.yaml")
#: How long one step (a whole `inv configure`, say) may take in a scratch copy.
STEP_DEADLINE = 900.0
#: The bundled example (a configuration too, named ``example``) and the test-only keys its
#: secrets are encrypted to: every configuration renders with these secrets and keys.
EXAMPLE_DIR = Path("tests") / "fixtures" / "example"
EXAMPLE_SECRETS = EXAMPLE_DIR / "cluster.sops.yaml"
EXAMPLE_OPERATOR = Path("tests") / "fixtures" / "example-operator"
#: A configuration's own secrets (optional), encrypted to the test-only key.
SECRETS_FILE = "cluster.sops.yaml"

#: What an operator runs after changing the config, in order; a failing step ends that
#: configuration's run. ``inv --dry`` never reaches a node or a cluster.
STEPS: tuple[tuple[str, ...], ...] = (
    ("configure",),
    ("configure", "--check"),
    ("sops.check",),
    ("dev.validate",),
    ("--dry", "bootstrap.talos"),
    ("--dry", "bootstrap.apps"),
)


@dataclass(frozen=True)
class TestConfig:
    name: str
    directory: Path


@dataclass
class StepResult:
    step: str
    ok: bool
    seconds: float
    output: str = ""


@dataclass
class ConfigResult:
    config: TestConfig
    steps: list[StepResult] = field(default_factory=list)
    kept: Path | None = None

    @property
    def ok(self) -> bool:
        return len(self.steps) == len(STEPS) and all(step.ok for step in self.steps)

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.steps)


def step_label(step: Sequence[str]) -> str:
    return f"inv {shlex.join(step)}"


# --------------------------------------------------------------------------- choosing configs


def available(root: Path) -> list[TestConfig]:
    """Every test configuration of the repository, by name."""
    base = root / CONFIGS_DIR
    found = [root / EXAMPLE_DIR] if all((root / EXAMPLE_DIR / f).is_file() for f in CONFIG_FILES) else []
    found += sorted(base.iterdir()) if base.is_dir() else []
    return [
        TestConfig("example" if d == root / EXAMPLE_DIR else d.name, d)
        for d in found
        if d.is_dir() and all((d / f).is_file() for f in CONFIG_FILES)
    ]


def resolve_configs(root: Path, wanted: Sequence[str]) -> list[TestConfig]:
    """The configurations to run: each ``wanted`` entry is the name of a test configuration
    or a directory holding cluster.yaml and nodes.yaml; none means all test configurations."""
    known = {config.name: config for config in available(root)}
    if not wanted:
        if not known:
            raise UserError(
                f"no test configurations in {CONFIGS_DIR} (a directory each, with {', '.join(CONFIG_FILES)})"
            )
        return list(known.values())
    chosen: list[TestConfig] = []
    problems: list[str] = []
    for entry in wanted:
        directory = Path(entry).expanduser()
        if entry in known:
            chosen.append(known[entry])
        elif directory.is_dir():
            missing = [f for f in CONFIG_FILES if not (directory / f).is_file()]
            if missing:
                problems.append(f"{entry}: no {' or '.join(missing)} in this directory")
            else:
                chosen.append(TestConfig(directory.resolve().name, directory.resolve()))
        else:
            names = ", ".join(known) or "none"
            problems.append(f"{entry}: not a test configuration (known: {names}) nor a directory")
    if problems:
        raise UserError(*problems)
    return chosen


# --------------------------------------------------------------------------- the scratch copy


def worktree_files(root: Path) -> list[str]:
    """Every file of the work tree that git tracks or would track (ignored files, such as
    the operator's keys and kubeconfig, are left out), as it is on disk now."""
    outcome = run_one(
        Command(("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"), cwd=root)
    )
    if not outcome.ok:
        raise UserError(f"{root}: not a git work tree — dev.e2e copies the files git knows about")
    names = sorted({name for name in outcome.stdout.split("\0") if name})
    return [name for name in names if (root / name).is_file() or (root / name).is_symlink()]


def copy_files(root: Path, names: Sequence[str], destination: Path) -> None:
    for name in names:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target, follow_symlinks=False)


def scratch_env(scratch: Path) -> dict[str, str]:
    """The scratch copy's own files for every tool (whatever the caller's environment points
    at), the test-only keys of its own copy. KUBECONFIG and TALOSCONFIG name files that do
    not exist in the copy, so nothing run there can reach a real cluster, even by mistake."""
    operator = scratch / EXAMPLE_OPERATOR
    return {
        OPERATOR_DIR_ENV: str(operator),
        "SOPS_AGE_KEY_FILE": str(operator / "age.key"),
        "SOPS_AGE_KEY": "",
        "SOPS_CONFIG": str(scratch / ".sops.yaml"),
        "KUBECONFIG": str(scratch / "kubeconfig"),
        "TALOSCONFIG": str(scratch / "talos" / "clusterconfig" / "talosconfig"),
        "NO_COLOR": "1",
        TOOLS_DIR_ENV: str(tools_dir()),  # the tools `inv doctor --install` built (gitleaks)
    }


def require_example(root: Path) -> None:
    """dev.e2e needs the bundled example's secrets and test-only keys."""
    missing = [str(p) for p in (EXAMPLE_SECRETS, EXAMPLE_OPERATOR / "age.key") if not (root / p).is_file()]
    if missing:
        raise UserError(
            f"dev.e2e renders with the bundled example's test-only secrets: {', '.join(missing)} missing"
        )


def secrets_of(root: Path, config: TestConfig) -> Path:
    """The configuration's own cluster.sops.yaml, else the bundled example's."""
    own = config.directory / SECRETS_FILE
    return own if own.is_file() else root / EXAMPLE_SECRETS


def run_config(
    paths: Paths, files: Sequence[str], config: TestConfig, keep: bool, say: Callable[[str], None]
) -> ConfigResult:
    """Copy the repository, drop ``config`` in and run :data:`STEPS` there until one fails."""
    result = ConfigResult(config)
    scratch = Path(tempfile.mkdtemp(prefix=f"home-ops-e2e-{config.name}-"))
    try:
        copy_files(paths.root, files, scratch)
        for name in CONFIG_FILES:
            shutil.copy2(config.directory / name, scratch / name)
        shutil.copy2(secrets_of(paths.root, config), scratch / SECRETS_FILE)
        env = scratch_env(scratch)
        for step in STEPS:
            started = time.monotonic()
            command = Command(
                (sys.executable, "-m", "tasks", *step), cwd=scratch, env=env, deadline=STEP_DEADLINE
            )
            outcome = run_one(command)
            output = text_of(outcome)
            result.steps.append(StepResult(step_label(step), outcome.ok, time.monotonic() - started, output))
            say(f"{config.name}: {progress_line(result.steps[-1])}")
            if not outcome.ok:
                say("\n".join(f"    {line}" for line in output.splitlines()[-40:]))
                break
    finally:
        if keep:
            result.kept = scratch
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return result


def text_of(outcome: Outcome) -> str:
    if outcome.limit:
        return outcome.problem
    return (outcome.stdout + outcome.stderr).strip()


def progress_line(step: StepResult) -> str:
    line = f"{step.step}: {'ok' if step.ok else 'FAILED'} ({step.seconds:.1f}s)"
    done = [row for row in step.output.splitlines() if row.startswith("configure: done")]
    return f"{line} — {done[-1].removeprefix('configure: done — ')}" if step.ok and done else line


def summary_lines(results: Sequence[ConfigResult]) -> list[str]:
    """One line per configuration, then the verdict."""
    width = max(len(r.config.name) for r in results)
    lines = []
    for r in results:
        if r.ok:
            state = f"ok      {len(r.steps)} steps in {r.seconds:.1f}s"
        else:
            state = f"FAILED  at `{r.steps[-1].step}`" if r.steps else "FAILED  before the first step"
        kept = f"  (kept: {r.kept})" if r.kept else ""
        lines.append(f"  {r.config.name:<{width}}  {state}{kept}")
    failed = [r for r in results if not r.ok]
    verdict = f"{len(results) - len(failed)} of {len(results)} configurations passed"
    return ["e2e:", *lines, f"e2e: {verdict}"]
