"""Cross-field rules of the spec language that pydantic cannot check one field at a time."""

import difflib
import posixpath
import re
import typing
import unicodedata
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, cast

from pydantic import BaseModel, ValidationError

from cvspec.serve.metric_names import ALERT_METRICS
from cvspec.spec.introspect import model_members
from cvspec.spec.messages import did_you_mean, show
from cvspec.spec.model import (
    AUGMENTATIONS,
    GATE_INFO,
    SPEC_ADAPTER,
    DirSplits,
    SpecModel,
    set_gates,
)
from cvspec.spec.model_augment import RandomResizedCrop
from cvspec.spec.model_train import node_resources

Loc = tuple[str | int, ...]


class Violation(NamedTuple):
    """One broken rule: where in the YAML, a kebab-case code, what is wrong, how to fix it."""

    loc: Loc
    code: str
    message: str
    help: str | None = None


Rule = Callable[[SpecModel], Iterable[Violation]]


def check_rules(spec: SpecModel) -> list[Violation]:
    """Every violation of every rule in RULES, in rule order."""
    return [v for rule in RULES for v in rule(spec)]


def _multiples(value: int, step: int) -> str:
    low = value // step * step
    return f"{low} or {low + step}" if low else str(step)


V = Violation


def _duplicates(
    loc: Loc, items: Sequence[Hashable], what: str, key: Callable[[Any], Hashable] = lambda x: x
) -> Iterator[Violation]:
    first: dict[Hashable, int] = {}
    for i, item in enumerate(items):
        if key(item) in first:
            hint = f"remove it; it is already at index {first[key(item)]}"
            if item != items[first[key(item)]]:
                hint += " (the same name, its accents composed differently)"
            yield V((*loc, i), "duplicate", f"{what} {item!r} is listed twice", hint)
        first.setdefault(key(item), i)


def _classes(spec: SpecModel) -> Iterator[Violation]:
    classes, loc = spec.data.classes, ("data", "classes")
    if classes == "auto":
        if spec.data.format == "yolo":
            msg = "data.format 'yolo' needs the class names: its label files hold only indices"
            yield V(loc, "classes-required", msg, "list them in index order, e.g. [cat, dog]")
        return
    if spec.task == "classification" and len(classes) < 2:
        yield V(loc, "classes-count", "a classifier needs at least 2 classes")
    yield from _duplicates(loc, classes, "class", lambda c: unicodedata.normalize("NFC", c))
    if getattr(spec.evaluate.gates, "top5_accuracy", None) is not None and len(classes) <= 5:
        msg = f"top-5 accuracy is always 1 with {len(classes)} classes"
        yield V(("evaluate", "gates", "top5_accuracy"), "gate-classes", msg, "use accuracy")


def _arch(spec: SpecModel) -> Iterator[Violation]:
    arch, loc = spec.model.arch, ("model", "arch")
    family, name = arch.split("/", 1)
    if spec.task == "detection" and family == "timm":
        hint = "use an ultralytics model, e.g. ultralytics/yolo11n.yaml"
        yield V(loc, "arch-task", "timm models are classifiers, not detectors", hint)
    elif spec.task == "classification" and family == "ultralytics":
        hint = "use a timm model, e.g. timm/resnet18"
        yield V(loc, "arch-task", "classification projects train timm models", hint)
    elif family == "ultralytics":
        stem = name.rsplit(".", 1)[0]
        for suffix, kind in _NOT_DETECTORS:
            if stem.endswith(suffix):
                msg = f"'{arch}' is a {kind} model, not a detector"
                yield V(loc, "arch-task", msg, f"drop '{suffix}' from the name")


_NOT_DETECTORS = (
    ("-cls", "classification"),
    ("-seg", "segmentation"),
    ("-pose", "pose"),
    ("-obb", "oriented-box"),
)


def _pretrained(spec: SpecModel) -> Iterator[Violation]:
    """pretrained: true needs a local weights file (nothing is downloaded), except for a
    detection arch that is itself a .pt file: its own weights."""
    from cvspec.train.model import PRETRAINED_FIX, PRETRAINED_WHY  # plain strings, no torch

    model = spec.model
    own_weights = spec.task == "detection" and model.arch.endswith(".pt")
    if model.pretrained and not model.weights and not own_weights:
        yield V(
            ("model", "pretrained"),
            "pretrained",
            f"model.pretrained: {PRETRAINED_WHY}",
            PRETRAINED_FIX,
        )


def _image_size(spec: SpecModel) -> Iterator[Violation]:
    size = spec.model.image_size
    if spec.model.arch.startswith("ultralytics/") and size % 32:
        msg = f"ultralytics models need an image_size that is a multiple of 32, got {size}"
        yield V(("model", "image_size"), "image-size", msg, f"use {_multiples(size, 32)}")


def _gates(spec: SpecModel) -> Iterator[Violation]:
    for name, gate in set_gates(spec.evaluate.gates).items():
        info, loc = GATE_INFO[name], ("evaluate", "gates", name)
        if getattr(gate, info.direction) is None:
            other = "max" if info.direction == "min" else "min"
            better = "higher" if info.direction == "min" else "lower"
            msg = f"{better} {name} is better, so a '{other}' bound alone never fails a bad model"
            yield V((*loc, other), "gate-direction", msg, f"use {info.direction}: instead")
        for bound, value in (("min", gate.min), ("max", gate.max)):
            if value is not None and info.fraction and not 0 <= value <= 1:
                hint = f"did you mean {value / 100:g}?" if 10 <= value <= 100 else None
                msg = f"{name} is a fraction in [0, 1], got {value:g}"
                yield V((*loc, bound), "gate-range", msg, hint)
            elif value is not None and not info.fraction and value < 0:
                yield V((*loc, bound), "gate-range", f"{name} cannot be negative")
        yield from _bound_order(loc, gate.min, gate.max)


def _bound_order(loc: Loc, low: float | None, high: float | None) -> Iterator[Violation]:
    if low is not None and high is not None and low > high:
        msg = f"min {low:g} is above max {high:g}: no value can pass"
        yield V((*loc, "min"), "bound-order", msg)


def _splits(spec: SpecModel) -> Iterator[Violation]:
    splits, loc = spec.data.splits, ("data", "splits")
    if isinstance(splits, DirSplits):
        seen: dict[str, str] = {}
        for name, path in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
            norm = posixpath.normpath(path.replace("\\", "/")) if path else ""
            if norm in seen:
                msg = f"'{seen[norm]}' and '{name}' are the same directory '{path}'"
                yield V((*loc, name), "split-overlap", msg, "evaluation must not see training data")
            if norm:
                seen.setdefault(norm, name)
    elif splits.val + splits.test >= 1:
        msg = f"val + test = {splits.val + splits.test:g} leaves nothing to train on"
        yield V(loc, "split-ratio", msg, "keep val + test below 1, e.g. {val: 0.1, test: 0.1}")
    elif spec.eval_split == "val" and splits.val == 0:
        yield V(loc, "eval-split", "val and test are both 0: nothing to evaluate on")
    if spec.evaluate.split == "test":
        has_test = splits.test is not None if isinstance(splits, DirSplits) else splits.test > 0
        if not has_test:
            msg = "evaluate.split is 'test' but the data has no test split"
            yield V(("evaluate", "split"), "eval-split", msg, "add a test split or use 'val'")


# Augmentation settings ultralytics has no argument for: detection would drop them silently.
_NOT_IN_ULTRALYTICS = {
    ("rotate", "p"): "ultralytics rotates every image, by a random angle up to `degrees`",
    ("color_jitter", "p"): "ultralytics jitters every image (hue, saturation, brightness)",
    ("color_jitter", "contrast"): "ultralytics jitters hue, saturation and brightness only",
    ("mixup", "alpha"): "ultralytics draws its own mixing ratio; `p` sets how often it mixes",
}


def _augment(spec: SpecModel) -> Iterator[Violation]:
    for i, step in enumerate(spec.data.augment):
        loc: Loc = ("data", "augment", i, step.name)
        if spec.task not in AUGMENTATIONS[step.name].tasks:
            usable = ", ".join(n for n, a in AUGMENTATIONS.items() if spec.task in a.tasks)
            msg = f"'{step.name}' is not available for {spec.task}"
            yield V(loc, "augment-task", msg, f"use one of: {usable}")
        if spec.task == "detection":
            for field in sorted(step.params.model_fields_set):
                why = _NOT_IN_ULTRALYTICS.get((step.name, field))
                if why is not None:
                    msg = f"{step.name}.{field} has no effect on detection: {why}"
                    yield V((*loc, field), "augment-detection", msg, f"remove {field}")
        params = step.params
        if isinstance(params, RandomResizedCrop):
            for field, (low, high) in (("scale", params.scale), ("ratio", params.ratio)):
                if low > high:
                    msg = f"{field} is [low, high], got [{low:g}, {high:g}]"
                    yield V((*loc, field), "range-order", msg)
            if params.scale[1] > 1:
                msg = "scale is a fraction of the image area, at most 1"
                yield V((*loc, "scale"), "range-order", msg)
    if spec.task == "classification":
        yield from _augment_order(spec.data.augment)
    names = [s.name for s in spec.data.augment]
    yield from _duplicates(("data", "augment"), names, "augmentation")


def _augment_order(steps: Sequence[Any]) -> Iterator[Violation]:
    """Classification training runs the image steps in spec order, then random_erasing on
    each normalised model input, then mixup on whole batches: a spec listing one of those two
    before a step that runs earlier would be trained in another order than it reads."""
    from cvspec.train.augment import BATCH_STEPS, TENSOR_STEPS  # plain sets, no torch

    def stage(name: str) -> int:
        return 2 if name in BATCH_STEPS else 1 if name in TENSOR_STEPS else 0

    runs = {
        1: "erases a rectangle of the normalised model input, after every image step",
        2: "blends whole batches, after every other step",
    }
    for i, step in enumerate(steps):
        later = [s.name for s in steps[i + 1 :] if stage(s.name) < stage(step.name)]
        if later:
            names = ", ".join(later[:-1]) + " and " * (len(later) > 1) + later[-1]
            msg = f"{step.name} {runs[stage(step.name)]}: after {names}, listed below it"
            fix = "last" if stage(step.name) == 2 else f"after {names}"
            yield V(("data", "augment", i, step.name), "augment-order", msg, f"list it {fix}")


def _train(spec: SpecModel) -> Iterator[Violation]:
    train, dist = spec.train, spec.train.distributed
    if spec.task == "detection" and train.sweep:
        msg = "train.sweep is for classification: a detector trains one config (ultralytics)"
        hint = "remove it, and train each point with --set, e.g. --set train.optimizer.lr=0.01"
        yield V(("train", "sweep"), "sweep-task", msg, hint)
    if spec.task == "detection" and train.schedule in ("step", "onecycle"):
        msg = (
            f"ultralytics has no '{train.schedule}' schedule: it decays the learning rate on a "
            "cosine or a straight line"
        )
        hint = "use cosine, or constant (no decay)"
        yield V(("train", "schedule"), "schedule-task", msg, hint)
    if dist.engine == "none":
        for field, count in (("nodes", dist.nodes), ("gpus_per_node", dist.gpus_per_node)):
            if count > 1:
                msg = f"{field}: {count} needs a launcher, but engine is 'none'"
                hint = "set engine: torchrun, kubernetes or slurm"
                yield V(("train", "distributed", field), "distributed", msg, hint)
    elif spec.task == "detection":
        msg = "distributed training is for classification (timm under DistributedDataParallel)"
        hint = "detection trains in one process: set engine: none"
        yield V(("train", "distributed", "engine"), "distributed", msg, hint)
    elif train.sweep:
        msg = f"a sweep trains its points one after another; engine '{dist.engine}' cannot run it"
        hint = "sweep with engine: none, then train the best point distributed"
        yield V(("train", "sweep"), "distributed", msg, hint)
    yield from _node_resources(spec)
    world = dist.nodes * dist.gpus_per_node
    if train.batch_size % world:
        msg = f"batch_size {train.batch_size} does not split evenly over {world} GPUs"
        hint = f"use {_multiples(train.batch_size, world)}"
        yield V(("train", "batch_size"), "batch-size", msg, hint)
    if train.warmup_epochs >= train.epochs:
        msg = f"warmup_epochs ({train.warmup_epochs:g}) must be below epochs ({train.epochs})"
        yield V(("train", "warmup_epochs"), "warmup", msg)


def _gib(size: int) -> str:
    return f"{size / 2**30:.3g}GiB"


def _node_resources(spec: SpecModel) -> Iterator[Violation]:
    """What one machine asks for must hold what runs on it."""
    dist, where = spec.train.distributed, ("train", "distributed")
    asked = node_resources(spec.train)
    if dist.cpus_per_node is not None and dist.cpus_per_node < dist.gpus_per_node:
        msg = (
            f"cpus_per_node {dist.cpus_per_node} is below gpus_per_node {dist.gpus_per_node}: "
            "each training process needs a CPU of its own"
        )
        hint = f"use at least {dist.gpus_per_node}, or leave it out for {dist.gpus_per_node} x "
        hint += f"(train.workers + 1) = {dist.gpus_per_node * (spec.train.workers + 1)}"
        yield V((*where, "cpus_per_node"), "node-resources", msg, hint)
    if asked.shm >= asked.memory:
        shm = f"shm_size {_gib(asked.shm)}"
        if dist.shm_size is None:
            shm += " (the default: 512MiB per data loader worker per GPU, at least 1GiB)"
        msg = (
            f"memory_per_node {_gib(asked.memory)} does not hold {shm}: /dev/shm is memory "
            "the machine's share counts, and the processes need the rest"
        )
        hint = f"raise memory_per_node above {_gib(asked.shm)} or set a smaller shm_size"
        field = "shm_size" if dist.shm_size is not None else "memory_per_node"
        yield V((*where, field), "node-resources", msg, hint)


def _project_name(spec: SpecModel) -> Iterator[Violation]:
    """The images are named after the project: its name must be one component of an image
    name (Docker's rule: no separator at the end, '_', '__' or a run of '-' between words)."""
    from cvspec.spec.model_ops import IMAGE_COMPONENT

    name = spec.project.name
    if not re.fullmatch(IMAGE_COMPONENT, name):
        msg = (
            f"project.name {name!r} cannot name the project's images and Kubernetes objects: "
            "Docker refuses an image name that ends with '_' or '-', holds '___' or mixes "
            "them ('_-'), and Kubernetes a label value that ends with one"
        )
        fixed = re.sub(r"[_-]+$", "", re.sub(r"_*-[-_]*", "-", re.sub(r"___+", "__", name)))
        hint = f"end it with a letter or digit and join words with '-', '_' or '__', e.g. {fixed!r}"
        yield V(("project", "name"), "project-name", msg, hint)


def _ops(spec: SpecModel) -> Iterator[Violation]:
    serve, deploy, bench = spec.serve, spec.deploy, spec.evaluate.latency
    if serve.port == serve.metrics_port:
        msg = f"metrics_port is the same as port ({serve.port})"
        yield V(("serve", "metrics_port"), "port-clash", msg)
    if bench.batch > serve.max_batch:
        msg = (
            f"latency is timed at batch {bench.batch}; the server batches at most {serve.max_batch}"
        )
        yield V(("evaluate", "latency", "batch"), "latency-batch", msg, "raise serve.max_batch")
    if bench.device == "cuda" and not deploy.gpu:
        msg = "latency is timed on cuda but the image is built without a GPU"
        hint = "set deploy.gpu: true or time on cpu"
        yield V(("evaluate", "latency", "device"), "latency-device", msg, hint)
    if serve.device == "cuda" and not deploy.gpu:
        msg = "the server runs on cuda but the image is built without a GPU"
        hint = "set deploy.gpu: true or serve on cpu"
        yield V(("serve", "device"), "serve-device", msg, hint)
    if deploy.cuda is not None and not deploy.gpu:
        msg = "deploy.cuda is set but deploy.gpu is false"
        yield V(("deploy", "cuda"), "cuda-without-gpu", msg, "set gpu: true")
    head = (deploy.image or "").split("/", 1)[0]
    if deploy.registry and "/" in (deploy.image or "") and _is_host(head):
        msg = f"deploy.image already names a registry ('{head}')"
        hint = "drop deploy.registry or the registry part of deploy.image"
        yield V(("deploy", "registry"), "image-registry", msg, hint)
    if spec.ci.cvspec_requirement and (who := _url_credential(spec.ci.cvspec_requirement)):
        msg = (
            f"ci.cvspec_requirement holds a credential ('{who}@' in its URL): the CI files and "
            "the images' Dockerfiles (and so their history) would carry it"
        )
        hint = (
            "credentials come by file or environment, never in the spec: a CI secret in "
            "~/.netrc or git's `url.<base>.insteadOf`, or git+ssh://git@HOST/... with a deploy key"
        )
        yield V(("ci", "cvspec_requirement"), "credential-in-spec", msg, hint)


def _url_credential(requirement: str) -> str | None:
    """The user part, password masked, of a requirement's URL that carries a credential
    (`user:password@` or a token alone as the user of an http(s) URL); None if none.

    A user without a password is fine over ssh only (git@github.com: the key is the secret).
    """
    from urllib.parse import urlsplit

    rest = requirement.removeprefix("cvspec").strip()
    url = rest.removeprefix("@").strip() if rest.startswith("@") else requirement
    parts = urlsplit(url)
    user, at, _ = parts.netloc.rpartition("@")
    if not at or (":" not in user and parts.scheme.endswith("ssh")):
        return None
    name, colon, _ = user.partition(":")
    return f"{name}:***" if colon else "***"


def _is_host(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost"


def _alerts(spec: SpecModel) -> Iterator[Violation]:
    notify, contacts = spec.monitor.notify, spec.project.contacts
    routed = any((notify.slack, notify.jira, contacts.slack, contacts.jira))
    first: dict[str, int] = {}
    if notify.jira and not notify.jira_url:
        msg = "monitor.notify.jira routes tickets to Jira, but no jira_url says which Jira"
        hint = "add jira_url: https://<your-site>.atlassian.net/rest/api/2/"
        yield V(("monitor", "notify", "jira"), "jira-url", msg, hint)
    if notify.jira_url and re.search(r"/rest/api/3/?$", str(notify.jira_url)):
        # Alertmanager sends the ticket's text as a string, which Jira's v3 API refuses (it takes
        # only an Atlassian Document there); on a .../3 URL it parses the text as that JSON.
        msg = "Alertmanager's Jira tickets need Jira's REST API v2; v3 refuses their plain text"
        hint = "use the same Jira's v2 URL: " + re.sub(r"/3/?$", "/2/", str(notify.jira_url))
        yield V(("monitor", "notify", "jira_url"), "jira-url", msg, hint)
    for i, alert in enumerate(spec.monitor.alerts):
        loc: Loc = ("monitor", "alerts", i)
        if alert.metric not in ALERT_METRICS:
            close = difflib.get_close_matches(alert.metric, list(ALERT_METRICS), n=1)
            hint = (
                f"did you mean '{close[0]}'?" if close else (f"metrics: {', '.join(ALERT_METRICS)}")
            )
            msg = f"the server exports no metric '{alert.metric}' to alert on"
            yield V((*loc, "metric"), "alert-metric", msg, hint)
        if alert.name in first:
            msg, hint = f"alert name '{alert.name}' is used twice", f"alerts[{first[alert.name]}]"
            yield V((*loc, "name"), "alert-name", msg, f"rename it; {hint} has that name")
        first.setdefault(alert.name, i)
        yield from _bound_order(loc, alert.min, alert.max)
        if alert.severity != "info" and not routed:
            msg = f"a '{alert.severity}' alert has nowhere to go"
            hint = "set monitor.notify.slack/jira or project.contacts"
            yield V((*loc, "severity"), "alert-route", msg, hint)


def _alert_reach(spec: SpecModel) -> Iterator[Violation]:
    """Bounds the served metric can never cross (the alert never fires) or always crosses.

    A gate only below what the server can read (a sub-millisecond latency) stays allowed: it
    gates the offline benchmark, and the alert it implies fires as soon as there is traffic.
    """
    from cvspec.serve.alerts import alert_rules, reach

    if any(alert.metric not in ALERT_METRICS for alert in spec.monitor.alerts):
        return  # alert-metric says which; their alerts do not exist yet
    for rule in alert_rules(spec):
        if not rule.key:
            continue  # a default: within reach by construction
        span = reach(rule.metric, spec)
        own = rule.key[0] == "monitor"
        what = "this alert" if own else f"the {rule.name} alert it implies"
        given = [(b, v) for b, v in (("min", rule.min), ("max", rule.max)) if v is not None]
        never = [(b, v) for b, v in given if (v <= span.low if b == "min" else v >= span.high)]
        for bound, value in given:
            side = "above" if bound == "max" else "below"
            if own and ((value > span.high) if bound == "min" else (value < span.low)):
                msg = f"{rule.metric} is always {side} {value:g}, so {what} would always fire"
            elif len(never) == len(given) and (bound, value) in never:
                msg = f"{rule.metric} is never {side} {value:g}, so {what} can never fire"
            else:
                continue
            hint = f"{rule.metric} is {span.text}"
            if span.high == 1 and 1 < value <= 100:
                hint += f"; did you mean {value / 100:g}?"
            elif not own:
                hint += f"; an alert on {rule.metric} in monitor.alerts replaces the implied one"
            yield V((*rule.key, bound), "alert-range", msg, hint)


def _relabel(spec: SpecModel) -> Iterator[Violation]:
    classes = spec.data.classes
    for path, target in getattr(spec.data, "relabel", {}).items():
        if any(c in path for c in "*?["):
            msg = f"data.relabel names one image per entry, not a pattern: {path!r}"
            hint = "list each image; data.exclude takes patterns"
            yield V(("data", "relabel", path), "relabel-pattern", msg, hint)
        elif classes != "auto" and target not in classes:
            msg = f"data.relabel gives {path!r} the class {target!r}, which is not in data.classes"
            hint = did_you_mean(target, list(classes)) or f"one of: {', '.join(classes)}"
            yield V(("data", "relabel", path), "relabel-class", msg, hint)


def _remote_secrets(spec: SpecModel) -> Iterator[Violation]:
    data = spec.data
    if data.remote_secrets and data.versioning != "dvc":
        msg = "remote_secrets are for a DVC remote, but data.versioning is not dvc"
        hint = "set data.versioning: dvc, or remove remote_secrets"
        yield V(("data", "remote_secrets"), "secrets-without-dvc", msg, hint)
    for i, name in enumerate(data.remote_secrets):
        if name.startswith("GITHUB_"):
            msg = f"secret name {name!r} starts with GITHUB_, which GitHub reserves"
            yield V(("data", "remote_secrets", i), "reserved-secret", msg, "rename the secret")
    if spec.ci.dvc_remote is None and data.versioning == "dvc":
        for i, name in enumerate(data.remote_secrets):
            kind = next((k for p, k in CLOUD_SECRETS if name.startswith(p)), None)
            if kind:
                msg = (
                    f"{name} is a credential of a {kind} remote, but ci.dvc_remote is not set: "
                    f"CI installs plain dvc, whose pull cannot reach {kind}"
                )
                hint = f"set ci.dvc_remote: {kind} (CI then installs dvc[{kind}])"
                yield V(("data", "remote_secrets", i), "remote-kind", msg, hint)
                return


# Credential variables by the DVC remote kind whose plugin reads them.
CLOUD_SECRETS = (
    ("AWS_", "s3"),
    ("GOOGLE_", "gs"),
    ("GCS_", "gs"),
    ("AZURE_", "azure"),
    ("OSS_", "oss"),
)


def _lists(spec: SpecModel) -> Iterator[Violation]:
    yield from _duplicates(("export",), spec.export, "format")
    yield from _duplicates(("project", "owners"), spec.project.owners, "owner")
    yield from _duplicates(("deploy", "platforms"), spec.deploy.platforms, "platform")
    yield from _duplicates(("ci", "providers"), spec.ci.providers, "provider")
    yield from _duplicates(("ci", "on"), spec.ci.on, "event")
    yield from _duplicates(("data", "remote_secrets"), spec.data.remote_secrets, "secret")


_NO_SWEEP = ("cvspec", "extends", "task", "project", "profiles", "templates", "train.sweep")


def _resolve(spec: SpecModel, key: str) -> Violation | None:
    """None when `key` names a field of `spec`, else the sweep-key violation saying why."""
    loc: Loc = ("train", "sweep", key)
    if any(key == k or key.startswith(k + ".") for k in _NO_SWEEP):
        hint = "sweep settings of data, model, train or evaluate"
        return V(loc, "sweep-key", f"'{key}' cannot be swept", hint)
    parts, value = key.split("."), cast(object, spec)
    owners: list[type[BaseModel]] = [type(spec)]
    for depth, part in enumerate(parts):
        fields = {f.alias or n: (n, f) for o in owners for n, f in o.model_fields.items()}
        prefix = ".".join(parts[:depth])
        if part not in fields:
            close = difflib.get_close_matches(part, list(fields), n=1, cutoff=0.6)
            msg = (
                f"'{key}' names no field: {repr(prefix) if prefix else 'the spec'} has no '{part}'"
            )
            where = f"{prefix}." if prefix else ""
            hint = (
                f"did you mean '{where}{close[0]}'?"
                if close
                else f"fields of {prefix or 'the spec'}: {', '.join(fields)}"
            )
            return V(loc, "sweep-key", msg, hint)
        name, field = fields[part]
        value = getattr(value, name, None) if isinstance(value, BaseModel) else None
        owners = [type(value)] if isinstance(value, BaseModel) else model_members(field.annotation)
        if not owners and depth < len(parts) - 1:
            if typing.get_origin(field.annotation) is dict:
                return None
            msg = f"'{key}' goes inside '{'.'.join(parts[: depth + 1])}', which is not a mapping"
            return V(loc, "sweep-key", msg)
    return None


def _sweep_variant(spec: SpecModel, key: str, value: object) -> list[Violation] | str:
    """The rule violations of `spec` with `key` set to `value`, or why it does not validate."""
    data = spec.model_dump(by_alias=True)
    data["train"]["sweep"] = {}
    node, parts = data, key.split(".")
    for part in parts[:-1]:
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    try:
        variant = SPEC_ADAPTER.validate_python(data)
    except ValidationError as exc:
        from cvspec.spec.messages import explain

        return "; ".join(explain(dict(e)).message for e in exc.errors(include_url=False))
    return [v for rule in RULES if rule is not _sweep for v in rule(variant)]


def _sweep(spec: SpecModel) -> Iterator[Violation]:
    if spec.task == "detection":
        return  # _train says a detector does not sweep; its points are not checked
    base: set[tuple[Loc, str, str]] | None = None
    for key, values in spec.train.sweep.items():
        problem = _resolve(spec, key)
        if problem is not None:
            yield problem
            continue
        loc: Loc = ("train", "sweep", key)
        yield from _duplicates(loc, values, "sweep value")
        if base is None:
            others = [rule for rule in RULES if rule is not _sweep]
            base = {(v.loc, v.code, v.message) for rule in others for v in rule(spec)}
        for i, value in enumerate(values):
            found = _sweep_variant(spec, key, value)
            if isinstance(found, str):
                yield V((*loc, i), "sweep-value", f"sweep {key} = {show(value)}: {found}")
                continue
            for v in found:
                if (v.loc, v.code, v.message) not in base:
                    yield V(
                        (*loc, i),
                        "sweep-value",
                        f"sweep {key} = {show(value)}: {v.message}",
                        v.help,
                    )


RULES: list[Rule] = [
    _project_name,
    _classes,
    _arch,
    _pretrained,
    _image_size,
    _gates,
    _splits,
    _augment,
    _train,
    _ops,
]
RULES += [_relabel, _remote_secrets, _alerts, _alert_reach, _lists, _sweep]
