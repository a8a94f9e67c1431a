"""The `serve` stage: serve runs/<project>/export with the spec's settings until stopped."""

from __future__ import annotations

from cvspec.run.context import RunContext, StageResult
from cvspec.serve.config import from_spec


def run(ctx: RunContext) -> StageResult:
    """Serve the exported model; a missing export fails the stage with what to run first."""
    from cvspec.errors import CvspecError
    from cvspec.serve.model import read_model_dir
    from cvspec.serve.runner import serve

    config = from_spec(ctx.spec, ctx.runs)
    try:
        read_model_dir(config.model_dir)
    except CvspecError as exc:
        return StageResult(False, exc.message)
    if ctx.console is not None:
        ctx.console.print(
            f"serving on http://{config.host}:{config.port} "
            f"(metrics on port {config.metrics_port}); Ctrl-C stops"
        )
    serve(config)
    return StageResult(True, f"served {config.model_dir} until stopped")
