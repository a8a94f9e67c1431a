"""Launch files for training on more than one GPU or machine: torchrun, Slurm, Kubernetes.

`train.distributed.engine` picks one; `cvspec run --stage train` itself runs torchrun on this
machine (nodes: 1). Each file starts `python -m cvspec.train` on the generated config tree
under torchrun, so every engine trains exactly what `cvspec run` trains.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext
from cvspec.generate.builtin.docker import UID
from cvspec.generate.builtin.train_config import data_root
from cvspec.package.images import repository

NAME = "launch"
FILES = {"torchrun": "launch/torchrun.sh", "slurm": "launch/train.sbatch"}
JOB = "launch/pytorchjob.yaml"
WORKDIR = "/app"  # the train image's working folder (docker generator)
BACKOFF_LIMIT = 6  # pod restarts before the PyTorchJob fails


class LaunchGenerator:
    """Plans generated/<project>/launch/: the launcher `train.distributed.engine` names."""

    name = NAME
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """Nothing for engine none; otherwise one launch file."""
        dist = spec.train.distributed
        if dist.engine == "none":
            return
        if dist.engine == "kubernetes":
            yield Artifact(JOB, NAME, "yaml", data=pytorch_job(spec, ctx))
            return
        path = FILES[dist.engine]
        context = {
            "project": ctx.project,
            "nodes": dist.nodes,
            "gpus": dist.gpus_per_node,
            "gpu": spec.deploy.gpu,  # Slurm asks for GPUs only when the image uses them
            "cpus": dist.gpus_per_node * (spec.train.workers + 1),
            "config_dir": f"{ctx.out_dir}/train",
            "data": data_root(spec, ctx),
            "up": "/".join(".." for _ in posixpath.dirname(f"{ctx.out_dir}/{path}").split("/")),
            "script": f"{ctx.out_dir}/{path}",
        }
        yield Artifact(path, NAME, "shell", template=f"{path}.j2", context=context)


def torchrun_args(spec: Any, ctx: BuildContext, endpoint: str, rdzv_id: str) -> list[str]:
    """`python -m torch.distributed.run ... -m cvspec.train --config-dir ...` as argv."""
    dist = spec.train.distributed
    return [
        "python",
        "-m",
        "torch.distributed.run",
        f"--nnodes={dist.nodes}",
        f"--nproc-per-node={dist.gpus_per_node}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={endpoint}",
        f"--rdzv-id={rdzv_id}",
        "-m",
        "cvspec.train",
        "--config-dir",
        f"{ctx.out_dir}/train",
    ]


def pytorch_job(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """A Kubeflow PyTorchJob: one Master pod and nodes - 1 Worker pods of the train image.

    The training operator gives every pod MASTER_ADDR and MASTER_PORT; torchrun's c10d
    rendezvous there assigns the ranks. The images and the runs live on two volumes the cluster
    provides (PersistentVolumeClaims <project>-data and <project>-runs, ReadWriteMany; a '_' in
    the project's name is a '-' in every Kubernetes name).
    """
    dist = spec.train.distributed
    name = ctx.project.replace("_", "-")  # Kubernetes names are DNS names: no '_'
    data = data_root(spec, ctx)
    mount = data if posixpath.isabs(data) else posixpath.join(WORKDIR, data)
    argv = torchrun_args(spec, ctx, "$(MASTER_ADDR):$(MASTER_PORT)", f"{ctx.project}-train")
    container: dict[str, Any] = {
        "name": "pytorch",  # the name the training operator looks for
        "image": f"{repository(spec, 'train')}:latest",
        "imagePullPolicy": "Always",
        "command": argv[:3],
        "args": argv[3:],
        "volumeMounts": [
            {"name": "data", "mountPath": mount, "readOnly": True},
            {"name": "runs", "mountPath": f"{WORKDIR}/runs"},
            {"name": "shm", "mountPath": "/dev/shm"},  # data loader workers share tensors here
        ],
    }
    if spec.deploy.gpu:
        container["resources"] = {"limits": {"nvidia.com/gpu": dist.gpus_per_node}}
    pod = {
        "metadata": {"labels": _labels(ctx)},
        "spec": {
            # The image's non-root user; fsGroup makes the runs volume writable to it, where a
            # fresh volume's root would belong to root. OnRootMismatch: a volume already owned
            # so is not walked file by file at every start.
            "securityContext": {
                "runAsUser": UID,
                "runAsGroup": UID,
                "fsGroup": UID,
                "fsGroupChangePolicy": "OnRootMismatch",
                "runAsNonRoot": True,
            },
            "containers": [container],
            "volumes": [
                {  # read-only claim: training never writes the dataset, nor fsGroup it
                    "name": "data",
                    "persistentVolumeClaim": {"claimName": f"{name}-data", "readOnly": True},
                },
                {"name": "runs", "persistentVolumeClaim": {"claimName": f"{name}-runs"}},
                {"name": "shm", "emptyDir": {"medium": "Memory"}},
            ],
        },
    }
    replicas: dict[str, Any] = {
        "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": pod}
    }
    if dist.nodes > 1:
        replicas["Worker"] = {
            "replicas": dist.nodes - 1,
            "restartPolicy": "OnFailure",
            "template": pod,
        }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": _job_name(name, dist.nodes), "labels": _labels(ctx)},
        "spec": {
            # OnFailure restarts a pod that failed, so a preempted node resumes from the last
            # checkpoint; the limit (a Kubernetes Job's default) stops a job that fails on every
            # start (a wrong config, a missing volume) instead of restarting it for ever.
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": BACKOFF_LIMIT},
            "pytorchReplicaSpecs": replicas,
        },
    }


def _job_name(name: str, nodes: int) -> str:
    """<name>-train, short enough for the operator's pod Services, <job>-master-0 and
    <job>-worker-<i>: each a DNS label of at most 63 characters."""
    suffix = max(len("-master-0"), len(f"-worker-{max(nodes - 2, 0)}"))
    return f"{name}-train"[: 63 - suffix].rstrip("-")


def _labels(ctx: BuildContext) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": ctx.project,
        "app.kubernetes.io/component": "train",
        "app.kubernetes.io/managed-by": "cvspec",
    }
