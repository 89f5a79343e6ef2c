"""The typed model: every key declared once, with its type, default, constraint and help."""

from __future__ import annotations

import dataclasses

from tasks.lib.config import schema


def test_every_key_is_declared_once_with_type_default_constraint_and_help() -> None:
    for model in (schema.ClusterSettings, schema.NodeSettings):
        for spec_field in dataclasses.fields(model):
            spec = spec_field.metadata["spec"]
            assert spec.help and spec.constraint.doc and spec_field.type, spec_field.name
            if spec_field.default is not dataclasses.MISSING and spec_field.default is not None:
                value = schema.to_template(spec_field.default)
                assert spec.constraint.check(value) is None, spec_field.name  # defaults obey the rules
    assert set(schema.CLUSTER_REQUIRED) == {
        "node_cidr",
        "cluster_api_addr",
        "cluster_dns_gateway_addr",
        "cluster_gateway_addr",
        "repository_name",
        "cloudflare_domain",
    }
