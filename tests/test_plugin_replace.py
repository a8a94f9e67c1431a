"""A generator that is not installed here, and one that replaces another (`replaces`).

Each generator is a real installed distribution (a dist-info folder with an entry point on
PYTHONPATH), run through the real CLI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import cvspec, project, snapshot, write_tree

SOURCE = """
from cvspec.generate.api import Artifact

class Gen:
    name = "{name}"
    version = "1"
    replaces = {replaces!r}

    def plan(self, spec, ctx):
        for path in {paths!r}:
            yield Artifact(path, self.name, "yaml", data={{"by": self.name}})
"""


def install(site: Path, name: str, paths: tuple[str, ...], replaces: tuple[str, ...] = ()) -> str:
    """Install generator `name` (making `paths`) into `site`; its folder, for PYTHONPATH."""
    module = name.replace("-", "_") + "_gen"
    write_tree(
        site,
        {
            f"{module}.py": SOURCE.format(name=name, paths=paths, replaces=replaces),
            f"{module}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {module}\n"
            "Version: 1.0\n",
            f"{module}-1.0.dist-info/entry_points.txt": "[cvspec.generators]\n"
            f"{name} = {module}:Gen\n",
        },
    )
    return str(site)


def env(*sites: str) -> dict[str, str]:
    """The CLI's environment with these plugin folders (and this run's PYTHONPATH)."""
    path = os.pathsep.join([*sites, os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path, "CVSPEC_NO_CACHE": "1"}


def test_files_of_a_generator_not_installed_here_are_kept_until_pruned(tmp_path: Path) -> None:
    root = project(tmp_path / "repo")
    with_plugin = env(install(tmp_path / "site", "acme", ("NOTES.yaml",)))
    assert cvspec("build", cwd=root, env=with_plugin).code == 0
    notes = root / "generated/demo/NOTES.yaml"
    assert notes.is_file()
    before = snapshot(root)
    why = (
        "generated/demo/NOTES.yaml: made by generator 'acme', which is not installed here: "
        "install it, or pass --prune-missing to build to remove its files"
    )
    built = cvspec("build", cwd=root, env=env())  # a teammate without the plugin
    assert built.code == 2, built.err
    assert why in built.err and "refusing to remove or replace 1 file(s)" in built.err
    assert snapshot(root) == before, "nothing is written"
    checked = cvspec("check", cwd=root, env=env())
    assert checked.code == 1
    assert f"orphan  {why}" in checked.out and "no longer generated" not in checked.out
    assert "1 file(s) made by generators not installed here" in checked.out
    diffed = cvspec("diff", cwd=root, env=env())
    assert f"# orphan: {why}\n" in diffed.out
    assert "--- a/generated/demo/NOTES.yaml" not in diffed.out, "no hunk: a build keeps it"
    assert cvspec("check", cwd=root, env=with_plugin).code == 0  # installed again: all is well
    pruned = cvspec("build", "--prune-missing", cwd=root, env=env())
    assert pruned.code == 0, pruned.err
    assert "1 removed" in pruned.out and not notes.exists()
    assert cvspec("check", cwd=root, env=env()).code == 0


def test_a_generator_replaces_a_builtin_and_makes_its_files(tmp_path: Path) -> None:
    root = project(tmp_path / "repo")
    assert cvspec("build", cwd=root, env=env()).code == 0
    paths = ("monitoring/prometheus.yml", "monitoring/rules.yml")
    site = install(tmp_path / "site", "acme-prom", paths, replaces=("prometheus",))
    listed = cvspec("generators", cwd=root, env=env(site))
    assert listed.code == 0, listed.err
    lines = {line.split()[0]: line for line in listed.out.splitlines()}
    assert lines["prometheus"].endswith("  replaced by 'acme-prom': does not run")
    assert lines["acme-prom"].endswith("  replaces 'prometheus'")
    checked = cvspec("check", cwd=root, env=env(site))
    assert checked.code == 1
    assert (
        "generated/demo/monitoring/rules.test.yml: no longer generated (generator 'prometheus' "
        "is replaced by 'acme-prom')" in checked.out
    )
    built = cvspec("build", cwd=root, env=env(site))
    assert built.code == 0, built.err
    out = root / "generated/demo/monitoring"
    assert (out / "prometheus.yml").read_text().endswith("by: acme-prom\n")
    assert not (out / "rules.test.yml").exists()
    lock = json.loads((root / "generated/demo/cvspec.lock").read_text())
    assert lock["replaced"] == {"prometheus": "acme-prom"}
    assert lock["files"]["generated/demo/monitoring/rules.yml"]["generator"] == "acme-prom"
    assert cvspec("check", cwd=root, env=env(site)).code == 0
    # without the replacement, prometheus runs again: it does not silently take its files back
    again = cvspec("build", cwd=root, env=env())
    assert again.code == 2
    assert (
        "generated/demo/monitoring/prometheus.yml: made by generator 'acme-prom', which is not "
        "installed here: install it, or pass --prune-missing to build to remove its files "
        "(generator 'prometheus' makes it now)" in again.err
    )
    assert cvspec("build", "--prune-missing", cwd=root, env=env()).code == 0
    assert "by: acme-prom" not in (out / "prometheus.yml").read_text()
    assert "replaced" not in json.loads((root / "generated/demo/cvspec.lock").read_text())


def test_a_collision_names_both_generators_and_suggests_replaces(tmp_path: Path) -> None:
    root = project(tmp_path / "repo")
    site = install(tmp_path / "site", "acme-prom", ("monitoring/prometheus.yml",))
    result = cvspec("build", cwd=root, env=env(site))
    assert result.code == 2
    assert (
        "generators 'acme-prom' and 'prometheus' both make generated/demo/monitoring/"
        "prometheus.yml; a generator that takes over another's files says so: replaces = "
        "('acme-prom',) in 'prometheus' (or the other way round)" in result.err
    )


def test_bad_replaces_are_named(tmp_path: Path) -> None:
    root = project(tmp_path / "repo")
    unknown = install(tmp_path / "a", "acme", ("a.yaml",), replaces=("nope",))
    result = cvspec("build", cwd=root, env=env(unknown))
    assert result.code == 2
    assert (
        "error: generator 'acme' (acme_gen:Gen, from acme_gen 1.0) replaces 'nope', which is "
        "not an installed generator (installed: acme, alertmanager," in result.err
    )
    itself = install(tmp_path / "b", "acme", ("a.yaml",), replaces=("acme",))
    result = cvspec("build", cwd=root, env=env(itself))
    assert result.code == 2
    assert "error: generator 'acme' (acme_gen:Gen, from acme_gen 1.0) replaces itself" in (
        result.err
    )
    one = install(tmp_path / "c", "one", ("a.yaml",), replaces=("grafana",))
    two = install(tmp_path / "d", "two", ("b.yaml",), replaces=("grafana",))
    result = cvspec("generators", cwd=root, env=env(one, two))
    assert result.code == 2
    assert (
        "error: generators 'one' (one_gen:Gen, from one_gen 1.0) and 'two' (two_gen:Gen, from "
        "two_gen 1.0) both replace 'grafana'; only one may" in result.err
    )
    first = install(tmp_path / "e", "first", ("a.yaml",), replaces=("second",))
    second = install(tmp_path / "f", "second", ("b.yaml",), replaces=("first",))  # a cycle
    result = cvspec("build", cwd=root, env=env(first, second))
    assert result.code == 2
    assert (
        "generator 'first' (first_gen:Gen, from first_gen 1.0) replaces 'second', which itself "
        "replaces 'first'; let one generator replace them all" in result.err
    )
    assert not (root / "generated").exists()
