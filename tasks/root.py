"""Root tasks: ``inv init``, ``inv configure`` and ``inv doctor``.

(The root ``inv reconcile``, the Taskfile's shortcut, is ``flux.reconcile`` registered twice
in ``tasks/__init__.py``.)"""

from __future__ import annotations

import sys

from invoke.context import Context

from tasks.lib.errors import UserError
from tasks.lib.paths import Paths, paths_for
from tasks.lib.taskdef import task
from tasks.lib.tools.runner import find_tool, is_dry, require


@task(
    help={
        "from": "import a checkout of the Taskfile cluster template at this path (see docs/configuration.md)",
        "force": "with --from: replace existing operator and config files that differ from the import",
    }
)
def init(c: Context, from_: str = "", force: bool = False) -> None:
    """Create the operator's local files: age key, deploy key pair, push token.

    Never overwrites an existing file; files are mode 0600 and git-ignored. Also creates
    cluster.sops.yaml (encrypted, with placeholders) when missing, and re-encrypts the
    bundled example's cluster.sops.yaml to your new key so the example renders. Running it
    twice changes nothing.

    With --from PATH it moves over a checkout of the Taskfile template instead: the same age
    key, deploy key and push token, the settings into cluster.yaml and nodes.yaml, the token
    and tunnel credentials into cluster.sops.yaml (encrypted, never written in plaintext), the
    Talos secrets as they are. It reports each import and each setting it could not map,
    writes all files or none, and refuses to replace your own files unless --force.
    """
    paths = paths_for(c)
    if from_:
        import_template(c, paths, from_, force)
        return
    if force:
        raise UserError("--force only applies to --from: `inv init` alone never overwrites a file")
    from tasks.lib.secrets.operator import create_operator_files, seed_secrets

    dry = is_dry(c)
    made = create_operator_files(paths, dry)
    seeded = seed_secrets(c, paths)
    verb = "would create" if dry else "created"
    for name in made:
        print(f"{verb} {name}")
    if seeded:
        print(f"{'would write' if dry else 'wrote'} {seeded}")
    if not made and not seeded:
        print("nothing to do: every operator file already exists")
        return
    if paths.deploy_key_pub.exists():
        print(f"next: add {paths.rel(paths.deploy_key_pub)} as a deploy key of your repository,")
    print("      edit cluster.yaml, nodes.yaml and (`inv sops.edit cluster.sops.yaml`) the secrets,")
    print("      then run `inv configure`. Back up age.key: without it the secrets cannot be decrypted.")


def import_template(c: Context, paths: Paths, source: str, force: bool) -> None:
    """``inv init --from PATH``: one line per file imported and per note, then what is next."""
    from tasks.lib.config.migrate import import_checkout

    if not is_dry(c):
        require(c, "sops")
    report = import_checkout(source, paths, force=force, dry=is_dry(c))
    for line in report.written:
        print(line)
    for line in report.unchanged:
        print(line)
    for line in report.notes:
        print(line)
    if not is_dry(c):
        print("next: run `inv configure` (it renders the cluster for your settings and re-encrypts the")
        print("      rendered secrets to your age key), review the diff, commit. Back up age.key.")


@task(
    help={
        "force": "where your edit conflicts with the new render, take the render (names files and the loss)",
        "check": "write nothing; exit 1 and show a diff when the tree differs from what configure writes",
        "resolved": "FILE as it is now resolves its conflict: keep it, merge on the new render next time",
    },
    iterable=["resolved"],
)
def configure(
    c: Context, force: bool = False, check: bool = False, resolved: list[str] | None = None
) -> None:
    """Render, encrypt and validate the cluster definition from cluster.yaml and nodes.yaml.

    Validates the config (every problem reported at once), renders the templates into a
    private staging directory, encrypts every *.sops.* file (unchanged secrets keep their
    ciphertext), merges your own edits of generated files into the new render (three-way,
    on the last render; a conflict is shown and nothing is written), lists your own apps in
    the generated kustomizations, builds every kustomization and validates the Talos config,
    and only then swaps the files into the tree; files the templates no longer produce are
    removed. A failure leaves the tree as it was.
    """
    from tasks.lib.config import cache

    paths = paths_for(c)
    if not paths.cluster_config.exists():
        raise UserError("cluster.yaml not found — did you run `inv init`? (see README: Quick start)")
    require(c, "sops")
    if not find_tool("kustomize"):
        require(c, "kubectl")

    def say(line: str) -> None:
        print(f"configure: {line}")

    if not (force or check or resolved):  # nothing changed: said without loading the renderer
        count = cache.unchanged(paths, dry=is_dry(c), say=say)
        if count is not None:
            if not is_dry(c):
                say(f"done — {cache.up_to_date(count)}")
            return
    from tasks.lib.config import configure as pipeline

    options = pipeline.Options(
        force=force, check=check, dry=is_dry(c), say=say, resolved=tuple(resolved or ())
    )
    summary = pipeline.configure(paths, options)
    for name in summary.merged:
        print(f"configure: merged your edit into the new render: {name}")
    for line in summary.forced:
        print(f"configure: {line}")
    if check:
        print("configure --check: the tree is exactly what configure produces")
    elif not options.dry:
        print(f"configure: done — {pipeline.describe(summary)}")
    if summary.edits_kept:
        print(f"configure: your edits kept as they are: {', '.join(summary.edits_kept)}")
    sys.stdout.flush()


@task(
    iterable=["tool"],
    help={
        "install": "first build the pinned tools that are missing or differ into .tools/bin (needs Go)",
        "tool": "only this tool (repeatable), e.g. --tool gitleaks: what a CI job needs",
    },
)
def doctor(c: Context, install: bool = False, tool: list[str] | None = None) -> None:
    """Check this machine: tools and versions against .mise.toml, operator files, what can run.

    Exits 1 when a tool some task needs is missing (or configure cannot run), printing for
    each missing tool how to install it here. --install first builds every tool pinned in
    .mise.toml that is missing or at another version from its Go module into .tools/bin
    (searched after PATH); a tool it cannot build is named with the reason and the way that
    works (mise). --tool limits both to the named tools.
    """
    from tasks.lib.tools.doctor import report
    from tasks.lib.tools.install import install_tools, summary

    paths = paths_for(c)
    only = tool or []
    if install:
        print(summary(install_tools(c, paths.root, only=only)) + "\n")
    report(c, paths, only)
