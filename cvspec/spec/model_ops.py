"""The operational sections: project, serve, deploy, monitor and ci."""

from typing import Annotated, Literal, Self

from pydantic import ByteSize, Field, WithJsonSchema, model_validator

from cvspec.spec.model_base import (
    Duration,
    Identifier,
    JiraKey,
    JiraTransition,
    Label,
    Owner,
    PascalName,
    Pattern,
    Probability,
    ProjectName,
    SecretName,
    SlackChannel,
    StrictModel,
    Text,
    check_bounds,
)

_DOMAIN = (
    r"[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:[0-9]+)?"
)
IMAGE_COMPONENT = r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*"
IMAGE_PATTERN = rf"^({_DOMAIN}/)?{IMAGE_COMPONENT}(/{IMAGE_COMPONENT})*$"
REGISTRY_PATTERN = rf"^{_DOMAIN}(/{IMAGE_COMPONENT})*$"

ImageName = Annotated[
    str,
    Pattern(
        IMAGE_PATTERN, "an image name without tag, like 'ghcr.io/acme/digits' (lowercase path)", 255
    ),
]
Registry = Annotated[str, Pattern(REGISTRY_PATTERN, "a registry like 'ghcr.io/acme'", 255)]
CudaVersion = Annotated[str, Pattern(r"^[0-9]+\.[0-9]+(\.[0-9]+)?$", "a CUDA version like '12.4'")]
Digest = Annotated[str, Pattern(r"^sha256:[0-9a-f]{64}$", "'sha256:' and 64 lowercase hex digits")]
Cron = Annotated[
    str,
    Pattern(
        r"^[0-9A-Za-z*/,-]+( [0-9A-Za-z*/,-]+){4}$", "a 5-field cron expression like '0 4 * * 1'"
    ),
]
WebUrl = Annotated[
    str,
    Pattern(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$", "an http(s):// URL", 2000),
]
HttpsUrl = Annotated[
    str,
    Pattern(r"^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$", "an https:// URL", 2000),
]
# A pip requirement for cvspec itself, without extras (each CI job and image adds its own):
# version specifiers, or `cvspec @ URL` (also written as the URL alone).
_VERSIONS = r"(~=|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+"
_URL = r"(git\+)?(https?|ssh|file)://[A-Za-z0-9._~:/?#@!&+,;=%-]+"
CvspecRequirement = Annotated[
    str,
    Pattern(
        rf"^(cvspec(\s*{_VERSIONS}(\s*,\s*{_VERSIONS})*)?|(cvspec\s*@\s*)?{_URL})$",
        "a pip requirement for cvspec without extras, like 'cvspec==0.1.0' or "
        "'cvspec @ git+https://github.com/acme/cvspec@v0.1.0' (or that URL alone)",
        1000,
    ),
]
# The storage of DVC's default remote: dvc[<kind>] brings its plugin (local and http are built in).
DvcRemote = Literal[
    "local", "http", "s3", "gs", "azure", "ssh", "webdav", "webhdfs", "hdfs", "oss", "gdrive"
]
Platform = Literal["linux/amd64", "linux/arm64"]
Provider = Literal["github", "gitlab"]
Event = Literal["pull_request", "push", "schedule", "workflow_dispatch"]
_PLATFORMS: tuple[Platform, ...] = ("linux/amd64",)
_PROVIDERS: tuple[Provider, ...] = ("github",)
_EVENTS: tuple[Event, ...] = ("pull_request", "push")
Size = Annotated[
    ByteSize,
    Field(gt=0, le=2**31),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[A-Za-z]*\s*$"},
            ]
        }
    ),
]


class Contacts(StrictModel):
    """Where people reach the owning team."""

    slack: SlackChannel | None = Field(None, description="Slack channel, e.g. '#cv-alerts'.")
    jira: JiraKey | None = Field(None, description="Jira project key, e.g. 'CV'.")


class Project(StrictModel):
    """Who and what the project is."""

    name: ProjectName = Field(
        description="Project name: lowercase, used for directories, images and job names."
    )
    description: Text = Field("", description="One-line description (model card, README).")
    owners: list[Owner] = Field(
        default_factory=list, description="Owners: '@org/team', '@user' or an email address."
    )
    contacts: Contacts = Field(default_factory=Contacts, description="Team contact channels.")


class Serve(StrictModel):
    """The inference server."""

    port: int = Field(8080, ge=1, le=65535, description="HTTP port of the prediction API.")
    metrics_port: int = Field(9090, ge=1, le=65535, description="Port of Prometheus /metrics.")
    max_batch: int = Field(8, ge=1, le=1024, description="Largest dynamic batch.")
    max_wait_ms: float = Field(
        5.0, ge=0, le=10_000, description="Longest wait to fill a batch, in ms."
    )
    max_image_bytes: Size = Field(
        ByteSize(10_000_000), description="Largest accepted upload, e.g. '5MB' or '4MiB'."
    )
    max_pixels: int = Field(
        40_000_000,
        ge=1,
        description="Largest decoded image, width x height (decompression bomb guard).",
    )
    workers: int = Field(1, ge=1, le=256, description="Server worker processes.")
    device: Literal["cpu", "cuda"] = Field(
        "cpu",
        description="Device the server runs the model on; cuda needs deploy.gpu (the serve image "
        "then gets onnxruntime's CUDA build and compose reserves a GPU).",
    )
    box_confidence: Probability = Field(
        0.25, description="Detection: boxes less confident than this are not answered."
    )
    box_iou: Probability = Field(
        0.45, description="Detection: a box overlapping a better one of its class more is dropped."
    )


class Deploy(StrictModel):
    """The container image."""

    image: ImageName | None = Field(
        None, description="Image name without tag, e.g. ghcr.io/acme/digits; null: project name."
    )
    registry: Registry | None = Field(
        None, description="Registry (and namespace) prefixed to image, e.g. ghcr.io/acme."
    )
    gpu: bool = Field(False, description="Build a CUDA image and request a GPU.")
    cuda: CudaVersion | None = Field(None, description="CUDA version of the base image.")
    base_digest: Digest | None = Field(
        None, description="Pin the base image to this digest (sha256:<64 hex>)."
    )
    platforms: list[Platform] = Field(
        default_factory=lambda: list(_PLATFORMS), min_length=1, description="Image platforms."
    )


class Alert(StrictModel):
    """A Prometheus alert on a serving metric."""

    name: PascalName = Field(description="Alert name, PascalCase, e.g. InputDrift.")
    metric: Identifier = Field(description="Metric the alert watches, e.g. brightness_drift.")
    min: float | None = Field(None, description="Fire when the metric falls below this.")
    max: float | None = Field(None, description="Fire when the metric rises above this.")
    for_: Duration = Field("5m", alias="for", description="How long the condition must hold.")
    severity: Literal["page", "ticket", "info"] = Field("ticket", description="Routing severity.")
    description: Text = Field("", description="What the alert means and what to do.")

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        check_bounds(self.min, self.max)
        return self


class Notify(StrictModel):
    """Where alerts go; unset channels fall back to project.contacts."""

    slack: SlackChannel | None = Field(None, description="Slack channel for alerts.")
    jira: JiraKey | None = Field(None, description="Jira project for ticket alerts.")
    jira_url: HttpsUrl | None = Field(
        None,
        description="Your Jira's REST API v2 URL, e.g. https://acme.atlassian.net/rest/api/2/ "
        "(v3 refuses the plain-text tickets Alertmanager sends).",
    )
    slack_webhook_secret: SecretName = Field(
        "SLACK_WEBHOOK_URL", description="Name of the secret holding the Slack webhook URL."
    )
    jira_resolve_transition: JiraTransition | None = Field(
        None,
        description="The transition of your Jira workflow that closes a ticket, e.g. 'Done': "
        "Alertmanager takes it when the ticket's alerts resolve. null: tickets stay open for a "
        "person to close (Alertmanager 0.28 fails every resolved notification that has no "
        "transition to take).",
    )


class Monitor(StrictModel):
    """Production monitoring: alerts beyond the ones derived from gates."""

    alerts: list[Alert] = Field(default_factory=list, description="Extra alerts.")
    notify: Notify = Field(default_factory=Notify, description="Alert routing.")
    grafana_url: WebUrl | None = Field(
        None,
        description="Your Grafana's address, e.g. https://grafana.acme.com: each alert links to "
        "the project's dashboard there; null: the link is the dashboard's path.",
    )


class CI(StrictModel):
    """Continuous integration pipelines."""

    providers: list[Provider] = Field(
        default_factory=lambda: list(_PROVIDERS),
        description="CI systems to generate pipelines for.",
    )
    on: list[Event] = Field(
        default_factory=lambda: list(_EVENTS),
        min_length=1,
        description="Events that run the pipeline.",
    )
    default_branch: Label = Field("main", description="Branch that push events build.")
    runner: Label | None = Field(None, description="CPU runner label; null: provider default.")
    gpu_runner: Label | None = Field(None, description="GPU runner label for GPU jobs.")
    cron: Cron = Field(
        "0 4 * * 1", description="Cron schedule (UTC) used when 'schedule' is in 'on'."
    )
    cvspec_requirement: CvspecRequirement | None = Field(
        None,
        description="How CI jobs and the images install cvspec: a pip requirement without "
        "extras, e.g. 'cvspec @ git+https://github.com/acme/cvspec@v0.1.0'; each adds the "
        "extras it needs. null: cvspec==<the version that built the files>, from the index.",
    )
    dvc_remote: DvcRemote | None = Field(
        None,
        description="Storage of the DVC remote the CI jobs pull data.versioning: dvc data from "
        "(s3, gs, azure, ssh, ...): they install dvc[<kind>], its plugin. null: plain dvc, "
        "which reaches local and http(s) remotes only.",
    )
