"""The one way the project builds a kustomization: standalone kustomize when installed, else
kubectl's built-in copy (same flags, same output)."""

from __future__ import annotations

from tasks.lib.tools.runner import find_tool

#: Lets a build read files outside its folder: the validator builds Flux Kustomizations in a
#: shadow tree of symlinks, whose targets lie outside it.
UNRESTRICTED = ("--load-restrictor", "LoadRestrictionsNone")


def pick_kustomize() -> str:
    """``kustomize`` when installed, else ``kubectl`` (whose ``kustomize`` subcommand builds)."""
    return "kustomize" if find_tool("kustomize") else "kubectl"


def kustomize_argv(directory: str, tool: str | None = None, *, unrestricted: bool = False) -> list[str]:
    """``kustomize build DIR`` or ``kubectl kustomize DIR`` (``tool`` as :func:`pick_kustomize`
    chooses when not given)."""
    tool = tool or pick_kustomize()
    command = ["kustomize", "build"] if tool == "kustomize" else ["kubectl", "kustomize"]
    return [*command, *(UNRESTRICTED if unrestricted else ()), directory]
