"""The training configuration: compose the Hydra tree, check it, and write it for a spec."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, NamedTuple

from cvspec.errors import CvspecError, UsageError

CONFIG_NAME = "config"


class Settings(NamedTuple):
    """A composed classification config, checked against the spec language's own models."""

    project: str
    spec_file: str  # the spec, relative to the repository root
    data: Any  # cvspec.spec.model.ClassificationData, with path = data root from the repo root
    model: Any  # cvspec.spec.model.ClassificationModel
    train: Any  # cvspec.spec.model.Train
    threads: int | None
    raw: dict[str, Any]  # the composed config as plain data (what the run folder records)


def compose(config_dir: Path, overrides: list[str]) -> Any:
    """Compose DIR/config.yaml with Hydra overrides; a bad override is a UsageError."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if not (config_dir / f"{CONFIG_NAME}.yaml").is_file():
        raise UsageError(f"no {CONFIG_NAME}.yaml in {config_dir}: run `cvspec build` first")
    try:
        with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
            return hydra_compose(config_name=CONFIG_NAME, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise UsageError(f"invalid training override: {hydra_message(exc)}") from None


def hydra_message(exc: Exception) -> str:
    """Hydra's message without its search-path dump and documentation links."""
    text = str(exc).split("\nConfig search path:")[0].strip()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("See https://")]
    return " ".join(ln.strip() for ln in lines)


def to_container(cfg: Any) -> dict[str, Any]:
    """A composed config as plain, resolved data (no `hydra` key)."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    data.pop("hydra", None)
    return {str(k): v for k, v in data.items()}


def settings(cfg: Any) -> Settings:
    """Check a composed classification config with the spec models; errors name the key."""
    from cvspec.spec.model import ClassificationData, ClassificationModel, Train

    raw = to_container(cfg)
    try:
        data, model, train = raw["data"], dict(raw["model"]), dict(raw["train"])
        threads = train.pop("threads", None)
        arch = f"{model.pop('library')}/{model.pop('name')}"
        keys = ("format", "classes", "splits", "augment")
        optional = {k: data[k] for k in ("exclude",) if k in data}
        if "relabel" in data:
            optional["relabel"] = {str(path): str(cls) for path, cls in data["relabel"]}
        return Settings(
            project=str(raw["project"]),
            spec_file=str(raw["spec"]),
            data=_check(
                "data",
                ClassificationData,
                {"path": data["root"]} | {k: data[k] for k in keys} | optional,
            ),
            model=_check("model", ClassificationModel, {"arch": arch, **model}),
            train=_check("train", Train, train),
            threads=None if threads is None else int(threads),
            raw=raw,
        )
    except KeyError as exc:
        raise UsageError(f"the training config lacks {exc}: rebuild it (cvspec build)") from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid training config: {exc}") from None


def _check(section: str, model: Any, data: dict[str, Any]) -> Any:
    """Validate one section with its spec model; errors say `section.key: why (got value)`."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join([section, *(str(p) for p in err['loc'])])}: {err['msg']} "
            f"(got {err.get('input')!r})"
            for err in exc.errors()
        )
        raise UsageError(f"invalid training config: {problems}") from None


def write_tree(loaded: Any, root: Path, dest: Path) -> Path:
    """Plan the `train` generator on a resolved spec and write its files under dest.

    `cvspec run` trains from this tree, so profiles and --set flags reach the trainer through
    the very generator that writes generated/<project>/train/ for `cvspec build`.
    """
    from cvspec import __version__
    from cvspec.atomic import write_text
    from cvspec.generate.api import BuildContext
    from cvspec.generate.builtin.train_config import TrainConfigGenerator
    from cvspec.generate.render import dump_yaml

    spec = loaded.spec
    try:
        spec_file = loaded.path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        spec_file = loaded.path.resolve().as_posix()
    project = spec.project.name
    ctx = BuildContext(project, spec_file, f"generated/{project}", __version__)
    shutil.rmtree(dest, ignore_errors=True)  # drop experiment files of an older sweep
    for art in TrainConfigGenerator().plan(spec, ctx):
        path = dest / art.path.removeprefix("train/")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = art.data if isinstance(art.data, str) else dump_yaml(art.data)
        write_text(path, text)
    return dest


def check_known(cfg_dir: Path) -> str:
    """The task a config tree is for: 'classification' (Hydra) or 'detection' (ultralytics)."""
    if (cfg_dir / f"{CONFIG_NAME}.yaml").is_file():
        return "classification"
    if (cfg_dir / "args.yaml").is_file():
        return "detection"
    raise CvspecError(f"{cfg_dir} holds no training config (config.yaml or args.yaml)")
