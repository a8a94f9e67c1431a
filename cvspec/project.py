"""Build and check projects: find specs, plan, render, then write or compare with the disk."""

from __future__ import annotations

from collections.abc import Container, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from cvspec import __version__
from cvspec.errors import CvspecError, Diagnostic, PluginError, SpecError, UsageError
from cvspec.generate.cache import Dep, RenderCache, Rendered, code_deps, text_dep, tree_dep
from cvspec.generate.compare import CODE_CHANGED, PRUNE_ACTION, Change, compare
from cvspec.generate.manifest import LOCK_NAME, make_manifest, read_manifest
from cvspec.generate.render import BUILTIN_TEMPLATES, sha256, shown
from cvspec.generate.write import WriteReport, refuse, write_project

if TYPE_CHECKING:  # the spec language (pydantic, ruamel) loads only when a spec is rendered
    from cvspec.generate.api import Artifact, BuildContext
    from cvspec.generate.registry import Registered
    from cvspec.spec import LoadedSpec

GENERATED = "generated"


class Options(NamedTuple):
    """How to compose the specs of one command."""

    profile: str | None = None
    sets: tuple[str, ...] = ()
    templates: Path | None = None  # --templates DIR: overrides every other template source


Output = Rendered  # one spec's render (project, spec_file, out_dir, files), manifest included


def find_root(start: Path) -> Path:
    """The repository a command runs in: the nearest folder up with .git or specs/."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists() or (folder / "specs").is_dir():
            return folder
    return start


def discover_specs(root: Path) -> list[Path]:
    """Every `specs/*.yaml` of the repository; files starting with `_` are partials for extends."""
    folder = root / "specs"
    found = (
        sorted(p for p in folder.glob("*.y*ml") if not p.name.startswith("_"))
        if folder.is_dir()
        else []
    )
    if not found:
        raise UsageError(f"no spec given and no specs/*.yaml under {root}")
    return found


def load_all(paths: Sequence[Path], options: Options) -> list[LoadedSpec]:
    """Load every spec, collecting the errors of all of them before failing."""
    import os

    from cvspec.spec import load_spec

    loaded: list[LoadedSpec] = []
    errors: list[Diagnostic] = []
    first: dict[str, str] = {}  # project name -> the spec that defines it first
    for path in paths:
        try:
            item = load_spec(path, options.profile, options.sets)
        except SpecError as exc:  # an error in a partial many specs extend is reported once
            errors.extend(d for d in exc.diagnostics if d not in errors)
            continue
        loaded.append(item)
        name, shown = str(item.spec.project.name), os.path.relpath(item.path)
        if name in first:
            errors.append(
                Diagnostic(
                    "duplicate-project",
                    f"two specs define project '{name}': {first[name]} and {shown}",
                    item.raw.values.get(("project", "name")),
                    "project names must be unique: each has its own generated/<project>/",
                )
            )
        first.setdefault(name, shown)
    if errors:
        raise SpecError(errors)
    return loaded


def plan(loaded: LoadedSpec, ctx: BuildContext, generators: Sequence[Registered]) -> list[Artifact]:
    """Ask every generator for its artifacts; what is not an Artifact of its own is its error."""
    from cvspec.generate.api import Artifact

    artifacts: list[Artifact] = []
    for reg in generators:
        name = reg.generator.name
        try:
            made = list(reg.generator.plan(loaded.spec, ctx))
        except CvspecError as exc:
            if reg.builtin:  # cvspec's own say where in the spec; a plugin's is named too
                raise
            raise CvspecError(f"{_named(reg)}: {exc.message}", exc.diagnostics) from exc
        except Exception as exc:  # CVSPEC_DEBUG=1 prints its traceback (the __cause__)
            where = _plugin_line(exc, reg)
            raise CvspecError(f"{_named(reg)} failed: {type(exc).__name__}: {exc}{where}") from exc
        for art in made:
            if not isinstance(art, Artifact):
                raise CvspecError(f"{_named(reg)} planned a {type(art).__name__}, not an Artifact")
            if art.generator != name:
                raise CvspecError(
                    f"{_named(reg)} planned {art.path} as generator '{art.generator}'; "
                    f"an artifact names the generator that made it"
                )
        artifacts.extend(made)
    return artifacts


def _plugin_line(exc: BaseException, reg: Registered) -> str:
    """` (at file:line)`: the innermost frame of the traceback in the generator's own code
    (its module, or the package folder of its module); "" when none is."""
    import sys
    import traceback

    module = sys.modules.get(type(reg.generator).__module__)
    file = getattr(module, "__file__", None)
    if module is None or not file:
        return ""
    own = Path(file).resolve()
    if module.__package__:  # a module in a package: the package's folder is the plugin's code
        own = own.parent
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename).resolve()
        if path == own or path.is_relative_to(own):
            return f" (at {shown(path)}:{frame.lineno})"
    return ""


def _named(reg: Registered) -> str:
    return f"generator {reg.named}"


def build_context(root: Path, loaded: LoadedSpec, options: Options = Options()) -> BuildContext:
    """What a generator's plan gets beside the spec: project, spec file, output folder, and the
    --profile/--set flags the spec was composed with."""
    from cvspec.generate.api import BuildContext

    name = loaded.spec.project.name
    spec_file = _rel(root, loaded.path)
    flags = [f"--profile {options.profile}"] if options.profile else []
    flags += [f"--set {s}" for s in options.sets]
    origins = _origins(root, loaded)
    inputs = tuple(sorted(spec_inputs(root, loaded)))
    out_dir = f"{GENERATED}/{name}"
    return BuildContext(name, spec_file, out_dir, __version__, origins, " ".join(flags), inputs)


def spec_inputs(root: Path, loaded: LoadedSpec) -> list[str]:
    """The spec file and every file it extends, from the repository root."""
    return [_rel(root, Path(n).resolve()) for n in loaded.raw.sources if n != "--set"]


def planned_templates(
    root: Path, loaded: LoadedSpec, options: Options
) -> tuple[list[Artifact], list[Path], str]:
    """The artifacts a build of `loaded` renders from templates, the template folders in
    precedence order (first wins), and the output folder; nothing is rendered or written."""
    from cvspec.generate.registry import load_generators

    generators = load_generators()
    dirs = _template_dirs(loaded, options, generators)
    ctx = build_context(root, loaded, options)
    artifacts = plan(loaded, ctx, generators)
    return [a for a in artifacts if a.template is not None], dirs, ctx.out_dir


def render_spec(
    root: Path,
    loaded: LoadedSpec,
    options: Options,
    generators: Sequence[Registered],
    deps: list[Dep] | None = None,
) -> Output:
    """Plan and render one spec, manifest last; `deps` gains what the render read."""
    from cvspec.generate.render import render_artifacts

    spec_file = _rel(root, loaded.path)
    ctx = build_context(root, loaded, options)
    dirs = _template_dirs(loaded, options, generators)
    sources = {n: t for n, t in loaded.raw.sources.items() if n != "--set"}
    if deps is not None:  # signed before rendering: an edit made meanwhile is a later miss
        deps.extend(text_dep(name, text) for name, text in sorted(sources.items()))
        deps.extend(tree_dep(d) for d in dirs if d != BUILTIN_TEMPLATES)
    artifacts = plan(loaded, ctx, generators)
    files = render_artifacts(artifacts, ctx, dirs)
    overrides = (options.templates is not None) + bool(loaded.spec.templates)
    warnings = _template_warnings(dirs, overrides, generators, artifacts)
    inputs = {
        _rel(root, Path(name).resolve()): sha256(text.encode("utf-8"))
        for name, text in sources.items()
    }
    for file in files:
        if file.path in inputs:
            raise CvspecError(
                f"generator '{file.generator}' would overwrite {file.path}, a spec this build reads"
            )
    templates = None if options.templates is None else _rel(root, options.templates)
    if templates is not None and Path(templates).is_absolute():
        # cvspec.lock records the folder: from outside the repository, `check` in CI and on
        # every other machine would stop, not finding it
        raise UsageError(
            f"--templates {options.templates} is outside the repository ({root}): cvspec.lock "
            "records the folder, so CI and other machines could not check the build; put it "
            "in the repository, or ship the templates as a plugin"
        )
    from cvspec.generate.registry import replacements

    replaced = replacements(list(generators))
    manifest = make_manifest(
        ctx.project,
        spec_file,
        inputs,
        options.profile,
        options.sets,
        __version__,
        files,
        templates,
        replaced,
    )
    files.append(manifest.as_rendered(ctx.out_dir))
    return Output(ctx.project, spec_file, ctx.out_dir, files, warnings)


def _template_warnings(
    dirs: list[Path], overrides: int, generators: Sequence[Registered], artifacts: list[Artifact]
) -> tuple[str, ...]:
    """What a render warns of: override files (the first `overrides` of `dirs`) that no
    artifact renders, template names that two generators' own folders provide."""
    from cvspec.generate.overrides import shadowed_templates, unused_overrides
    from cvspec.generate.render import make_environment

    own = [(r.generator.name, r.templates) for r in generators if r.templates is not None]
    found = shadowed_templates(own)
    if overrides:
        names = [a.template for a in artifacts if a.template is not None]
        env = make_environment(dirs)
        found += unused_overrides(dirs[:overrides], dirs[overrides:], env, names)
    return tuple(found)


def _template_dirs(
    loaded: LoadedSpec, options: Options, generators: Sequence[Registered]
) -> list[Path]:
    """Template folders, first wins: --templates, the spec's `templates:`, plugins, built-ins."""
    dirs: list[Path] = []
    if options.templates is not None:
        if not options.templates.is_dir():
            raise UsageError(f"--templates {options.templates}: not a folder")
        dirs.append(options.templates.resolve())
    if loaded.spec.templates:
        problem = templates_problem(loaded)
        if problem is not None:
            raise SpecError([problem])
        dirs.append((loaded.path.parent / loaded.spec.templates).resolve())
    dirs.extend(t for t in (r.templates for r in generators) if t is not None)
    dirs.append(BUILTIN_TEMPLATES)
    return dirs


def templates_problem(loaded: LoadedSpec) -> Diagnostic | None:
    """The spec's `templates:` folder does not exist (it is relative to the spec), or None."""
    if not loaded.spec.templates:
        return None
    folder = (loaded.path.parent / loaded.spec.templates).resolve()
    if folder.is_dir():
        return None
    return Diagnostic(
        "templates-missing",
        f"templates folder '{loaded.spec.templates}' does not exist ({folder})",
        loaded.raw.values.get(("templates",)),
        "the path is relative to the spec file",
    )


def render_all(
    root: Path, paths: Sequence[Path], options: Options, cache: RenderCache | None = None
) -> list[Output]:
    """Load and render many specs (replaying cached renders); project names must be unique."""
    outputs: dict[Path, Output] = {}
    if cache is not None:
        for path in paths:
            hit = cache.lookup(root, path, options)
            if hit is not None:
                outputs[path] = hit
    todo = [path for path in paths if path not in outputs]
    if todo:
        from cvspec.generate.registry import load_generators

        code = code_deps() if cache is not None else []
        loaded = load_all(todo, options)
        generators = load_generators()
        for path, item in zip(todo, loaded, strict=True):
            deps = list(code) if cache is not None else None
            out = render_spec(root, item, options, generators, deps)
            if cache is not None and deps is not None:
                cache.store(root, path, options, out, deps)
            outputs[path] = out
    _ci_runs_elsewhere(root, [outputs[path] for path in paths])
    seen: dict[str, str] = {}
    shared: dict[str, str] = {}  # files outside generated/<project>/ -> the spec that makes them
    for out in (outputs[path] for path in paths):
        if out.project in seen:
            raise UsageError(
                f"two specs define project '{out.project}': {seen[out.project]} and "
                f"{out.spec_file}; project names must be unique"
            )
        seen[out.project] = out.spec_file
        for file in out.files:
            if file.path.startswith(out.out_dir + "/"):
                continue
            if file.path in shared:
                raise UsageError(
                    f"{shared[file.path]} and {out.spec_file} both make {file.path} "
                    f"(generator '{file.generator}'); a file outside generated/ needs a name "
                    "of its own per project"
                )
            shared[file.path] = out.spec_file
    return [outputs[path] for path in paths]


CI_GENERATORS = ("github", "gitlab")  # their jobs run at the top of the git repository


def _ci_runs_elsewhere(root: Path, outputs: Sequence[Output]) -> None:
    """Refuse CI files made for a root below the git repository's top: CI runs its jobs (and
    GitHub reads its workflows) at the top, where the spec paths they name do not exist. That
    happens when cvspec runs in a project folder of a monorepo (the nearest folder with
    specs/), and building the same spec from the top would make another tree."""
    if (root / ".git").exists():
        return
    top = next((f for f in root.parents if (f / ".git").exists()), None)
    if top is None:
        return
    makers = [o for o in outputs if any(f.generator in CI_GENERATORS for f in o.files)]
    if not makers:
        return
    sub = root.relative_to(top).as_posix()
    spec = f"{sub}/{makers[0].spec_file}"
    raise UsageError(
        f"cvspec is running in {root} (the nearest folder with specs/), inside the git "
        f"repository {top}; CI runs its jobs at the repository's top, where "
        f"{makers[0].spec_file} does not exist, and GitHub reads workflows only from "
        f"{top}/.github/workflows. Run cvspec from {top} with the spec's path: "
        f"`cd {top} && cvspec build {spec}`"
    )


def build(
    root: Path,
    paths: Sequence[Path],
    options: Options = Options(),
    force: bool = False,
    cache: RenderCache | None = None,
    complete: bool = False,
    prune_missing: bool = False,
) -> list[tuple[Output, WriteReport]]:
    """Render every spec and write the projects; all render before any writes.

    A generated/<project>/ that one of `paths` made before it was renamed is cleaned up like any
    orphan: its unedited files go, edited ones stay. `complete`: `paths` are every spec of the
    repository, so the projects of deleted specs are cleaned up too.
    `prune_missing`: remove (or let another generator replace) the files a generator that is
    not installed here made; without it, such files stop the build before anything is written.
    """
    from cvspec.generate.registry import InstalledNames

    outputs = render_all(root, paths, options, cache)
    taken = [d for out in outputs for d in _taken(root, paths, out, options)]
    if taken:
        raise SpecError(taken)
    installed = InstalledNames()
    plans = [(out, _changes(root, out, installed)) for out in outputs]
    plans.extend(_orphan_projects(root, paths, outputs, complete))
    held = [c for _, changes in plans for c in changes if c.action == "uninstalled"]
    if held and not prune_missing:
        lines = "\n".join(f"  {c.path}: {c.reason}" for c in held)
        raise PluginError(
            f"refusing to remove or replace {len(held)} file(s) of generators that are not "
            f"installed here:\n{lines}"
        )
    plans = [(out, [_pruned(c) for c in changes]) for out, changes in plans]
    conflicts = [c for _, changes in plans for c in changes if c.action == "conflict"]
    if conflicts and not force:
        refuse(conflicts)
    done = []
    for out, changes in plans:
        report = write_project(root, out.out_dir, out.files, changes, force)
        if not out.files:  # an orphaned project: drop the folders its removed files leave
            _prune_empty(root / out.out_dir)
        done.append((out, report))
    return done


def _taken(root: Path, paths: Sequence[Path], out: Output, options: Options) -> list[Diagnostic]:
    """An error when out's generated/<project>/ was built from another spec that still exists
    and still makes that project (or cannot be read to tell): building `out` would overwrite
    that spec's output. Not when the other spec is built too (then two specs naming one
    project is the error) or is gone (a renamed spec takes its project over)."""
    from cvspec.spec.compose import compose

    try:
        old = read_manifest(root / out.out_dir / LOCK_NAME)
    except CvspecError:
        return []  # an unreadable lock: the build reports it
    if old is None or old.spec == out.spec_file or old.spec in {_rel(root, p) for p in paths}:
        return []
    other = root / old.spec
    if not other.is_file():
        return []
    try:
        theirs = compose(other, old.profile, old.sets).data.get("project")
    except CvspecError:
        theirs = None
    if isinstance(theirs, dict) and theirs.get("name") != out.project:
        return []  # it makes another project now
    try:
        where = compose(root / out.spec_file, options.profile, options.sets).values
    except CvspecError:
        where = {}
    return [
        Diagnostic(
            "project-taken",
            f"project '{out.project}' is built from {old.spec} ({out.out_dir}/{LOCK_NAME}): "
            f"building {out.spec_file} would overwrite {out.out_dir}/",
            where.get(("project", "name")),
            f"give this spec a project.name of its own, or, if it replaces {old.spec}, "
            "delete that file and build again",
        )
    ]


def check(
    root: Path,
    paths: Sequence[Path],
    options: Options | None = None,
    cache: RenderCache | None = None,
    complete: bool = False,
) -> list[tuple[Output, list[Change]]]:
    """Compare each spec's fresh render with the disk; the same options the build used.

    A generated/<project>/ that one of `paths` made under its old name is reported too (an
    Output without files); with `complete` (`paths` are every spec of the repository), also
    those whose spec is gone.
    """
    groups: dict[Options, list[Path]] = {}
    recorded = _recorded_options(root) if options is None else {}
    for path in paths:
        opts = options or recorded.get(_rel(root, path), Options())
        if opts.templates is not None and not opts.templates.is_dir():
            raise UsageError(
                f"{_rel(root, path)}: its last build used --templates {opts.templates}, which "
                "is not a folder here; pass --templates DIR to check, or build without it"
            )
        groups.setdefault(opts, []).append(path)
    from cvspec.generate.registry import InstalledNames

    installed = InstalledNames()
    results = []
    for opts, group in groups.items():
        rendered = render_all(root, group, opts, cache)
        taken = [d for out in rendered for d in _taken(root, paths, out, opts)]
        if taken:  # what build refuses, said here rather than "run cvspec build"
            raise SpecError(taken)
        for path, out in zip(group, rendered, strict=True):
            findings = [c for c in _changes(root, out, installed) if c.finding is not None]
            if any(c.reason == CODE_CHANGED for c in findings):
                findings = _unsteady(root, path, opts, out, findings)
            results.append((out, findings))
    outputs = [out for out, _ in results]
    results.extend(_orphan_projects(root, paths, outputs, complete))
    return sorted(results, key=lambda r: r[0].spec_file)


def _unsteady(
    root: Path, path: Path, options: Options, out: Output, findings: list[Change]
) -> list[Change]:
    """Findings that say which generators made other output when `path` is rendered again.

    Only on this path: the inputs, options and cvspec are those of the last build, so either
    code changed or a generator's plan is not deterministic. A second render tells the latter
    (when it differs within one process: a clock, randomness) from the former.
    """
    again = {f.path: f.sha256 for f in render_all(root, [path], options)[0].files}
    lock = f"{out.out_dir}/{LOCK_NAME}"
    unsteady = {f.path: f.generator for f in out.files if again.get(f.path) != f.sha256}
    unsteady.pop(lock, None)
    if not unsteady:
        return findings
    found = []
    for change in findings:
        if change.reason == CODE_CHANGED and change.path in unsteady:
            change = change._replace(
                reason=f"generator '{unsteady[change.path]}' made different output from the "
                "same inputs: its plan is not deterministic"
            )
        elif change.reason == CODE_CHANGED and change.path == lock:
            change = change._replace(reason="its digests follow the output above")
        found.append(change)
    return found


def _orphan_projects(
    root: Path, paths: Sequence[Path], outputs: Sequence[Output], complete: bool
) -> list[tuple[Output, list[Change]]]:
    """Each generated/<project>/ that no spec makes any more, with what a build does about it.

    Its spec is one of `paths` and now makes another project (a rename), or, when `paths` are
    every spec of the repository (`complete`), its spec is gone. A project
    built from a spec elsewhere that still exists is not this command's business, nor is a
    folder whose manifest is another project's (a copy: its paths are that project's files).
    Files a current project makes are never removed. An unreadable manifest is reported and
    its folder left alone.
    """
    made = {out.out_dir for out in outputs}
    current = {f.path for out in outputs for f in out.files}
    specs = {_rel(root, p) for p in paths}
    folder = root / GENERATED
    found = []
    for lock in sorted(folder.glob(f"*/{LOCK_NAME}")) if folder.is_dir() else []:
        out_dir = f"{GENERATED}/{lock.parent.name}"
        if out_dir in made:
            continue
        lock_path = f"{out_dir}/{LOCK_NAME}"
        try:
            old = read_manifest(lock)
        except CvspecError as exc:
            if not complete:  # whose it is cannot be told: a check of all specs reports it
                continue
            keep = Change(lock_path, "keep", "orphan", f"{exc.message}; left in place")
            found.append((Output(lock.parent.name, "?", out_dir, []), [keep]))
            continue
        if old is None or f"{GENERATED}/{old.project}" != out_dir:
            continue
        if old.spec not in specs and (not complete or (root / old.spec).is_file()):
            continue
        why = f"no spec makes project '{old.project}' any more (built from {old.spec})"
        changes = [
            c._replace(reason=why) if c.action == "remove" else c
            for c in compare(root, out_dir, [], old)
            if c.path != lock_path and c.path not in current
        ]
        gone = all(c.action == "remove" for c in changes)  # no edits to keep: the lock goes too
        lock_change = Change(
            lock_path,
            "remove" if gone else "keep",
            "orphan",
            why if gone else f"{why}; kept while edited files are left",
        )
        orphan = Output(old.project, old.spec, out_dir, [])
        found.append((orphan, [*changes, lock_change]))
    return found


def _prune_empty(folder: Path) -> None:
    """Remove the folders under `folder` (and itself) that hold no file any more."""
    import contextlib
    import os

    for dirpath, _, _ in sorted(os.walk(folder), key=lambda w: -len(w[0])):
        with contextlib.suppress(OSError):  # a folder with files in it stays
            os.rmdir(dirpath)


def _changes(root: Path, out: Output, installed: Container[str]) -> list[Change]:
    old = read_manifest(root / out.out_dir / LOCK_NAME)
    return compare(root, out.out_dir, out.files, old, installed)


def _pruned(change: Change) -> Change:
    """An `uninstalled` change as the build makes it with --prune-missing: removed or replaced."""
    if change.action != "uninstalled":
        return change
    return change._replace(action=PRUNE_ACTION[change.finding or "orphan"])


def _recorded_options(root: Path) -> dict[str, Options]:
    """Spec path -> the profile and --set flags its last build recorded in its manifest."""
    folder = root / GENERATED
    found: dict[str, Options] = {}
    for lock in sorted(folder.glob(f"*/{LOCK_NAME}")) if folder.is_dir() else []:
        try:
            manifest = read_manifest(lock)
        except CvspecError:
            continue  # the project's own check reports it
        if manifest is not None and lock.parent.name == manifest.project:  # not a copy
            templates = None if manifest.templates is None else root / manifest.templates
            found[manifest.spec] = Options(manifest.profile, manifest.sets, templates)
    return found


def _origins(root: Path, loaded: LoadedSpec) -> dict[tuple[str | int, ...], str]:
    """Each spec value's origin as generators may cite it, file paths from the repo root."""
    out: dict[tuple[str | int, ...], str] = {}
    for path, origin in loaded.raw.values.items():
        if origin.file and origin.kind in ("file", "profile"):
            origin = origin._replace(file=_rel(root, Path(origin.file)))
        out[path] = origin.describe()
    return out


def _rel(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.resolve().as_posix()
