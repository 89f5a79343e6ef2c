"""home-ops task library: the root Invoke namespace.

Only the collections and tasks registered here exist; each module imports its heavy
dependencies inside task bodies, so ``inv --list`` costs little more than Invoke itself.
"""

from invoke import Collection

from . import bootstrap, core, dev, doctor, flux, lint, selftest, sops, talos
from .paths import repo_paths, tool_env

ns = Collection()

# Root tasks: the main job, the machine check, and the shortcut the Taskfile had.
ns.add_task(core.init)
ns.add_task(core.configure)
ns.add_task(doctor.doctor)
ns.add_task(flux.reconcile, name="reconcile")

# One collection per module, in bootstrap order.
ns.add_collection(Collection.from_module(talos))
ns.add_collection(Collection.from_module(bootstrap))
ns.add_collection(Collection.from_module(flux))
dev_tasks = Collection.from_module(dev)
dev_tasks.add_task(selftest.e2e)
dev_tasks.add_task(selftest.test)
ns.add_collection(dev_tasks)
ns.add_collection(lint.ns)
ns.add_collection(sops.ns)

ns.configure(
    {
        # KUBECONFIG, SOPS_AGE_KEY_FILE, SOPS_CONFIG, TALOSCONFIG point into the repository
        # unless the user set them; every command the tasks run gets them.
        "run": {"env": tool_env(repo_paths())},
        "home_ops": {"root": None},
    }
)
