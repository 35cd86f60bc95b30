"""Multi-process runs on PyTorch's distributed engine (torchrun + DistributedDataParallel).

rtseg never starts processes itself: ``torchrun --nproc-per-node N -m rtseg train ...`` (or
SLURM's ``srun``) starts them and sets the environment; :func:`setup` reads it, joins the
process group (nccl on CUDA, gloo on the CPU) and pins each process to its GPU. Without that
environment everything here is a no-op and rtseg runs in one process as before.

Policy in one place:
- batch sizes are per process: the global batch is ``data.batch_size * world_size``;
- rank 0 alone logs, draws progress, writes TensorBoard, checkpoints and result files;
- evaluation shards whole batches across ranks (no frame twice, none missed: unlike
  ``DistributedSampler``, which pads by repeating frames) and sums the confusion matrices;
- a rank that fails exits non-zero; torchrun then stops the others, and a collective that waits
  on a dead peer gives up after :func:`timeout_seconds` (``RTSEG_DIST_TIMEOUT_S``, default 600).
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from rtseg.errors import RtsegError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def first_slurm_host(nodelist: str) -> str:
    """The first host of a Slurm hostlist: 'gpu[07-09,12],cpu3' -> 'gpu07'."""
    first = re.match(r"[^,\[]+(\[[^\]]*\])?", nodelist.strip())
    if not first:
        raise RtsegError(f"cannot read the Slurm node list {nodelist!r}: set MASTER_ADDR")
    text = first.group(0)
    if "[" not in text:
        return text
    prefix, ranges = text.split("[", 1)
    return prefix + re.split(r"[-,]", ranges.rstrip("]"))[0]


def from_env(env: dict | None = None) -> DistInfo:
    """Rank, world size and local rank from torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK),
    else from Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID: ``srun`` starts one process
    per task; MASTER_ADDR defaults to the first node of the job, MASTER_PORT to 29500)."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or "localhost"
        env.setdefault("MASTER_ADDR", first_slurm_host(nodes))
        env.setdefault("MASTER_PORT", "29500")
        info = DistInfo(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
        env.update(RANK=str(info.rank), WORLD_SIZE=str(info.world_size), LOCAL_RANK=str(info.local_rank))
        return info
    return DistInfo()


def timeout_seconds() -> float:
    return float(os.environ.get("RTSEG_DIST_TIMEOUT_S", 600))


def current() -> DistInfo:
    """The running process group's rank and size (one process when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def setup(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group the launcher describes, if any. Returns (info, the device this
    process uses: ``cuda:LOCAL_RANK`` for CUDA runs)."""
    info = from_env()
    if not info.enabled:
        return info, device
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_seconds()),
                                **({"device_id": device} if device.type == "cuda" else {}))
    return info, device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_batches(num_items: int, batch_size: int, info: DistInfo) -> list[list[int]]:
    """This rank's share of the single-process batches ``[0..b), [b..2b), ...``: every
    ``world_size``-th batch. Each item is evaluated exactly once, and every batch is made of the
    same frames as in a one-process run (so the network sees identical inputs)."""
    batches = [list(range(i, min(i + batch_size, num_items))) for i in range(0, num_items, batch_size)]
    return batches[info.rank::info.world_size]


def all_gather_objects(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` in one process)."""
    info = current()
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def sum_int(value: int) -> int:
    """The sum of ``value`` over all processes."""
    if not current().enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(t)
    return int(t.item())


def is_peer_failure(error: BaseException) -> bool:
    """Whether a collective failed because another process died or stopped answering."""
    text = str(error)
    return isinstance(error, getattr(dist, "DistError", ())) or any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "Broken pipe",
                            "NCCL", "timed out", "Timed out"))


def barrier() -> None:
    if current().enabled:
        dist.barrier()
