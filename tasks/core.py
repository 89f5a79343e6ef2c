"""Root tasks: init and configure (being written)."""

from invoke import task


@task
def init(c):
    """Create the operator's local files (age key, deploy key, push token)."""


@task
def configure(c):
    """Render, encrypt and validate the cluster definition."""
