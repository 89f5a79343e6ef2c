"""``inv init --from PATH``: move over from a checkout of the Taskfile-era cluster template.

Such a checkout holds ``cluster.yaml`` (with the Cloudflare token in plaintext),
``nodes.yaml``, ``cloudflare-tunnel.json``, ``age.key``, ``github-deploy.key``/``.pub``,
maybe ``github-push-token.txt`` and, once ``task bootstrap:talos`` ran, the cluster's Talos
secrets in ``talos/talsecret.sops.yaml``. The import:

- keeps the same age key (every file already encrypted to it, and the cluster's
  ``sops-age`` Secret, keep working), the same deploy key and push token, and the Talos
  secrets as they are (already ciphertext, checked to decrypt with that key);
- writes the plain settings into ``cluster.yaml`` and ``nodes.yaml``, mapping the keys the
  template renamed over time and reporting, one line each, what it cannot map;
- puts every secret (the token, the tunnel credentials) into ``cluster.sops.yaml``,
  encrypted by sops from stdin: the plaintext never touches a disk;
- validates everything before writing anything, refuses to replace the operator's own files
  unless forced, and writes all files or none.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML

from tasks.lib import swap
from tasks.lib.boundary import where_it_leads
from tasks.lib.config.checks import load_config, validate
from tasks.lib.config.document import Document, key_position, read_documents
from tasks.lib.config.schema import CLUSTER_KEYS, NODE_KEYS
from tasks.lib.config.template_context import SECRET_CHECKS
from tasks.lib.errors import UserError
from tasks.lib.files import MAX_KEY_BYTES, read_bytes, read_text
from tasks.lib.paths import Paths
from tasks.lib.problems import ConfigProblem
from tasks.lib.secrets.keys import (
    age_recipients_of,
    deploy_key_pair,
    openssh_public_key,
    push_token,
    read_age_identity,
)
from tasks.lib.secrets.operator import EXAMPLE_OPERATOR
from tasks.lib.secrets.sopsfile import decrypt_stdin_argv, encrypt_to_argv, is_encrypted, is_encrypted_text
from tasks.lib.tools.runner import Command, run_many

if TYPE_CHECKING:
    from tasks.lib.tools.runner import Outcome

#: Keys the template renamed: old name -> our name. ``cloudflare_ingress_addr`` changed
#: meaning once and is resolved by :func:`rename_target`.
RENAMED = {
    "cluster_ingress_addr": "cluster_gateway_addr",  # ingress-nginx era (spring 2025)
    "cloudflare_dns_gateway_addr": "cluster_dns_gateway_addr",  # before March 2025
    "cloudflare_tunnel_ingress_addr": "cloudflare_gateway_addr",  # before March 2025
}
#: Keys with no counterpart here, and why.
DROPPED = {
    "cloudflare_cluster_issuer": "this repository always issues Let's Encrypt production certificates",
}
#: Settings that are secrets: they go to cluster.sops.yaml, never to cluster.yaml.
SECRET_SETTINGS = ("cloudflare_token",)
#: Settings written as numbers (the template kept them as strings).
INTEGER_SETTINGS = ("node_vlan_tag", "cilium_bgp_router_asn", "cilium_bgp_node_asn", "mtu")
TUNNEL_KEYS = ("AccountTag", "TunnelID", "TunnelSecret")

CLUSTER_HEADER = """\
---
# Cluster settings, imported from the Taskfile template by `inv init --from`. Secrets do not
# belong here: they live encrypted in cluster.sops.yaml (`inv sops.edit cluster.sops.yaml`).
# After editing, run `inv configure`. Every key, its default and its constraints:
# docs/configuration.md
"""
NODES_HEADER = """\
---
# One entry per machine, imported from the Taskfile template by `inv init --from`.
# After editing, run `inv configure`.
"""
SECRETS_HEADER = """\
# Secrets the templates need, encrypted by SOPS. Edit with `inv sops.edit cluster.sops.yaml`.
# Imported by `inv init --from`: the Cloudflare token from cluster.yaml and the tunnel
# credentials from cloudflare-tunnel.json.
"""

PRIVATE = 0o600
PUBLIC = 0o644


@dataclass
class Source:
    """Where the template checkout keeps each file, and how messages name it."""

    root: Path
    shown: str  # PATH as the user typed it
    config_dir: Path  # the root, or the .private/<time>/ archive `task template:tidy` made

    def label(self, path: Path) -> str:
        return f"{self.shown.rstrip('/')}/{path.relative_to(self.root)}"

    @property
    def cluster(self) -> Path:
        return self.config_dir / "cluster.yaml"

    @property
    def nodes(self) -> Path:
        return self.config_dir / "nodes.yaml"

    def file(self, name: str) -> Path:
        return self.root / name

    def inside(self, path: Path) -> Path:
        """``path``, which must not lead out of the checkout (its settings and Talos secrets;
        its key files may be links to the operator's key store)."""
        problem = where_it_leads(self.root, path, self.label(path))
        if problem is not None:
            raise UserError(problem.replace("outside the repository", f"outside {self.shown}"))
        return path


@dataclass
class Planned:
    """One file the import writes."""

    target: Path
    content: bytes
    mode: int
    note: str  # the report line
    created: bool = False  # made new, not taken from the checkout


@dataclass
class Import:
    """Everything an import decided, before anything is written."""

    files: list[Planned] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be mapped, renames, hints
    secrets: dict[str, Any] = field(default_factory=dict)  # plaintext, memory only
    recipient: str = ""
    kept: list[str] = field(default_factory=list)  # operator files of this repository left alone


def is_set(value: Any) -> bool:
    """The template's sample writes ``""`` for "use the default"."""
    return value is not None and value != ""


def plain(value: Any) -> Any:
    """ruamel's round-trip types (CommentedMap, ScalarFloat, ...) as plain JSON values."""
    return json.loads(json.dumps(value, default=str))


def as_int(value: Any) -> int | None:
    """A whole number, also when the template kept it as a string ("64513")."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# --------------------------------------------------------------------------- finding the files


def locate(path: str) -> Source:
    """The template checkout at ``path``; its config may sit in ``.private/<time>/`` when
    ``task template:tidy`` archived it."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(
            f"--from {path}: not a directory — give the checkout of your Taskfile-template repository"
        )
    root = root.resolve()
    source = Source(root, path, root)
    if source.cluster.exists():
        return source
    archives = sorted(
        (p for p in (root / ".private").glob("*") if (p / "cluster.yaml").is_file()),
        key=lambda p: p.name,
    )
    if archives:
        return Source(root, path, archives[-1])
    if (root / "cluster.toml").exists():
        raise UserError(
            f"{source.label(root / 'cluster.toml')}: the template's newer TOML format — "
            "`inv init --from` reads the Taskfile era's cluster.yaml and nodes.yaml"
        )
    if (root / "config.yaml").exists():
        raise UserError(
            f"{source.label(root / 'config.yaml')}: the template's format before 2025 — "
            "move it to cluster.yaml and nodes.yaml with the template first"
        )
    raise UserError(
        f"{source.label(source.cluster)} not found — is {path} a checkout of the Taskfile template?"
    )


# --------------------------------------------------------------------------- cluster.yaml, nodes.yaml


def rename_target(key: str, data: Mapping[str, Any]) -> str | None:
    if key == "cloudflare_ingress_addr":
        # Before March 2025 it was the internal ingress and the tunnel had its own key.
        return (
            "cluster_gateway_addr" if "cloudflare_tunnel_ingress_addr" in data else "cloudflare_gateway_addr"
        )
    return RENAMED.get(key)


def rename_key(data: Any, old: str, new: str) -> None:
    """Rename a key of a ruamel mapping in place, keeping its position (for messages)."""
    keys = list(data)
    position = keys.index(old)
    value = data.pop(old)
    data.insert(position, new, value)
    lc = getattr(data, "lc", None)
    if lc is not None and old in getattr(lc, "data", {}):
        lc.data[new] = lc.data.pop(old)


def where(doc: Document, node: Any, key: str) -> str:
    line, _ = key_position(node, key)
    return f"{doc.label}:{line}" if line else doc.label


def translate_cluster(doc: Document, out: Import) -> list[ConfigProblem]:
    """Map the template's cluster.yaml onto ours, in place: renames, secrets taken out,
    unknown keys dropped with a note. Returns problems that stop the import."""
    data = doc.data
    if not isinstance(data, dict):
        return [ConfigProblem(doc.label, None, None, "", "expected a mapping of settings")]
    problems: list[ConfigProblem] = []
    for key in list(data):
        name = str(key)
        target = rename_target(name, data)
        if name in SECRET_SETTINGS:
            if is_set(data[key]) and (message := SECRET_CHECKS[name](data[key])) is not None:
                problems.append(doc.problem(data, key, name, message))
            value = data.pop(key)
            if is_set(value):
                out.secrets[name] = plain(value)
        elif target is not None:
            if target in data:
                problems.append(doc.problem(data, key, name, f"both {name} and {target} are set — keep one"))
                data.pop(key)
                continue
            rename_key(data, name, target)
            out.notes.append(f"renamed: {where(doc, data, target)}: {name} → {target}")
        elif name in DROPPED:
            out.notes.append(f"not mapped: {where(doc, data, name)}: {name}: {DROPPED[name]}")
            data.pop(key)
        elif name not in CLUSTER_KEYS:
            out.notes.append(f"not mapped: {where(doc, data, name)}: {name}: no such setting here, left out")
            data.pop(key)
        elif not is_set(data[key]):
            data.pop(key)  # the template's sample writes "" for "use the default"
    for name in SECRET_SETTINGS:
        if name not in out.secrets:
            problems.append(
                ConfigProblem(doc.label, None, None, name, "missing — the Cloudflare API token is required")
            )
    return problems


def translate_nodes(doc: Document, out: Import) -> None:
    """Drop the node keys we do not have (noting each) and unset values."""
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return  # validate() reports the shape
    for index, node in enumerate(data["nodes"]):
        if not isinstance(node, dict):
            continue
        for key in list(node):
            name = str(key)
            if name not in NODE_KEYS:
                out.notes.append(
                    f"not mapped: {where(doc, node, name)}: nodes[{index}].{name}: no such setting, left out"
                )
                node.pop(key)
            elif not is_set(node[key]):
                node.pop(key)


def settings(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values in the user's order, numbers as numbers (the template kept ASNs and the
    VLAN tag as strings)."""
    result = {}
    for key, raw in mapping.items():
        value = plain(raw)
        if key in INTEGER_SETTINGS and as_int(value) is not None:
            value = as_int(value)
        result[str(key)] = value
    return result


def dump_yaml(header: str, data: Any) -> str:
    """YAML in the style of the bundled files (two-space indents, block lists)."""
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.default_flow_style = False
    yaml.width = 4096
    stream = io.StringIO()
    yaml.dump(data, stream)
    return header + stream.getvalue()


def load_plain(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def read_config(source: Source, out: Import) -> tuple[str, str]:
    """cluster.yaml and nodes.yaml in our format (text), validated as the template's files
    (positions point into them), or a UserError listing every problem."""
    outside = []
    for path in (source.cluster, source.nodes):
        try:
            source.inside(path)
        except UserError as error:
            outside += error.lines
    if outside:
        raise UserError(*outside)
    cluster, nodes = read_documents(
        ((path, source.label(path)) for path in (source.cluster, source.nodes)),
        missing_hint="`task init` of the template creates it",
    )
    problems = translate_cluster(cluster, out)
    translate_nodes(nodes, out)
    problems += validate(cluster, nodes)
    if problems:
        raise UserError.from_problems(problems)
    cluster_data = settings(cluster.data)
    node_data = {"nodes": [settings(node) for node in nodes.data["nodes"]]}
    return dump_yaml(CLUSTER_HEADER, cluster_data), dump_yaml(NODES_HEADER, node_data)


def check_written_config(cluster_text: str, nodes_text: str) -> None:
    """What will be written validates as ours too (a failure here is a bug, not bad input)."""
    with tempfile.TemporaryDirectory(prefix="home-ops-import-") as scratch:
        for name, text in (("cluster.yaml", cluster_text), ("nodes.yaml", nodes_text)):
            (Path(scratch) / name).write_text(text)  # plain settings only: nothing secret
        try:
            load_config(Path(scratch) / "cluster.yaml", Path(scratch) / "nodes.yaml", Path(scratch))
        except UserError as error:
            raise RuntimeError(f"bug: the imported config does not validate: {error.lines[0]}") from None


# --------------------------------------------------------------------------- secrets and keys


def read_tunnel(source: Source) -> dict[str, Any]:
    path = source.file("cloudflare-tunnel.json")
    label = source.label(path)
    if not path.is_file():
        raise UserError(
            f"{label} not found — create it with `cloudflared tunnel create` (see the template's README)"
        )
    try:
        tunnel = json.loads(read_text(path, label, limit=MAX_KEY_BYTES))
    except ValueError as error:
        raise UserError(f"{label}: not JSON: {str(error).splitlines()[0]}") from None
    if isinstance(tunnel, dict):
        tunnel = {key: value for key, value in tunnel.items() if key in (*TUNNEL_KEYS, "Endpoint")}
    message = SECRET_CHECKS["cloudflare_tunnel"](tunnel)
    if message is not None:
        raise UserError(f"{label}: {message.replace('cloudflare-tunnel.json', 'the file')}")
    return {key: str(value) for key, value in tunnel.items()}


def read_age_key(source: Source) -> tuple[bytes, str]:
    """(file bytes, public key) of the template's age key."""
    path = source.file("age.key")
    label = source.label(path)
    if not path.is_file():
        raise UserError(
            f"{label} not found — without the age key nothing encrypted in the checkout can be read"
        )
    _, public = read_age_identity(path, label)
    content = read_bytes(path, label, limit=MAX_KEY_BYTES)
    return content if content.endswith(b"\n") else content + b"\n", public


def read_deploy_key(source: Source) -> tuple[str, str] | None:
    """(private, public) of the template's deploy key; None when it has none."""
    private_path = source.file("github-deploy.key")
    public_path = source.file("github-deploy.key.pub")
    if not private_path.is_file():
        if public_path.is_file():
            raise UserError(
                f"{source.label(private_path)} not found, only its .pub — copy the private key there"
            )
        return None
    label = source.label(private_path)
    private = read_text(private_path, label, limit=MAX_KEY_BYTES)
    derived = openssh_public_key(private, label)
    if public_path.is_file():
        public = read_text(public_path, source.label(public_path), limit=MAX_KEY_BYTES).strip()
        if public.split()[:2] != derived.split()[:2]:
            raise UserError(f"{source.label(public_path)}: not the public half of {label}")
    else:
        public = f"{derived} deploy-key"
    return private if private.endswith("\n") else private + "\n", public + "\n"


def read_push_token(source: Source) -> str | None:
    path = source.file("github-push-token.txt")
    if not path.is_file():
        return None
    token = read_text(path, source.label(path), limit=MAX_KEY_BYTES).strip()
    if not token or len(token.split()) != 1:
        raise UserError(f"{source.label(path)}: expected one token on one line")
    return token + "\n"


def secrets_text(secrets: Mapping[str, Any]) -> str:
    ordered = {key: secrets[key] for key in (*SECRET_SETTINGS, "cloudflare_tunnel") if key in secrets}
    return dump_yaml(SECRETS_HEADER, ordered)


# --------------------------------------------------------------------------- sops


SopsRun = Callable[[list[tuple[list[str], bytes | None]], dict[str, str]], list["Outcome"]]


def sops_runner(paths: Paths) -> SopsRun:
    def run(jobs: list[tuple[list[str], bytes | None]], env: dict[str, str]) -> list[Outcome]:
        commands = [Command(tuple(argv), stdin=stdin, cwd=paths.root, env=env) for argv, stdin in jobs]
        return run_many(commands, paths=paths)

    return run


def sops_error(outcome: Outcome) -> str:
    return outcome.problem if outcome.limit else outcome.last_line


def encrypt_secrets(
    paths: Paths, out: Import, age_key_file: Path, talsecret: Path | None, source: Source, sops: SopsRun
) -> bytes:
    """Encrypt the secrets (stdin to stdout) and prove the result and the Talos secrets
    decrypt with the imported key. Returns the ciphertext of cluster.sops.yaml."""
    label = paths.rel(paths.secrets_config)
    plaintext = secrets_text(out.secrets).encode()
    env = {"SOPS_AGE_KEY_FILE": str(age_key_file)}
    jobs: list[tuple[list[str], bytes | None]] = [(encrypt_to_argv(label, out.recipient), plaintext)]
    if talsecret is not None:
        jobs.append((["sops", "--decrypt", str(talsecret)], None))
    outcomes = sops(jobs, env)
    if talsecret is not None and not outcomes[1].ok:
        raise UserError(
            f"{source.label(talsecret)}: does not decrypt with that age key: {sops_error(outcomes[1])}"
        )
    encrypted = outcomes[0]
    if not encrypted.ok or not is_encrypted_text(encrypted.stdout):
        raise UserError(f"{label}: sops could not encrypt the imported secrets: {sops_error(encrypted)}")
    (check,) = sops([(decrypt_stdin_argv(label), encrypted.stdout.encode())], env)
    if not check.ok or load_plain(check.stdout) != load_plain(plaintext.decode()):
        raise RuntimeError(f"bug: {label} does not decrypt to the imported secrets")
    return encrypted.stdout.encode()


def same_secrets(path: Path, out: Import, age_key_file: Path, sops: SopsRun) -> bool:
    """Whether ``path`` already holds exactly these secrets for this key (a re-run)."""
    if not path.is_file() or age_recipients_of(path) != [out.recipient]:
        return False
    (outcome,) = sops([(["sops", "--decrypt", str(path)], None)], {"SOPS_AGE_KEY_FILE": str(age_key_file)})
    try:
        return outcome.ok and bool(load_plain(outcome.stdout) == load_plain(secrets_text(out.secrets)))
    except Exception:  # unparsable means "not the same"
        return False


# --------------------------------------------------------------------------- the import


def prepare_import(source: Source, paths: Paths, sops: SopsRun, dry: bool) -> Import:
    """Read and validate everything; encrypt the secrets (unless ``dry``). Writes nothing.
    Every problem in the inputs is reported at once, one line each."""
    out = Import()
    errors: list[str] = []

    def attempt(read: Callable[[], Any]) -> Any:
        try:
            return read()
        except UserError as error:
            errors.extend(error.lines)
            return None

    config = attempt(lambda: read_config(source, out))
    tunnel = attempt(lambda: read_tunnel(source))
    age = attempt(lambda: read_age_key(source))
    deploy = attempt(lambda: read_deploy_key(source))
    token = attempt(lambda: read_push_token(source))
    talsecret = source.file("talos/talsecret.sops.yaml")
    if age is not None and talsecret.is_file():
        errors += talsecret_problems(source, talsecret, age[1])
    if errors:
        raise UserError(*errors, "nothing was imported")
    cluster_text, nodes_text = config
    check_written_config(cluster_text, nodes_text)
    out.secrets["cloudflare_tunnel"] = tunnel
    age_content, out.recipient = age
    shown = source.shown.rstrip("/")
    out.files.append(
        Planned(
            paths.age_key,
            age_content,
            PRIVATE,
            f"your age key ({out.recipient}): what is encrypted to it stays readable",
        )
    )
    key_planned, kept = key_files(paths, shown, deploy, token)
    out.files += key_planned
    out.kept += kept
    out.files.append(
        Planned(
            paths.cluster_config,
            cluster_text.encode(),
            PUBLIC,
            f"settings from {source.label(source.cluster)}",
        )
    )
    out.files.append(
        Planned(paths.nodes_config, nodes_text.encode(), PUBLIC, f"nodes from {source.label(source.nodes)}")
    )
    if talsecret.is_file():
        out.files.append(
            Planned(
                paths.talsecret,
                read_bytes(talsecret, source.label(talsecret)),
                PUBLIC,
                "the cluster's Talos secrets, as they were (encrypted to the same key)",
            )
        )
    secrets_note = (
        f"encrypted: cloudflare_token from {source.label(source.cluster)}, "
        f"cloudflare_tunnel from {shown}/cloudflare-tunnel.json"
    )
    ciphertext = b""
    if not dry:
        # sops reads the key from the checkout: no copy of it is made anywhere.
        key_file = source.file("age.key")
        if same_secrets(paths.secrets_config, out, key_file, sops):
            ciphertext = paths.secrets_config.read_bytes()
        else:
            found = talsecret if talsecret.is_file() else None
            ciphertext = encrypt_secrets(paths, out, key_file, found, source, sops)
    out.files.append(Planned(paths.secrets_config, ciphertext, PUBLIC, secrets_note))
    out.notes += leftovers(source)
    return out


def key_files(
    paths: Paths, shown: str, deploy: tuple[str, str] | None, token: str | None
) -> tuple[list[Planned], list[str]]:
    """The deploy key pair and the push token: the checkout's, or new ones when it has
    none, unless this repository already has its own (kept, with a line saying so)."""
    files: list[Planned] = []
    kept: list[str] = []
    pair = (paths.deploy_key, paths.deploy_key_pub)
    if deploy is not None:
        note = "the deploy key your repository already trusts"
        files += [
            Planned(path, text.encode(), PRIVATE, note) for path, text in zip(pair, deploy, strict=True)
        ]
    elif any(path.exists() for path in pair):
        kept += [f"kept {paths.rel(path)}: the one here ({shown} has none)" for path in pair if path.exists()]
    else:
        note = f"{shown} has none — add the .pub as a deploy key of your repository"
        files += [
            Planned(p, t.encode(), PRIVATE, note, True) for p, t in zip(pair, deploy_key_pair(), strict=True)
        ]
    if token is not None:
        files.append(
            Planned(paths.push_token, token.encode(), PRIVATE, "the token your GitHub webhook sends")
        )
    elif paths.push_token.exists():
        kept.append(f"kept {paths.rel(paths.push_token)}: the one here ({shown} has none)")
    else:
        note = f"{shown} has none: a new token for the Flux webhook receiver"
        files.append(Planned(paths.push_token, push_token().encode(), PRIVATE, note, True))
    return files, kept


def talsecret_problems(source: Source, path: Path, recipient: str) -> list[str]:
    label = source.label(path)
    try:
        source.inside(path)
    except UserError as error:
        return error.lines
    if not is_encrypted(path):
        return [f"{label}: not encrypted — encrypt it with sops in the checkout first"]
    if recipient not in age_recipients_of(path):
        return [f"{label}: encrypted to another age key than {source.label(source.file('age.key'))}"]
    return []


def leftovers(source: Source) -> list[str]:
    """What the checkout holds that the import leaves alone, one line each."""
    shown = source.shown.rstrip("/")
    notes = []
    if source.config_dir != source.root:
        notes.append(
            f"read cluster.yaml and nodes.yaml from {source.label(source.config_dir)} (task template:tidy)"
        )
    if (source.root / "kubernetes" / "apps").is_dir():
        notes.append(
            f"not imported: {shown}/kubernetes/apps — `inv configure` renders the apps here; copy apps you "
            "added yourself into kubernetes/apps (their *.sops.yaml decrypt with the imported key)"
        )
    if (source.root / "kubeconfig").is_file():
        notes.append(
            f"not imported: {shown}/kubeconfig (a plaintext credential) — copy it yourself if you need it"
        )
    if (source.root / "talos" / "clusterconfig").is_dir():
        notes.append(
            f"not imported: {shown}/talos/clusterconfig — `inv talos.generate-config` makes it again"
        )
    return notes


# --------------------------------------------------------------------------- conflicts and writing


def example_public_key(paths: Paths) -> str | None:
    example = paths.root / EXAMPLE_OPERATOR / "age.key"
    if not example.is_file():
        return None
    try:
        return read_age_identity(example, str(example))[1]
    except UserError:
        return None


def is_bundled_example(paths: Paths) -> bool:
    """The checkout still holds the bundled example: cluster.sops.yaml is encrypted to the
    example's test-only key alone, so cluster.yaml/nodes.yaml are the example's too."""
    public = example_public_key(paths)
    return public is not None and age_recipients_of(paths.secrets_config) == [public]


def sort_out(paths: Paths, out: Import, force: bool) -> tuple[list[Planned], list[str], list[str]]:
    """(files to write, lines on files left as they are, conflicts). The bundled example's config
    files are replaced; any other existing file that differs is a conflict unless ``force``."""
    replaceable = (
        {paths.cluster_config, paths.nodes_config, paths.secrets_config}
        if is_bundled_example(paths)
        else set()
    )
    write, same, conflicts = [], list(out.kept), []
    for planned in out.files:
        target = planned.target
        if target.exists() and target.read_bytes() == planned.content:
            same.append(f"unchanged {paths.rel(target)}: already what the import would write")
        elif target.exists() and target not in replaceable and not force:
            conflicts.append(paths.rel(target))
        else:
            write.append(planned)
    return write, same, conflicts


def verb(planned: Planned, dry: bool) -> str:
    if dry:
        return "would create" if planned.created else "would import"
    return "created" if planned.created else "imported"


@dataclass
class Report:
    written: list[str]
    unchanged: list[str]
    notes: list[str]


def import_checkout(
    path: str, paths: Paths, *, force: bool, dry: bool, sops: SopsRun | None = None
) -> Report:
    """The whole ``inv init --from PATH``: validate, decide, then write all or nothing.

    Raises :class:`UserError` (nothing written) for bad or missing inputs and for existing
    operator files that differ, unless ``force``."""
    source = locate(path)
    if source.root == paths.root.resolve():
        raise UserError(f"--from {path}: that is this repository — give the checkout of the template")
    with swap.locked(paths.root, "init --from", optional=dry):
        if dry:
            swap.require_settled(paths.root)
        else:
            swap.finish_interrupted(paths.root, print, paths.key_dirs)
        out = prepare_import(source, paths, sops or sops_runner(paths), dry)
        write, same, conflicts = sort_out(paths, out, force)
        if conflicts:
            raise UserError(
                *(f"{name}: exists and differs from what the import would write" for name in conflicts),
                "nothing was imported; to replace these files, run again with --force "
                "(back up age.key first)",
            )
        if not dry:
            # All files or none, the operator's keys included (their temporaries live in the
            # git-ignored scratch and are removed, by this run or the next).
            changes = [swap.Change(p.target, p.content, p.mode) for p in write]
            swap.swap_in(paths.root, changes, "init --from", paths.key_dirs)
    lines = [f"{verb(p, dry)} {paths.rel(p.target)}: {p.note}" for p in write]
    return Report(lines, same, out.notes)
