"""Flux postBuild substitution: examples and properties."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from tasks.lib.fluxtree.subst import is_disabled, references, substitute

NAMES = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)
VALUES = st.text(alphabet=string.ascii_letters + string.digits + " ./:-", max_size=12)
PLAIN = st.text(alphabet=string.printable.replace("$", ""), max_size=60)


def test_examples() -> None:
    variables = {"APP": "atuin", "EMPTY": ""}
    assert substitute("name: ${APP}", variables).text == "name: atuin"
    assert substitute("${MISSING:=5Gi}", variables).text == "5Gi"
    assert substitute("${EMPTY:=x} ${EMPTY:-y} ${EMPTY=z} ${EMPTY:?v}", variables).text == "x y z v"
    failed = substitute("${EMPTY-w} ${APP+x}", variables)
    assert failed.error == "missing closing brace in '${EMPTY-w}'"  # Flux's envsubst stops there
    assert substitute("${APP:=other}", variables).text == "atuin"
    assert substitute("$${APP} $HOME ${1} $", variables).text == "${APP} $HOME  $"
    assert substitute("${APP:1:3} ${APP^^} ${#APP} ${APP/t/T}", variables).text == "tui ATUIN 5 aTuin"
    assert substitute("${MISSING:=${APP}-x}", variables).text == "atuin-x"
    result = substitute("a ${NOPE} b ${ALSO:-}", variables)
    assert result.text == "a  b "
    assert result.unresolved == ["NOPE"]


def test_references_and_disabled() -> None:
    assert references("${A} $${B} ${C:=x}") == ["A", "C"]
    assert is_disabled({"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}}})
    assert is_disabled({"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}}})
    assert not is_disabled({"metadata": {}})


@given(PLAIN, st.dictionaries(NAMES, VALUES))
def test_text_without_dollars_is_unchanged(text: str, variables: dict[str, str]) -> None:
    result = substitute(text, variables)
    assert result.text == text
    assert result.unresolved == []


@given(NAMES, VALUES, PLAIN, PLAIN)
def test_defined_variable_is_replaced(name: str, value: str, before: str, after: str) -> None:
    assert substitute(f"{before}${{{name}}}{after}", {name: value}).text == f"{before}{value}{after}"


@given(NAMES, VALUES, st.sampled_from([":=", ":-", "=", ":?"]))
def test_default_applies_when_undefined_or_empty(name: str, default: str, op: str) -> None:
    default = default.replace("}", "")
    assert substitute(f"${{{name}{op}{default}}}", {}).text == default
    assert substitute(f"${{{name}{op}{default}}}", {name: ""}).text == default
    assert substitute(f"${{{name}{op}{default}}}", {name: "set"}).text == "set"


@given(NAMES, VALUES, st.sampled_from(["-", "+", "!"]))
def test_bash_operators_flux_lacks_stop_the_substitution(name: str, default: str, op: str) -> None:
    result = substitute(f"a ${{{name}{op}{default.replace('}', '')}}} b", {name: "set"})
    assert result.error is not None and "missing closing brace" in result.error


@given(NAMES)
def test_undefined_without_default_is_reported(name: str) -> None:
    result = substitute(f"x ${{{name}}} y", {})
    assert result.text == "x  y"
    assert result.unresolved == [name]


@given(NAMES, VALUES)
def test_escape_is_literal(name: str, value: str) -> None:
    assert substitute(f"$${{{name}}}", {name: value}).text == f"${{{name}}}"


@given(st.text(max_size=80), st.dictionaries(NAMES, VALUES))
def test_never_raises(text: str, variables: dict[str, str]) -> None:
    substitute(text, variables)
