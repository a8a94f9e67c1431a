"""`cvspec validate`: check specs against the language, reporting every error at once."""

from __future__ import annotations

from cvspec.cli.common import ProfileOpt, SetOpt, SpecArgs, make_options, resolve_specs
from cvspec.project import load_all


def command(specs: SpecArgs = None, profile: ProfileOpt = None, set_: SetOpt = None) -> None:
    """Validate spec files (and what they extend) without writing anything."""
    root, paths = resolve_specs(specs)
    for loaded in load_all(paths, make_options(profile, set_)):
        spec = loaded.spec
        rel = loaded.path.relative_to(root) if loaded.path.is_relative_to(root) else loaded.path
        print(f"ok {rel} ({spec.task}, project {spec.project.name})")
