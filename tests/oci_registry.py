"""A tiny read-only OCI registry on localhost serving stand-in Helm charts.

helmfile pulls every OCI chart even for ``helmfile build``, and there is no network in the
tests: this serves, for any ``NAME:VERSION`` asked for, a minimal valid chart of that name
and version (the OCI distribution API's pull side: manifest and blobs), and for every
repository the tags in ``Registry.tags`` (``GET /v2/NAME/tags/list``, how helm finds a
chart's newest version), so the real helmfile and helm run end to end with only the
registry standing in.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.cncf.helm.config.v1+json"
CHART_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def chart_archive(name: str, version: str) -> bytes:
    files = {
        f"{name}/Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n",
        f"{name}/values.yaml": "{}\n",
        f"{name}/templates/configmap.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
        ),
        # What the values ask for (nothing by default): a ConfigMap of ``data``, a Pod of ``pod``.
        f"{name}/templates/from-values.yaml": (
            "{{- with .Values.data }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            "  name: {{ $.Release.Name }}-values\n  namespace: {{ $.Release.Namespace }}\n"
            "data:\n{{- toYaml . | nindent 2 }}\n{{- end }}\n"
            "{{- with .Values.pod }}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n"
            "  name: {{ $.Release.Name }}\nspec:\n  containers:\n    - name: main\n"
            "      image: {{- toYaml .image | nindent 8 }}\n{{- end }}\n"
        ),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


#: The tags every repository lists unless a test sets others: semantic versions out of
#: order, a pre-release and a tag that is no version (the newest stable one is 1.10.0).
TAGS = ["1.9.3", "1.10.0", "0.4.0", "2.0.0-rc.1", "latest", "1.2.0"]


class Registry:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.pulled: list[str] = []
        self.tags: list[str] = list(TAGS)

    def manifest(self, repository: str, tag: str) -> bytes:
        name = repository.rsplit("/", 1)[-1]
        config = json.dumps({"name": name, "version": tag, "apiVersion": "v2"}).encode()
        chart = chart_archive(name, tag)
        self.blobs[digest(config)] = config
        self.blobs[digest(chart)] = chart
        self.pulled.append(f"{repository}:{tag}")
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": CONFIG_TYPE, "digest": digest(config), "size": len(config)},
                "layers": [{"mediaType": CHART_TYPE, "digest": digest(chart), "size": len(chart)}],
            }
        ).encode()


def handler(registry: Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def reply(self, body: bytes, content_type: str, send_body: bool = True) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Docker-Content-Digest", digest(body))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def answer(self, send_body: bool) -> None:
            if self.path.rstrip("/") == "/v2":
                self.reply(b"{}", "application/json", send_body)
                return
            manifest = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", self.path)
            blob = re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]+)", self.path)
            tags = re.fullmatch(r"/v2/(.+)/tags/list(?:\?.*)?", self.path)
            if tags:
                body = json.dumps({"name": tags.group(1), "tags": registry.tags}).encode()
                self.reply(body, "application/json", send_body)
            elif manifest:
                self.reply(registry.manifest(manifest.group(1), manifest.group(2)), MANIFEST_TYPE, send_body)
            elif blob and blob.group(2) in registry.blobs:
                self.reply(registry.blobs[blob.group(2)], "application/octet-stream", send_body)
            else:
                self.send_error(404)

        def do_GET(self) -> None:
            self.answer(send_body=True)

        def do_HEAD(self) -> None:
            self.answer(send_body=False)

    return Handler


@contextmanager
def serve() -> Iterator[tuple[str, Registry]]:
    """``(host:port, registry)`` while the registry runs."""
    registry = Registry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(registry))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", registry
    finally:
        server.shutdown()
        server.server_close()
