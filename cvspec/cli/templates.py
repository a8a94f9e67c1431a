"""`cvspec templates SPEC`: the templates a build renders, where each comes from, and what it
gets to render with: what a template author needs before overriding one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cvspec.cli.common import ProfileOpt, SetOpt, TemplatesOpt, load_one, make_options
from cvspec.errors import UsageError


def command(
    spec: Annotated[Path, typer.Argument(help="The spec file.", metavar="SPEC")],
    show: Annotated[
        str | None,
        typer.Option(
            "--show",
            help="Print the values template NAME renders with (YAML), as this spec gives them.",
            show_default=False,
        ),
    ] = None,
    templates: TemplatesOpt = None,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
) -> None:
    """List the templates a build of SPEC renders: name, the file it makes, the folder it is
    read from (an override folder, a plugin's, or cvspec's own) and the names it can use.

    An override folder (--templates DIR, or the spec's 'templates:') that holds a file of the
    same relative name replaces the built-in one.
    """
    from cvspec.generate.render import dump_yaml, shown
    from cvspec.project import find_root, planned_templates

    loaded = load_one(spec, profile, set_)
    options = make_options(profile, set_, templates)
    artifacts, dirs, out_dir = planned_templates(find_root(Path.cwd()), loaded, options)

    def made(art: Any) -> str:
        return str(art.path) if art.at_root else f"{out_dir}/{art.path}"

    if show is not None:
        chosen = [a for a in artifacts if a.template == show]
        if not chosen:
            names = ", ".join(sorted({str(a.template) for a in artifacts}))
            raise UsageError(f"no template {show!r} in this build; its templates: {names}")
        for i, art in enumerate(chosen):  # one YAML document per file it makes
            print("---" if i else "", end="\n" if i else "")
            print(f"# {art.template} (generator '{art.generator}', making {made(art)})")
            print(dump_yaml(_plain(art.context)), end="")
        return
    for art in artifacts:
        name = str(art.template)
        source = next((d for d in dirs if (d / name).is_file()), None)
        where = shown(source / name) if source is not None else "not found"
        print(f"{name}  ->  {made(art)}  (generator '{art.generator}')")
        print(f"    from: {where}")
        print(f"    names: {', '.join(sorted(art.context))}")


def _plain(value: Any) -> Any:
    """Context values as YAML can show them: tuples as lists, anything else as its text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
