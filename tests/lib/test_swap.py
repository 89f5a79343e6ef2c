"""tasks/lib/swap.py: the one writer. Single files, the lock, the one scratch folder, the
journal read as hostile input, files in a key folder outside the repository, and the
persistent-failure case (renames and the journal's save keep failing). The crash and OS-error
properties of the swap over whole trees are in tests/test_faults.py."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.lib import swap
from tasks.lib.errors import UserError


def quiet(line: str) -> None:
    pass


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and swap.SCRATCH not in p.relative_to(root).parts
    }


def no_temporaries(*roots: Path) -> None:
    for root in roots:
        scratch = swap.scratch(root)
        left = sorted(p.name for p in scratch.rglob("*")) if scratch.is_dir() else []
        assert [name for name in left if name != swap.LOCK_NAME] == [], root


# --------------------------------------------------------------------------- flushing to disk


def record_flushes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The swap's steps that make it durable, in order: ("start", inode) when a file's
    write-back is started, ("fsync", inode) for every fsync, ("journal STATE", 0) for each
    save of the journal."""
    events: list[tuple[str, int]] = []
    real_fsync, real_save = os.fsync, swap.save_journal
    start = swap.start_writeback()

    def fsync(fd: int) -> None:
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def started(fd: int) -> object:
        events.append(("start", os.fstat(fd).st_ino))
        return start(fd) if start is not None else None

    def saved(root: Path, journal: swap.Journal) -> None:
        events.append((f"journal {journal.state}", 0))
        real_save(root, journal)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(swap, "start_writeback", lambda: started)
    monkeypatch.setattr(swap, "save_journal", saved)
    return events


def changes_of(root: Path, count: int) -> list[swap.Change]:
    return [swap.Change(root / f"d{i % 3}" / f"f{i}.yaml", f"{i}\n".encode()) for i in range(count)]


def written(root: Path, count: int) -> dict[str, bytes]:
    return {f"d{i % 3}/f{i}.yaml": f"{i}\n".encode() for i in range(count)}


def test_every_new_file_is_on_disk_before_the_commit_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = record_flushes(monkeypatch)
    swap.write_files(tmp_path, changes_of(tmp_path, 7), "configure")
    assert tree(tmp_path) == written(tmp_path, 7)
    # each target is now a hard link of its new file: the same inode
    inodes = {(tmp_path / name).stat().st_ino for name in written(tmp_path, 7)}
    commit_point = events.index(("journal committing", 0))
    assert inodes <= {inode for what, inode in events[:commit_point] if what == "fsync"}
    # every write-back started before the first wait: the disk works on them together
    starts = [i for i, (what, inode) in enumerate(events) if what == "start"]
    waits = [i for i, (what, inode) in enumerate(events) if what == "fsync" and inode in inodes]
    assert len(starts) == 7 and max(starts) < min(waits)
    no_temporaries(tmp_path)


def test_no_more_than_the_limit_of_files_is_held_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = record_flushes(monkeypatch)
    monkeypatch.setattr(swap.Flushes, "LIMIT", 3)
    swap.write_files(tmp_path, changes_of(tmp_path, 8), "configure")
    assert tree(tmp_path) == written(tmp_path, 8)
    held = 0
    for what, _ in events[: events.index(("journal committing", 0))]:
        held += {"start": 1, "fsync": -1}.get(what, 0)
        assert held <= 3
    no_temporaries(tmp_path)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to count open files")
def test_a_flush_that_fails_leaves_the_old_files_and_nothing_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "d0").mkdir()
    (tmp_path / "d0" / "f0.yaml").write_bytes(b"old\n")
    real_fsync = os.fsync
    calls = [0]

    def fsync(fd: int) -> None:
        calls[0] += 1
        if calls[0] == 4:  # the journal's file and folder, then the new files
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(UserError) as failed:
        swap.write_files(tmp_path, changes_of(tmp_path, 5), "configure")
    assert failed.value.lines == [
        "could not write the new files, so nothing was changed: "
        "d1/f1.yaml: No space left on device (the disk is full)"
    ]
    assert len(os.listdir("/proc/self/fd")) == before
    assert tree(tmp_path) == {"d0/f0.yaml": b"old\n"}
    assert not swap.pending(tmp_path)
    no_temporaries(tmp_path)


def test_write_back_is_started_by_the_c_library_where_it_has_the_call(tmp_path: Path) -> None:
    start = swap.start_writeback()
    if os.uname().sysname != "Linux":
        assert start is None
        return
    assert start is not None
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"data\n")
        assert start(fd) == 0
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- single files


def test_a_new_file_is_0644_with_its_folders_and_a_replaced_one_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "talos" / "talsecret.sops.yaml"
    swap.write_files(tmp_path, [swap.Change(target, b"ciphertext\n")], "bootstrap.talos")
    assert target.read_bytes() == b"ciphertext\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    target.chmod(0o600)
    swap.write_files(tmp_path, [swap.Change(target, b"new\n")], "sops.rotate")
    assert target.read_bytes() == b"new\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
    no_temporaries(tmp_path)


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "cluster.sops.yaml"
    target.write_text("old\n")

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(swap, "keep_aside", interrupted)
    with pytest.raises(KeyboardInterrupt):
        swap.write_files(tmp_path, [swap.Change(target, b"new\n")], "sops.encrypt")
    assert tree(tmp_path) == {"cluster.sops.yaml": b"old\n"}
    assert not swap.pending(tmp_path)
    no_temporaries(tmp_path)


def test_a_second_writer_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    with swap.locked(tmp_path, "sops.rotate"), pytest.raises(UserError) as error:  # noqa: SIM117
        with swap.locked(tmp_path, "configure"):
            pass
    (line,) = error.value.lines
    assert line.startswith(f"another task is writing this repository (inv sops.rotate, pid {os.getpid()})")
    assert swap.lock_path(tmp_path) == tmp_path / swap.SCRATCH / swap.LOCK_NAME  # no git here


def test_a_file_outside_the_repository_is_never_written(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "out").symlink_to(tmp_path)
    for target in (tmp_path / "victim", tmp_path / "repo" / "out" / "victim"):
        with pytest.raises(UserError, match="outside the repository — not written"):
            swap.write_files(tmp_path / "repo", [swap.Change(target, b"x")], "configure")
    assert not (tmp_path / "victim").exists()


# --------------------------------------------------------------------------- the journal as input


@pytest.mark.parametrize(
    "target",
    ["../victim/rel.txt", "/tmp/x/abs.txt", ".git/hooks/pre-commit", "kubernetes/../../victim", "a/./b"],
)
def test_a_journal_naming_a_file_no_swap_could_write_stops_before_anything(
    tmp_path: Path, target: str
) -> None:
    """A journal decides what is renamed and deleted, and a repository can carry one."""
    root = tmp_path / "repo"
    (root / swap.SCRATCH / swap.SWAP / "new").mkdir(parents=True)
    (root / swap.SCRATCH / swap.SWAP / "new" / "00000").write_text("#!/bin/sh\n")
    victim = tmp_path / "victim" / "rel.txt"
    victim.parent.mkdir()
    victim.write_text("precious\n")
    journal = {"version": 2, "task": "configure", "state": "committing", "entries": []}
    journal["entries"] = [{"target": target, "new": False, "old": True}]
    swap.journal_path(root).write_text(json.dumps(journal))
    with pytest.raises(UserError) as error:
        swap.finish_interrupted(root, quiet)
    (line,) = error.value.lines
    assert line.startswith(f".home-ops/journal.json: {target!r}: ")
    assert line.endswith("nothing was changed (if no home-ops task was interrupted here, delete .home-ops/)")
    assert victim.read_text() == "precious\n" and not (root / ".git").exists()
    with pytest.raises(UserError, match="an interrupted `inv configure` left its swap unfinished"):
        swap.require_settled(root)


@pytest.mark.parametrize(
    "text",
    ["{", "[]", '{"version": 1}', "\udcff", '{"version": 2, "task": "x", "state": "odd", "entries": []}'],
)
def test_an_unreadable_journal_is_one_line(tmp_path: Path, text: str) -> None:
    swap.scratch(tmp_path).mkdir()
    swap.journal_path(tmp_path).write_bytes(text.encode(errors="surrogateescape"))
    with pytest.raises(UserError) as error:
        swap.finish_interrupted(tmp_path, quiet)
    (line,) = error.value.lines
    assert line.startswith(".home-ops/journal.json: unreadable (")


def test_require_settled_names_the_task_only_when_it_is_a_task_name(tmp_path: Path) -> None:
    swap.require_settled(tmp_path)  # nothing pending
    swap.scratch(tmp_path).mkdir()
    for task, shown in (("init --from", "`inv init --from`"), ("\x1b[2Jevil", "task")):
        swap.journal_path(tmp_path).write_text(json.dumps({"task": task}))
        with pytest.raises(UserError) as error:
            swap.require_settled(tmp_path)
        assert error.value.lines == [
            f"an interrupted {shown} left its swap unfinished (.home-ops/journal.json) — "
            "run `inv configure` to finish it"
        ]


def test_what_an_earlier_version_left_is_finished_or_removed(tmp_path: Path) -> None:
    (tmp_path / "kubernetes").mkdir()
    (tmp_path / "kubernetes" / "a.yaml").write_text("old\n")
    (tmp_path / "kubernetes" / ".a.yaml.configure-new").write_text("new\n")
    (tmp_path / "kubernetes" / ".b.yaml.abcd1234.configure").write_text("stray\n")
    (tmp_path / ".age.key.x1y2z3w4.import").write_text("AGE-SECRET-KEY-1\n")
    (tmp_path / ".configure").write_text("a user's own file\n")
    legacy = {"version": 1, "state": "committing", "write": ["kubernetes/a.yaml"], "remove": []}
    (tmp_path / swap.LEGACY_JOURNAL).write_text(json.dumps(legacy))
    swap.finish_interrupted(tmp_path, quiet)
    assert tree(tmp_path) == {"kubernetes/a.yaml": b"new\n", ".configure": b"a user's own file\n"}
    legacy["write"] = ["../victim"]
    (tmp_path / swap.LEGACY_JOURNAL).write_text(json.dumps(legacy))
    with pytest.raises(
        UserError, match=r"\.configure-journal\.json: '\.\./victim': not a file configure writes"
    ):
        swap.finish_interrupted(tmp_path, quiet)


# --------------------------------------------------------------------------- key folder outside


class Crash(Exception):
    pass


def counting(k: int, at_step: Callable[[], None]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    count = [0]

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            if count[0] == k:
                at_step()
            return real(*args, **kwargs)

        return step

    return wrap


def import_layout(tmp_path: Path) -> tuple[Path, Path, list[swap.Change], dict[str, bytes], dict[str, bytes]]:
    """``init --from``'s shape: config files in the repository, keys in a folder outside it."""
    root, keys = tmp_path / "repo", tmp_path / "keys"
    root.mkdir()
    keys.mkdir()
    (root / "cluster.yaml").write_text("old cluster\n")
    (keys / "age.key").write_text("old key\n")
    changes = [
        swap.Change(keys / "age.key", b"new key\n", 0o600),
        swap.Change(keys / "github-push-token.txt", b"token\n", 0o600),
        swap.Change(root / "cluster.yaml", b"new cluster\n"),
        swap.Change(root / "cluster.sops.yaml", b"sops\n"),
    ]
    old = {"repo/cluster.yaml": b"old cluster\n", "keys/age.key": b"old key\n"}
    new = {
        "repo/cluster.yaml": b"new cluster\n",
        "repo/cluster.sops.yaml": b"sops\n",
        "keys/age.key": b"new key\n",
        "keys/github-push-token.txt": b"token\n",
    }
    return root, keys, changes, old, new


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(k=st.integers(min_value=1, max_value=40))
def test_a_crash_at_any_step_with_keys_outside_ends_old_or_new_in_both_folders(
    tmp_path_factory: pytest.TempPathFactory, k: int
) -> None:
    base = tmp_path_factory.mktemp("keys-outside")
    root, keys, changes, old, new = import_layout(base)
    pid = os.fork()
    if pid == 0:  # the child: dies like SIGKILL at step k, no cleanup at all
        try:
            wrap = counting(k, lambda: os._exit(98))
            swap.write_durably = wrap(swap.write_durably)  # type: ignore[method-assign]
            swap.os.link = wrap(os.link)  # type: ignore[assignment]
            swap.os.replace = wrap(os.replace)  # type: ignore[assignment]
            swap.write_files(root, changes, "init --from", key_dirs=[keys])
            os._exit(0)
        except BaseException:
            os._exit(97)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) in (0, 98)
    assert swap.pending(root) or tree(base) in (old, new)
    swap.finish_interrupted(root, quiet, [keys])
    assert tree(base) in (old, new)
    if tree(base) == new:
        assert stat.S_IMODE((keys / "age.key").stat().st_mode) == 0o600
    no_temporaries(root, keys)


def test_keys_outside_the_repository_get_their_own_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, keys, changes, _, new = import_layout(tmp_path)
    seen: list[str] = []
    real = swap.write_durably

    def spy(path: Path, data: bytes, mode: int = 0o644, flushes: swap.Flushes | None = None) -> None:
        seen.append(str(path.relative_to(tmp_path)))
        real(path, data, mode, flushes)

    monkeypatch.setattr(swap, "write_durably", spy)
    swap.write_files(root, changes, "init --from", key_dirs=[keys])
    assert tree(tmp_path) == new
    assert sorted(p for p in seen if "/new/" in p) == [
        "keys/.home-ops/swap/new/00000",
        "keys/.home-ops/swap/new/00001",
        "repo/.home-ops/swap/new/00002",
        "repo/.home-ops/swap/new/00003",
    ]
    no_temporaries(root)
    assert not swap.scratch(keys).exists()  # nothing of ours left in the key store


def test_a_journal_entry_in_a_key_folder_that_is_not_the_current_one_is_refused(tmp_path: Path) -> None:
    root, keys, _, _, _ = import_layout(tmp_path)
    swap.scratch(root).mkdir()
    journal = swap.Journal("init --from", [swap.Entry(str(keys / "age.key"), True, True)], "committing")
    swap.journal_path(root).write_text(journal.dumps())
    with pytest.raises(UserError, match="outside the repository and not in the operator's key folder"):
        swap.finish_interrupted(root, quiet)  # HOME_OPS_OPERATOR_DIR no longer names it
    assert (keys / "age.key").read_text() == "old key\n"


# --------------------------------------------------------------------------- persistent failure


@pytest.mark.parametrize("journal_fails", [False, True], ids=["journal-saved", "journal-save-fails"])
def test_when_renames_keep_failing_the_error_names_every_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journal_fails: bool
) -> None:
    """A disk that goes read-only after two renames: the old files cannot all be put back.
    The lines say which files are new and what the next run does, and it does exactly that."""
    root = tmp_path
    names = [f"kubernetes/f{i}.yaml" for i in range(5)]
    for name in names:
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_text(f"old {name}\n")
    changes = [swap.Change(root / name, f"new {name}\n".encode()) for name in names]
    real_replace, real_save = os.replace, swap.save_journal
    renames = [0]

    def replace(src: Any, dst: Any) -> None:
        if "/swap/" in str(src):
            renames[0] += 1
            if renames[0] > 2:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        real_replace(src, dst)

    def save(where: Path, journal: swap.Journal) -> None:
        if journal_fails and journal.state == "reverting":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        real_save(where, journal)

    monkeypatch.setattr(swap.os, "replace", replace)
    monkeypatch.setattr(swap, "save_journal", save)
    with pytest.raises(UserError) as error:
        swap.write_files(root, changes, "configure")
    first, second, third = error.value.lines
    assert first == "could not write the new files: kubernetes/f2.yaml: Read-only file system"
    assert (
        second == "could not put every old file back: 2 of 5 are new: kubernetes/f0.yaml, kubernetes/f1.yaml"
    )
    now = tree(root)
    assert [n for n in names if now[n].startswith(b"new")] == ["kubernetes/f0.yaml", "kubernetes/f1.yaml"]
    monkeypatch.setattr(swap.os, "replace", real_replace)
    monkeypatch.setattr(swap, "save_journal", real_save)
    with pytest.raises(UserError, match="left its swap unfinished"):
        swap.require_settled(root)
    swap.finish_interrupted(root, quiet)  # the disk is writable again
    if journal_fails:  # the journal still says "committing": the next run finishes the swap
        assert third.endswith("the next `inv configure` finishes the swap (every file new)")
        assert tree(root) == {n: f"new {n}\n".encode() for n in names}
    else:
        assert third.endswith("the next `inv configure` puts the old files back")
        assert tree(root) == {n: f"old {n}\n".encode() for n in names}
    no_temporaries(root)


def test_a_journal_whose_new_files_are_gone_changes_nothing(tmp_path: Path) -> None:
    """Forward only when every new file is there: never half a swap."""
    (tmp_path / "kubernetes").mkdir()
    for name in ("a", "b"):
        (tmp_path / "kubernetes" / f"{name}.yaml").write_text(f"old {name}\n")
    entries = [swap.Entry(f"kubernetes/{name}.yaml", True, True) for name in ("a", "b")]
    swap.scratch(tmp_path).mkdir()
    swap.journal_path(tmp_path).write_text(swap.Journal("configure", entries, "committing").dumps())
    new = swap.scratch(tmp_path) / swap.SWAP / "new"
    new.mkdir(parents=True)
    (new / "00000").write_text("new a\n")  # b's new file is missing
    with pytest.raises(UserError) as error:
        swap.finish_interrupted(tmp_path, quiet)
    (line,) = error.value.lines
    assert line.startswith(
        ".home-ops/journal.json: the new 'kubernetes/b.yaml' of an interrupted `inv configure`"
    )
    assert tree(tmp_path) == {"kubernetes/a.yaml": b"old a\n", "kubernetes/b.yaml": b"old b\n"}
