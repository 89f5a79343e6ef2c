"""home-ops task library: the root Invoke namespace.

Collections live in ``tasks/*.py``, one module per namespace; the code they call lives in
``tasks/lib/`` (see docs/architecture.md). Each module imports its heavy dependencies inside
task bodies, so ``inv --list`` costs little more than Invoke itself.
"""

from invoke.collection import Collection

from tasks import app, bootstrap, ci, dev, flux, lint, root, sops, talos
from tasks.lib.errors import guard_program
from tasks.lib.paths import repo_paths, tool_env
from tasks.lib.terminal import echo_format

# Invoke's own command line gets the tasks' promise too: no traceback, one line.
guard_program()

ns = Collection()

# Root tasks: the main job, the machine check, and the shortcut the Taskfile had.
for root_task in (root.init, root.configure, root.doctor):
    ns.add_task(root_task)
ns.add_task(flux.reconcile, name="reconcile")

# One collection per module, in bootstrap order, then day 2.
for module in (talos, bootstrap, flux, app, dev, lint, sops):
    ns.add_collection(module.ns)
# What the GitHub Actions workflows call (they run the same on a workstation).
ns.add_collection(ci.ns)

ns.configure(
    {
        # KUBECONFIG, SOPS_AGE_KEY_FILE, SOPS_CONFIG, TALOSCONFIG point into the repository
        # unless the user set them; every command the tasks run gets them. Commands shown by
        # --dry/--echo are bold only on a terminal without NO_COLOR (plain in pipes and logs).
        "run": {"env": tool_env(repo_paths()), "echo_format": echo_format()},
        "home_ops": {"root": None},
    }
)
