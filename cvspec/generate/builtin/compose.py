"""docker-compose.monitoring.yml: the model server, Prometheus, Alertmanager and Grafana."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext
from cvspec.package.images import repository

NAME = "compose"
# Pinned by tag; Alertmanager >= 0.28 for its native Jira receiver; Grafana as the SDK targets.
PROMETHEUS_IMAGE = "prom/prometheus:v2.53.2"
ALERTMANAGER_IMAGE = "prom/alertmanager:v0.28.1"
GRAFANA_IMAGE = "grafana/grafana:10.1.0"
GRAFANA_SECRET = "GRAFANA_ADMIN_PASSWORD"  # the environment variable compose reads it from
OUT = "monitoring/docker-compose.monitoring.yml"
# Prometheus, Alertmanager and Grafana have no login of their own here (Grafana lets anyone
# view): their ports are published on the host's loopback only, never on every interface,
# where anyone on the network could silence alerts or post fake ones to Slack and Jira. Only
# the model server's API is published to the network; put a proxy with auth in front of the
# others to reach them from elsewhere.
LOCAL = "127.0.0.1"
# Each host port can be moved with an environment variable (compose interpolation), for a host
# where the default is taken, such as a second project's stack in a monorepo:
# `CVSPEC_GRAFANA_PORT=3001 docker compose -f ... up`. The ports inside the network stay.
HOST_PORT_VARS = {
    "server": "CVSPEC_API_PORT",
    "prometheus": "CVSPEC_PROMETHEUS_PORT",
    "alertmanager": "CVSPEC_ALERTMANAGER_PORT",
    "grafana": "CVSPEC_GRAFANA_PORT",
}
# Every service runs as a non-root user on ports over 1024: it needs no Linux capability, and
# no setuid binary in its image may gain one (CIS Docker Benchmark 5.3, 5.25).
HARDENED: dict[str, Any] = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"]}


class MonitoringComposeGenerator:
    """Makes monitoring/docker-compose.monitoring.yml: `docker compose -f ... up` starts it all."""

    name = NAME
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """One compose file next to the configs it mounts."""
        yield Artifact(OUT, NAME, "yaml", data=compose(spec, ctx))


def server_command(spec: Any, ctx: BuildContext) -> list[str]:
    """`cvspec serve` arguments: the spec the image holds, and every serve setting as a flag.

    The flags come from the spec as this build composed it, so a --profile or --set of the
    build reaches the server too (the spec file alone would give the base values).
    """
    serve = spec.serve
    settings = {
        "--port": serve.port,
        "--metrics-port": serve.metrics_port,
        "--max-batch": serve.max_batch,
        "--max-wait-ms": serve.max_wait_ms,
        "--max-image-bytes": int(serve.max_image_bytes),
        "--max-pixels": serve.max_pixels,
        "--threads": spec.evaluate.latency.threads or 0,
        "--device": serve.device,
        "--workers": serve.workers,
        "--box-confidence": serve.box_confidence,
        "--box-iou": serve.box_iou,
    }
    command = [ctx.spec_file, "--model-dir", "/runs/export", "--baseline", "/runs/data/stats.json"]
    command += ["--host", "0.0.0.0"]
    for flag, value in settings.items():
        command += [flag, str(value)]
    return command


def published(service: str, port: int, address: str = "") -> str:
    """A `ports:` entry: the container's port on the host, at HOST_PORT_VARS[service] or the
    same number, on `address` (every interface when empty)."""
    host = f"${{{HOST_PORT_VARS[service]}:-{port}}}"
    return f"{address}:{host}:{port}" if address else f"{host}:{port}"


def compose(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """The compose project as data; secrets come from the environment, never from the file."""
    from cvspec.generate.builtin.alertmanager import JIRA_TOKEN_SECRET, JIRA_USER_SECRET, channels

    serve = spec.serve
    root = posixpath.relpath(".", posixpath.dirname(f"{ctx.out_dir}/{OUT}"))
    runs = f"{root}/runs/{ctx.project}"
    slack, jira = channels(spec)
    secrets = ([spec.monitor.notify.slack_webhook_secret] if slack else []) + (
        [JIRA_USER_SECRET, JIRA_TOKEN_SECRET] if jira else []
    )
    tag = "${CVSPEC_IMAGE_TAG:-latest}"
    alertmanager: dict[str, Any] = {
        "image": ALERTMANAGER_IMAGE,
        "command": ["--config.file=/etc/alertmanager/alertmanager.yml"],
        "volumes": ["./alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"],
        "ports": [published("alertmanager", 9093, LOCAL)],
        "restart": "unless-stopped",
    }
    if secrets:
        alertmanager["secrets"] = [s.lower() for s in secrets]
    server: dict[str, Any] = {
        "image": f"{repository(spec, 'serve')}:{tag}",  # what `--stage package` builds
        "command": server_command(spec, ctx),
        "volumes": [f"{runs}:/runs:ro"],
        "ports": [published("server", serve.port)],
        "expose": [str(serve.metrics_port)],
        "restart": "unless-stopped",
    }
    if serve.device == "cuda":  # one GPU through the NVIDIA container toolkit
        gpu = {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
        server["deploy"] = {"resources": {"reservations": {"devices": [gpu]}}}
    out: dict[str, Any] = {
        "name": f"{ctx.project}-monitoring",
        "services": {
            "server": server,
            "prometheus": {
                "image": PROMETHEUS_IMAGE,
                "command": [
                    "--config.file=/etc/prometheus/prometheus.yml",
                    "--storage.tsdb.path=/prometheus",
                ],
                "volumes": [
                    "./prometheus.yml:/etc/prometheus/prometheus.yml:ro",
                    "./rules.yml:/etc/prometheus/rules.yml:ro",
                    "prometheus-data:/prometheus",
                ],
                "ports": [published("prometheus", 9090, LOCAL)],
                "depends_on": ["server", "alertmanager"],
                "restart": "unless-stopped",
            },
            "alertmanager": alertmanager,
            "grafana": {
                "image": GRAFANA_IMAGE,
                "environment": {
                    "GF_AUTH_ANONYMOUS_ENABLED": "true",
                    "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
                    # never Grafana's default admin/admin: the password is a secret
                    "GF_SECURITY_ADMIN_PASSWORD__FILE": f"/run/secrets/{GRAFANA_SECRET.lower()}",
                },
                "secrets": [GRAFANA_SECRET.lower()],
                "volumes": [
                    "./grafana/provisioning:/etc/grafana/provisioning:ro",
                    "./grafana/dashboards:/var/lib/grafana/dashboards:ro",
                ],
                "ports": [published("grafana", 3000, LOCAL)],
                "depends_on": ["prometheus"],
                "restart": "unless-stopped",
            },
        },
        "volumes": {"prometheus-data": {}},
    }
    for service in out["services"].values():
        service.update({key: list(value) for key, value in HARDENED.items()})  # no YAML aliases
    out["secrets"] = {s.lower(): {"environment": s} for s in [*secrets, GRAFANA_SECRET]}
    return out
