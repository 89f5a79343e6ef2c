"""Hostile repositories and arguments for ``dev.validate``: every input bounded in size,
depth and aliases, nothing outside the repository read, one clear line per refusal.

Files outside the repository that must never be read are FIFOs: whatever opens one for
reading blocks, so a run that reads it would never end (the subprocess runs under a
deadline, and the test fails instead of hanging)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.lib.fluxtree import validate, yamlio
from tasks.lib.fluxtree.walk import walk

ROOT = Path(__file__).parent.parent
DEADLINE = 300  # seconds: far above a normal run, far below a hang

FLUX_KS = """---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {name}
  namespace: flux-system
spec:
  interval: 1h
  path: {path}
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
"""


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        previous, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\ndata:\n  " + "\n  ".join(lines) + "\n"


def repo_with(tmp_path: Path, apps: dict[str, str], path: str = "./kubernetes/apps") -> Path:
    """A repository whose one Kustomization builds ``path``, with ``apps`` (relative file ->
    text) under kubernetes/apps."""
    repo = tmp_path / "repo"
    (repo / "kubernetes/flux/cluster").mkdir(parents=True)
    (repo / "kubernetes/flux/cluster/ks.yaml").write_text(FLUX_KS.format(name="apps", path=path))
    for name, text in apps.items():
        target = repo / "kubernetes/apps" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return repo


def run_validate(*args: str) -> subprocess.CompletedProcess[str]:
    """``inv dev.validate`` in its own process, under the deadline."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", "dev.validate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def remove_deep(top: Path) -> None:
    """Remove a tree of nested folders without recursion."""
    folders: list[Path] = []
    for here, _dirs, files in walk(top, max_depth=10_000):
        folders.append(here)
        for name in files:
            (here / name).unlink()
    for folder in reversed(folders):
        folder.rmdir()


def test_yaml_bounds() -> None:
    with pytest.raises(yamlio.LimitExceeded, match="aliases are expanded"):
        yamlio.load(billion_laughs())
    with pytest.raises(yamlio.LimitExceeded, match="contains itself"):
        yamlio.load("a: &a [*a]")
    with pytest.raises(yamlio.LimitExceeded, match="documents"):
        yamlio.load_all("---\na: 1\n" * (yamlio.MAX_DOCUMENTS + 1))
    with pytest.raises(yamlio.YAMLError):
        yamlio.load("[" * 5000 + "]" * 5000)  # libyaml's nesting limit
    assert yamlio.load("a: &x {b: 1}\nc: *x") == {"a": {"b": 1}, "c": {"b": 1}}


def test_read_text_refuses_what_is_not_a_small_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(yamlio.FileRefused, match="not a regular file"):
        yamlio.read_text(fifo)
    with pytest.raises(yamlio.FileRefused, match="not a regular file"):
        yamlio.read_text(Path("/dev/zero"))
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(yamlio.MAX_FILE_BYTES + 1)
    with pytest.raises(yamlio.FileRefused, match="over the limit"):
        yamlio.read_text(big)


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "generated"])
def test_a_yaml_bomb_is_refused_before_kustomize_sees_it(tmp_path: Path, listed: bool) -> None:
    from tasks.lib.tools.runner import observe

    apps = {"bomb.yaml": billion_laughs()}
    if listed:
        apps["kustomization.yaml"] = "resources:\n  - ./bomb.yaml\n"
    seen: list[str] = []
    with observe(lambda command: seen.append(command.line)):
        tree = validate(repo_with(tmp_path, apps))
    (problem,) = tree.problems
    assert "aliases are expanded" in problem.message
    assert problem.kind == ("file-refused" if listed else "yaml-invalid")
    assert problem.file == "kubernetes/apps/" + ("kustomization.yaml" if listed else "bomb.yaml")
    assert not tree.kustomizations["flux-system/apps"].built
    assert (
        len([line for line in seen if " kustomize " in line]) == 1
    )  # only the entry: the bomb never reached kustomize


def test_a_huge_sparse_file_is_refused_by_its_size(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"kustomization.yaml": "resources:\n  - ./huge.yaml\n"})
    with (repo / "kubernetes/apps/huge.yaml").open("wb") as handle:
        handle.truncate(1 << 30)  # 1 GB, no disk used
    (problem,) = validate(repo).problems
    assert problem.kind == "file-refused"
    assert f"over the limit of {yamlio.MAX_FILE_BYTES} bytes" in problem.message
    assert (problem.file, problem.line) == ("kubernetes/apps/kustomization.yaml", 2)


def test_deeply_nested_kustomizations_end_with_one_problem(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {})
    current = repo / "kubernetes/apps"
    for _ in range(1500):
        current.mkdir(parents=True, exist_ok=True)
        (current / "kustomization.yaml").write_text("resources:\n  - ./d\n")
        current = current / "d"
    current.mkdir()
    (current / "kustomization.yaml").write_text("resources: []\n")
    try:
        result = run_validate("--json", "--path", str(repo))
    finally:
        remove_deep(repo / "kubernetes/apps")  # shutil.rmtree recurses: pytest could not
    problems = json.loads(result.stdout)["problems"]
    refused = ("file-refused", "kubernetes/apps/kustomization.yaml")
    assert [(p["kind"], p["file"]) for p in problems] == [refused]
    assert "nest more than" in problems[0]["message"]
    assert result.returncode == 1


def test_nothing_outside_the_repository_is_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("cm.yaml", "hostname", "linked.yaml"):
        os.mkfifo(outside / name)  # reading any of them would block the run
    repo = repo_with(
        tmp_path,
        {
            "kustomization.yaml": (
                "resources:\n  - ../../../outside/cm.yaml\n  - ./linked.yaml\n"
                f"configMapGenerator:\n  - name: host\n    files:\n      - {outside}/hostname\n"
            )
        },
    )
    (repo / "kubernetes/apps/linked.yaml").symlink_to(outside / "linked.yaml")
    (repo / "kubernetes/flux/cluster/climb.yaml").write_text(
        FLUX_KS.format(name="climb", path="../../../outside")
    )
    result = run_validate("--json", "--path", str(repo))
    problems = {(p["kind"], p["line"]): p["message"] for p in json.loads(result.stdout)["problems"]}
    assert sorted(problems) == [
        ("missing-file", 9),  # ./outside below the source root does not exist
        ("outside-source", 2),
        ("outside-source", 3),
        ("outside-source", 7),
        ("outside-source", 9),  # spec.path climbing out is kept inside, as Flux does
    ]
    assert "resources entry './linked.yaml' is outside the source root" in problems[("outside-source", 3)]


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "huge"])
def test_vars_file_that_is_not_a_small_file_is_one_line(tmp_path: Path, kind: str) -> None:
    target = (
        {"fifo": tmp_path / "vars", "device": Path("/dev/zero"), "directory": tmp_path}[kind]
        if kind != "huge"
        else tmp_path / "huge.env"
    )
    if kind == "fifo":
        os.mkfifo(target)
    if kind == "huge":
        with target.open("wb") as handle:
            handle.truncate(1 << 30)
    clean = Path(__file__).parent / "fixtures" / "flux-repos" / "clean"
    result = run_validate("--path", str(clean), "--vars-file", str(target))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"--vars-file {target}" in result.stderr


def test_a_build_stopped_by_its_memory_limit_is_one_problem_of_its_kustomization(tmp_path: Path) -> None:
    """kustomize runs under the runner's memory limit: a build that hits it (a batch is
    split until the one Kustomization is alone) is one line on that Kustomization."""
    from tasks.lib.tools.runner import OUT_OF_MEMORY, Command, Outcome, observe

    repo = repo_with(
        tmp_path, {"kustomization.yaml": "resources:\n  - ./cm.yaml\n", "cm.yaml": "kind: ConfigMap\n"}
    )

    def out_of_memory(command: Command) -> Outcome | None:
        if " kustomize " in command.line and "Kustomization flux-system/apps" in command.what:
            return Outcome(command, -9, limit=OUT_OF_MEMORY)
        return None

    with observe(out_of_memory):
        tree = validate(repo)
    assert [(p.kind, p.file, p.message) for p in tree.problems] == [
        (
            "build-failed",
            "kubernetes/apps/kustomization.yaml",
            "kubectl ran out of its 2 GB memory limit building Kustomization flux-system/apps",
        )
    ]
