"""The serving pipeline behind the routes: load, decode, batch, predict, and keep the metrics."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

from cvspec.serve.admission import PixelBudget
from cvspec.serve.batching import Batcher
from cvspec.serve.config import ServeConfig
from cvspec.serve.drift import DriftMonitor, load_baseline
from cvspec.serve.inputs import decode
from cvspec.serve.metrics import ServerMetrics
from cvspec.serve.model import Model, ModelFiles, probabilities

log = logging.getLogger("cvspec.serve")


class Prepared(NamedTuple):
    """One decoded image: its model-sized pixels, its grey histogram, and its size."""

    array: Any  # (S, S, 3) uint8: normalised with the rest of its batch (Service._run)
    histogram: list[int]
    size: tuple[int, int]


class Service:
    """Loads the model in the background; until then `ready` is False and /health says so."""

    def __init__(self, config: ServeConfig, files: ModelFiles, freeze_gc: bool = False) -> None:
        self.config, self.files = config, files
        self.freeze_gc = freeze_gc  # a server process of its own: see start()
        self.name = config.name or files.path.resolve().parent.name
        self.metrics = ServerMetrics()
        self.drift = DriftMonitor(load_baseline(config.baseline))
        self.metrics.baseline.set(self.drift.images)
        self.metrics.prime(files.labels)
        self.model: Model | None = None
        self.batcher: Batcher | None = None
        self.error: str | None = None
        self.pending = 0  # requests being read or decoded: the batcher waits only for these
        self.in_flight = 0  # /predict requests admitted and not yet answered
        self.calling = False  # a model call is running (in the inference thread)
        self.decoding = PixelBudget(
            config.decode_budget, config.queue_capacity, on_change=self.metrics.decoding.set
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """True once the model is loaded and warm."""
        return self.batcher is not None

    async def start(self) -> None:
        """Load and warm the model in a thread, then start batching; a failure is kept in error."""
        try:
            model = await asyncio.to_thread(self._load)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("cannot load the model from %s", self.files.path)
            return
        max_batch = min(self.config.max_batch, model.fixed_batch or self.config.max_batch)
        self.model = model
        self.metrics.model.labels(self.name, self.files.version, model.task).set(1)
        batcher = Batcher(
            self._run,
            max_batch,
            self.config.max_wait_ms / 1000,
            self.config.queue_capacity,
            pending=lambda: self.pending,
            on_batch=self.metrics.batch_done,
            on_depth=self.metrics.queue.set,
            finish=self.finish,
            alone=self._alone,
        )
        self._task = asyncio.create_task(batcher.serve_forever())
        self.batcher = batcher
        if self.freeze_gc:
            # What is alive now (modules, the app, the model) lives as long as the server: the
            # garbage collector stops scanning it, so each full collection while serving is
            # short (about 50,000 objects, 14 ms, otherwise).
            gc.freeze()
        log.info(
            "serving %s (version %s, %s, batches of up to %d)",
            self.name,
            self.files.version,
            model.task,
            max_batch,
        )

    async def stop(self) -> None:
        """Stop batching; waiting requests get an error."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _alone(self) -> bool:
        """May a quick model call run on the event loop (batching.INLINE_CALL_S)? Only for the one
        request in flight, and only on the CPU: a GPU call can hang in its driver, and a hang on
        the loop would also stop the drain deadline (runner.DRAIN_S) from ending the process."""
        return self.in_flight <= 1 and self.config.device == "cpu"

    def _load(self) -> Model:
        import numpy as np

        model = Model(self.files, self.config.model_threads, self.config.device)
        side = self.files.pre.image_size
        for n in sorted({1, model.fixed_batch or self.config.max_batch}):
            model.run(np.zeros((n, 3, side, side), dtype=np.float32))
        return model

    def _run(self, pixels: Any) -> Any:
        """One model call on a batch of `Prepared.array`s, normalised here, in the inference
        thread, once per batch; a fixed-batch model gets zero padding."""
        import numpy as np

        from cvspec.preprocess import normalize

        assert self.model is not None
        self.calling = True
        try:
            batch = normalize(pixels, self.files.pre)
            fixed, n = self.model.fixed_batch, len(batch)
            if fixed is not None and n < fixed:
                pad = np.zeros((fixed - n, *batch.shape[1:]), dtype=batch.dtype)
                return self.model.run(np.concatenate([batch, pad]))[:n]
            return self.model.run(batch)
        finally:
            self.calling = False

    def prepare(self, images: list[Any]) -> list[Prepared]:
        """Decode opened images and preprocess them: exactly what evaluation does.

        One image at a time, each freed before the next is decoded, so a request never holds
        more decoded pixels than its largest image (what it takes of the decode budget).
        """
        from cvspec.imagestats import grey_histogram
        from cvspec.preprocess import resized

        out = []
        for index, opened in enumerate(images):
            try:
                img = decode(opened, index)
                out.append(Prepared(resized(img, self.files.pre), grey_histogram(img), img.size))
                img.close()
            finally:
                opened.close()
        return out

    def finish(self, outputs: Any, inputs: Sequence[Prepared]) -> list[dict[str, Any]]:
        """One answer per image of a batch; counts classes, confidences and input statistics.

        Called once per model call, so the softmax, the ranking, the input statistics and the
        drift gauges are computed per batch rather than per request.
        """
        from cvspec.imagestats import stats_of
        from cvspec.serve.postprocess import classify, detect

        labels = self.files.labels
        assert self.model is not None
        if self.model.task == "classification":
            answers = classify(probabilities(outputs), labels)
            found = [(a["label"], a["confidence"]) for a in answers]
        else:
            side, fit = self.files.pre.image_size, self.files.pre.fit
            floor, iou = self.config.box_confidence, self.config.box_iou
            answers = [
                detect(o, labels, p.size, side, fit, floor, iou)
                for o, p in zip(outputs, inputs, strict=True)
            ]
            found = [(b["label"], b["confidence"]) for a in answers for b in a["boxes"]]
        self.metrics.predicted(found)
        for stats in stats_of([p.histogram for p in inputs], [p.size for p in inputs]):
            self.metrics.input_seen(stats)
            self.drift.add(stats)
        for stat, value in self.drift.drift().items():
            self.metrics.drift.labels(stat).set(value)
        return answers
