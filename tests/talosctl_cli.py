"""talosctl's command line as its source defines it, to check the argument lists the tasks
build (talosctl itself cannot be built here, so the fakes stand in for it).

``COMMANDS`` is taken from cmd/talosctl/cmd/talos/*.go at the pinned Talos version: every
subcommand the tasks run and the flags cobra registers for it (``Flags()`` and
``PersistentFlags()``, long name and shorthand), plus the persistent flags of every command
(root.go) and the action-tracking flags of reboot/reset/upgrade (track.go).
:func:`flags_in_source` reads the same from the source, so a test can prove the table is the
source's (``test_talos_cli``), when the module is in Go's module cache or can be downloaded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tests.tools_contract import positionals

#: root.go: on every talosctl command.
GLOBAL = {
    "talosconfig": "",
    "nodes": "n",
    "endpoints": "e",
    "cluster": "c",
    "context": "",
    "siderov1-keys-dir": "",
}
#: track.go: on commands that track an action's progress.
TRACK = {"wait": "", "debug": "", "timeout": ""}

#: subcommand path -> (source files under cmd/talosctl/cmd/talos, the flags they register for
#: it: long -> shorthand, whether it tracks an action)
COMMANDS: dict[tuple[str, ...], tuple[tuple[str, ...], dict[str, str], bool]] = {
    ("get",): (("get.go",), {"namespace": "", "output": "o", "watch": "w", "insecure": "i"}, False),
    ("version",): (("version.go",), {"short": "", "client": "", "insecure": "i", "json": ""}, False),
    ("validate",): (("../mgmt/validate.go",), {"config": "c", "mode": "m", "strict": ""}, False),
    ("etcd", "status"): (("etcd.go",), {}, False),
    ("dmesg",): (("dmesg.go",), {"follow": "f", "tail": ""}, False),
    ("apply-config",): (
        ("apply-config.go", "../../pkg/talos/helpers/mode.go"),
        {
            "file": "f",
            "insecure": "i",
            "dry-run": "",
            "cert-fingerprint": "",
            "config-patch": "p",
            "timeout": "",
            "mode": "m",
        },
        False,
    ),
    ("bootstrap",): (("bootstrap.go",), {"recover-from": "", "recover-skip-hash-check": ""}, False),
    ("kubeconfig",): (("kubeconfig.go",), {"force": "f", "force-context-name": "", "merge": "m"}, False),
    ("upgrade",): (
        ("upgrade.go",),
        {
            "image": "i",
            "namespace": "",
            "reboot-mode": "m",
            "progress": "",
            "no-reboot": "",
            "drain": "",
            "drain-timeout": "",
            "legacy": "",
            "force": "f",
            "insecure": "",
            "preserve": "p",
            "stage": "s",
        },
        True,
    ),
    ("upgrade-k8s",): (
        ("upgrade-k8s.go",),
        {
            "from": "",
            "to": "",
            "endpoint": "",
            "with-examples": "",
            "with-docs": "",
            "pre-pull-images": "",
            "upgrade-kubelet": "",
            "dry-run": "",
            "kubelet-image": "",
            "apiserver-image": "",
            "controller-manager-image": "",
            "scheduler-image": "",
            "proxy-image": "",
            "manifests-force": "",
            "manifests-no-prune": "",
            "manifests-inventory-policy": "",
            "manifests-reconcile-timeout": "",
        },
        False,
    ),
    ("reset",): (
        ("reset.go",),
        {
            "graceful": "",
            "reboot": "",
            "insecure": "",
            "wipe-mode": "",
            "user-disks-to-wipe": "",
            "system-labels-to-wipe": "",
        },
        True,
    ),
}

#: Boolean flags (``Bool…`` registrations): they take no separate value word.
BOOLEANS = frozenset(
    {"insecure", "dry-run", "short", "client", "json", "strict", "watch", "recover-skip-hash-check", "force",
     "merge", "no-reboot", "drain", "legacy", "preserve", "stage", "with-examples", "with-docs",
     "pre-pull-images", "upgrade-kubelet", "manifests-force", "manifests-no-prune", "graceful", "reboot",
     "wait", "debug", "follow", "tail"}
)  # fmt: skip


#: The local cluster commands (cmd/talosctl/cmd/mgmt/cluster), whose flags are registered
#: through helpers and name constants that :func:`flags_in_source` cannot follow: path ->
#: (source files under mgmt/cluster, long -> shorthand of the flags the tasks use). The
#: test finds each name as a string in those files. ``cluster``'s own persistent flags
#: (cluster.go) apply to both.
CLUSTER = {"state": "", "name": ""}
MGMT: dict[tuple[str, ...], tuple[tuple[str, ...], dict[str, str]]] = {
    ("cluster", "create", "qemu"): (
        ("create/cmd_qemu.go", "create/cmd.go"),
        {
            "presets": "",
            "controlplanes": "",
            "workers": "",
            "cidr": "",
            "talos-version": "",
            "memory-controlplanes": "",
            "memory-workers": "",
            "talosconfig-destination": "",
        },
    ),
    ("cluster", "destroy"): (("destroy.go",), {"force": "f"}),
}


def flags_of(path: tuple[str, ...]) -> dict[str, str]:
    if path in MGMT:
        return {**GLOBAL, **CLUSTER, **MGMT[path][1]}
    _, own, tracked = COMMANDS[path]
    return {**GLOBAL, **own, **(TRACK if tracked else {})}


def takes_value(word: str) -> bool:
    """Whether a talosctl flag word is followed by its value (not ``--x=v``, not a boolean)."""
    tables = [own[1] for own in COMMANDS.values()] + [own[1] for own in MGMT.values()]
    shorthands = {short: long for own in tables for long, short in own.items() if short}
    shorthands |= {short: long for long, short in GLOBAL.items() if short}
    name = word.lstrip("-")
    long = name if word.startswith("--") else shorthands.get(name[:1], name)
    return "=" not in word and long not in BOOLEANS


def argv_problem(argv: Sequence[str]) -> str | None:
    """Why talosctl would reject ``argv`` (the words after ``talosctl``), or None: the
    subcommand must be one of :data:`COMMANDS` and every flag one it registers."""
    words = positionals(argv, takes_value)
    paths = sorted([*COMMANDS, *MGMT], key=len, reverse=True)
    path = next((p for p in paths if tuple(words[: len(p)]) == p), None)
    if path is None:
        return f"talosctl {' '.join(argv)}: no such subcommand"
    known = flags_of(path)
    shorthands = {short: long for long, short in known.items() if short}
    for word in argv:
        if not word.startswith("-") or word == "-":
            continue
        name = word.lstrip("-").split("=", 1)[0]
        long = name if word.startswith("--") else shorthands.get(name[:1], "")
        if long not in known:
            flag = word.split("=", 1)[0]
            return f"talosctl {' '.join(argv)}: unknown flag {flag} for `talosctl {' '.join(path)}`"
    return None


_FLAG = re.compile(
    r"(?:Persistent)?Flags\(\)\.(?P<func>\w+)\(\s*(?:&?[\w.\[\]]+,\s*)?\"(?P<name>[\w-]+)\"(?:,\s*\"(?P<short>\w?)\")?"
)


def flags_in_source(go_file: Path) -> dict[str, tuple[str, bool]]:
    """long -> (shorthand, boolean) of every flag a talosctl source file registers (a
    shorthand only for the ``…P`` registration functions, whose third argument it is)."""
    found: dict[str, tuple[str, bool]] = {}
    for match in _FLAG.finditer(go_file.read_text()):
        if match["func"].startswith(("Mark", "Lookup", "Set", "Get")):  # not a registration
            continue
        short = match["short"] if match["func"].endswith("P") and match["short"] is not None else ""
        found[match["name"]] = (short, match["func"].startswith("Bool"))
    return found
