"""home-ops task library: the root Invoke namespace.

Only the collections and tasks registered here exist; each module imports its heavy
dependencies inside task bodies, so ``inv --list`` costs little more than Invoke itself.
"""

from invoke import Collection

from . import core
from .paths import repo_paths, tool_env

ns = Collection()
ns.add_task(core.init)
ns.add_task(core.configure)

# Collections, one module each (registered by the modules' owners as they land).
# COLLECTIONS-BEGIN
from . import dev, flux, selftest  # noqa: E402

dev_tasks = Collection.from_module(dev)
dev_tasks.add_task(selftest.e2e)
dev_tasks.add_task(selftest.test)
ns.add_collection(dev_tasks)
ns.add_collection(Collection.from_module(flux))
ns.add_task(flux.reconcile, name="reconcile")
from . import doctor, lint, sops  # noqa: E402

ns.add_collection(lint.ns)
ns.add_collection(sops.ns)
ns.add_task(doctor.doctor)
from . import bootstrap, talos  # noqa: E402

ns.add_collection(Collection.from_module(talos))
ns.add_collection(Collection.from_module(bootstrap))
# COLLECTIONS-END

ns.configure(
    {
        # KUBECONFIG, SOPS_AGE_KEY_FILE, SOPS_CONFIG, TALOSCONFIG point into the repository
        # unless the user set them; every command the tasks run gets them.
        "run": {"env": tool_env(repo_paths())},
        "home_ops": {"root": None},
    }
)
