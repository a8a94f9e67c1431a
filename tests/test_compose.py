"""docker-compose.monitoring.yml hardening: what each service may do inside its container."""

from __future__ import annotations

from pathlib import Path

from helpers import MINIMAL_SPEC, cvspec, project

SPEC = MINIMAL_SPEC.replace("{name: demo}", "{name: demo, contacts: {slack: '#cv', jira: CV}}")


def test_every_service_drops_its_capabilities_and_gains_no_privileges(tmp_path: Path) -> None:
    """Each runs as a non-root user on a port over 1024: no capability is needed, and a setuid
    binary in an image (or a compromised server) cannot gain one."""
    from ruamel.yaml import YAML

    root = project(tmp_path, SPEC + "deploy: {gpu: true}\nserve: {device: cuda}\n")
    done = cvspec("build", cwd=root)
    assert done.code == 0, done.err
    text = (root / "generated/demo/monitoring/docker-compose.monitoring.yml").read_text()
    assert "&" not in text and "*id" not in text  # plain values, no YAML anchors and aliases
    services = YAML(typ="safe", pure=True).load(text)["services"]
    assert set(services) == {"server", "prometheus", "alertmanager", "grafana"}
    for name, service in services.items():
        assert service["cap_drop"] == ["ALL"], name
        assert service["security_opt"] == ["no-new-privileges:true"], name
