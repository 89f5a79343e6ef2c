"""Variables given by the user: files in env, YAML or Secret form, and NAME=value pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.errors import UserError
from tasks.lib.fluxtree.varsfile import parse_assignments, read_vars_file


def test_vars_file_formats(tmp_path: Path) -> None:
    cases = {
        "env": "# comment\nexport DOMAIN='example.com'\nTZ=UTC\n",
        "yaml": "DOMAIN: example.com\nTZ: UTC\n",
        "secret": "apiVersion: v1\nkind: Secret\ndata:\n  DOMAIN: ZXhhbXBsZS5jb20=\nstringData:\n  TZ: UTC\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert read_vars_file(tmp_path / name) == {"DOMAIN": "example.com", "TZ": "UTC"}, name
    assert parse_assignments(["A=b=c", "B="]) == {"A": "b=c", "B": ""}
    with pytest.raises(UserError):
        parse_assignments(["1A=b"])
