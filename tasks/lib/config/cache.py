"""configure's render cache: a keyed digest of everything a render depends on, and whether
the tree is exactly what the last render with those inputs wrote. Then ``inv configure``
has nothing to do, and says so without loading the renderer, the config model or the
validators (:func:`unchanged`): a no-change run costs little more than ``inv --list``."""

from __future__ import annotations

import importlib.util
import os
import signal
from collections.abc import Callable, Iterable
from pathlib import Path

from tasks.lib import swap
from tasks.lib.boundary import RENDERED_DIRS, RENDERED_FILES, links_out, outside_problems
from tasks.lib.errors import Interrupted, UserError
from tasks.lib.paths import Paths
from tasks.lib.secrets.keys import OperatorFiles, read_operator_files

from . import manifest as mf
from . import ownapps

#: Files whose bytes decide what a render produces (besides templates/ and the operator's
#: key material, which are added separately).
RENDER_INPUT_FILES = ("cluster.yaml", "nodes.yaml", "cluster.sops.yaml", "makejinja.toml")
#: The modules whose code decides what a render produces (by module name: a module that
#: moves or is renamed stops configure with a bug line instead of silently dropping out of
#: the digest; a test checks that every module of tasks.lib.config a render loads is listed).
RENDER_CODE = (
    "tasks.lib.config.schema",
    "tasks.lib.gitremote",
    "tasks.lib.config.constraints",
    "tasks.lib.config.network",
    "tasks.lib.config.document",
    "tasks.lib.config.checks",
    "tasks.lib.config.template_context",
    "tasks.lib.config.render",
    "tasks.lib.config.ownapps",
    "tasks.lib.config.plan",
    "tasks.lib.config.merge",
    "tasks.lib.config.examples",
)

UP_TO_DATE = "nothing changed since the last configure: the tree is up to date"
NOTHING_WRITTEN = "nothing was written: the tree is as it was"

Say = Callable[[str], None]


def up_to_date(count: int) -> str:
    return f"up to date: {count} files unchanged"


def module_file(name: str) -> Path:
    """The source file of module ``name``, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"configure's render cache names the module {name}, which does not exist")
    return Path(spec.origin)


def settle(paths: Paths, *, read_only: bool, say: Say) -> None:
    """Finish what a killed writer left behind (its journal, temporary files), before
    anything looks at the tree; a run that writes nothing (``--check``, ``--dry``) only
    says so."""
    if read_only:
        swap.require_settled(paths.root)
    else:
        swap.finish_interrupted(paths.root, say, paths.key_dirs)


def boundary_problems(paths: Paths) -> list[str]:
    """Every input of a render and every rendered folder that leads outside the repository
    (a symlink to elsewhere, a symlink loop): read through, it would pull a file from
    anywhere into the render or into an error message; written through, it would put
    the render anywhere."""
    root = paths.root
    candidates = [root / name for name in (*RENDER_INPUT_FILES, *RENDERED_DIRS, *RENDERED_FILES)]
    return outside_problems(root, candidates) + links_out(root, paths.templates)


def tree_problems(root: Path, names: Iterable[str]) -> list[str]:
    """The rendered files about to be compared, written or removed that lead outside (a
    symlinked folder on the way, or the file itself a symlink)."""
    return outside_problems(root, [os.path.join(root, name) for name in names])


def read_inputs(paths: Paths) -> tuple[mf.Manifest, OperatorFiles]:
    """The last render's manifest and the operator's key material, once every input and
    every rendered file is known to stay inside the repository (else one line each)."""
    if problems := boundary_problems(paths):
        raise UserError(*problems)
    manifest = mf.Manifest.load(paths.manifest)
    if problems := tree_problems(paths.root, manifest.files):
        raise UserError(*problems)
    return manifest, read_operator_files(paths)


def render_inputs(paths: Paths, operator: OperatorFiles) -> tuple[dict[str, Path], list[str]]:
    """Every file a render depends on, named without saying where the checkout lives (its
    path in the repository, the render code by module name), and the values (the key
    material)."""
    files = {name: paths.root / name for name in RENDER_INPUT_FILES}
    files.update({module: module_file(module) for module in RENDER_CODE})
    for path in paths.templates.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            files[path.relative_to(paths.root).as_posix()] = path
    return files, [operator.age_public_key, operator.deploy_key, operator.push_token]


def own_apps_inputs(paths: Paths, manifest: mf.Manifest) -> list[str]:
    """The user's app folders as inputs of the render (a new or removed one renders again:
    each is listed in a generated kustomization)."""
    return [f"app:{app}" for app in ownapps.apps_on_disk(paths.root, set(manifest.files))]


def inputs_digest(paths: Paths, operator: OperatorFiles, manifest: mf.Manifest) -> str:
    """The digest of every input of a render, keyed by the operator's age identity."""
    files, values = render_inputs(paths, operator)
    return mf.inputs_digest(
        mf.secret_key(operator.age_key), files, [*values, *own_apps_inputs(paths, manifest)]
    )


def is_up_to_date(paths: Paths, manifest: mf.Manifest, inputs: str) -> bool:
    """Same inputs as the last (validated) render, and the tree is what it wrote."""
    if not manifest.files or manifest.inputs != inputs:
        return False
    for name, entry in manifest.files.items():
        path = paths.root / name
        if not path.is_file() or mf.sha256(path.read_bytes()) != entry.in_tree:
            return False
    return True


def unchanged(paths: Paths, *, dry: bool, say: Say) -> int | None:
    """Under the write lock, with what a killed run left settled first: the number of
    files in the tree when it is up to date (and says so), else None: the whole pipeline
    runs. A problem with the inputs stops here with the pipeline's own lines."""
    try:
        with swap.locked(paths.root, "configure", optional=dry):
            settle(paths, read_only=dry, say=say)
            manifest, operator = read_inputs(paths)
            if not is_up_to_date(paths, manifest, inputs_digest(paths, operator, manifest)):
                return None
            say(UP_TO_DATE)
            return len(manifest.files)
    except KeyboardInterrupt as error:
        if isinstance(error, Interrupted) and error.message:
            raise
        raise Interrupted(getattr(error, "signum", signal.SIGINT), NOTHING_WRITTEN) from None
