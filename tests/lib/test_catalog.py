"""The task catalog generated from the collections into marked sections of the docs."""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, Context, task

from tasks.lib import catalog


@task
def hello(c: Context) -> None:
    """Say hello | loudly.

    Details that stay out of the catalog."""


@task
def show(c: Context) -> None:
    pass


def namespace() -> Collection:
    sub = Collection("greet", hello, show)
    sub.configure({})
    sub.default = "hello"
    return Collection(show, sub)


def test_entries_root_first_then_each_collection_with_its_default() -> None:
    assert catalog.entries(namespace()) == [
        catalog.Entry("show", "(no description)", catalog.ROOT_GROUP),
        catalog.Entry("greet.hello", "Say hello | loudly.", "greet", default=True),
        catalog.Entry("greet.show", "(no description)", "greet"),
    ]
    assert catalog.groups(namespace()) == [catalog.ROOT_GROUP, "greet"]


def test_sections_are_regenerated_between_their_markers_only() -> None:
    text = "# Doc\n\n<!-- catalog:greet:begin -->\nold\n<!-- catalog:greet:end -->\n\nkept\n"
    updated = catalog.update_text(text, namespace())
    assert "old" not in updated and updated.endswith("kept\n")
    assert "| `inv greet.hello` (also `inv greet`) | Say hello \\| loudly. |" in updated
    assert catalog.section_names(updated) == ["greet"]
    assert catalog.update_text(updated, namespace()) == updated
    missing = catalog.update_text(text.replace("greet", "talos"), namespace())
    assert "The `talos` collection is not registered" in missing


def test_stale_files_are_found_and_updated(tmp_path: Path) -> None:
    (tmp_path / "docs" / "tasks").mkdir(parents=True)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- catalog:all:begin -->\n<!-- catalog:all:end -->\n")
    (tmp_path / "docs" / "tasks" / "plain.md").write_text("no markers\n")
    assert catalog.stale_files(tmp_path, namespace()) == [readme]
    assert catalog.update_files(tmp_path, namespace()) == [readme]
    assert "`inv show`" in readme.read_text()
    assert catalog.stale_files(tmp_path, namespace()) == []
