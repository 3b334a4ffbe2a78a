"""Data-parallel training and batch prediction over MPI (mpi4py), the one module that talks to MPI.

``mpirun -n P convlayer train ...`` (or ``srun``) runs P copies of convlayer. When mpi4py is
importable and the world has more than one process, training is synchronous data-parallel:

* rank 0 initializes (or loads, with ``--resume``) the model and broadcasts the weights and the
  optimizer state, so every replica starts equal;
* every rank draws the same permutation each epoch (one shuffle stream from the seed, as a single
  process does) and takes its contiguous shard of each global batch: ``--batch-size`` stays the
  global batch, so the data order is the single-process one for any P;
* after backward, the gradients of all layers are packed into one contiguous float32 buffer
  (the layers' gradients become views into it), reduced in place with
  ``Allreduce(MPI.IN_PLACE, buffer, op=SUM)`` and divided by P; then every rank takes the same
  optimizer step. A shard's gradient is a mean over its images, so shards of unequal size are
  weighted by their share of the batch first;
* dropout draws from a stream per rank and epoch, spawned from the seed;
* validation and test accuracy are computed on shards and summed with Allreduce;
* each epoch the replicas are checked for drift (a checksum of the weights, Allreduce MIN and MAX).

Without MPI nothing changes: ``world()`` reads only environment variables and returns None, and
mpi4py is never imported. The MPI settings a container needs (``OMPI_ALLOW_RUN_AS_ROOT`` ...) are
the launcher's business; this module sets none (docs/cluster.md).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import traceback
from dataclasses import dataclass

import numpy as np

# Environment variables launchers set to the number of processes: Open MPI, MPICH/Intel MPI
# (PMI), MPICH's hydra, Slurm's srun.
_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS")
# A rank that failed waits this long for the others to finish too before ending the job.
FAILURE_GRACE_SECONDS = 10.0


class DistributedError(ValueError):
    """A data-parallel run cannot go on (no mpi4py, replicas drifted apart, an unsuitable model)."""


@dataclass
class World:
    """This process's place in the MPI job."""

    comm: object  # mpi4py.MPI.Intracomm (COMM_WORLD)
    MPI: object  # the mpi4py.MPI module
    rank: int
    size: int

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def local_size(self) -> int:
        """How many ranks of this job run on this machine."""
        return self.comm.Split_type(self.MPI.COMM_TYPE_SHARED).Get_size()

    def sum(self, values, dtype=np.float64) -> np.ndarray:
        """Element-wise sum over all ranks of a small vector (every rank gets it)."""
        buffer = np.array(values, dtype=dtype)
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        return buffer

    def max(self, value: float) -> float:
        buffer = np.array([value], np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.MAX)
        return float(buffer[0])


_world: World | None = None
_checked = False


def launched_size() -> int:
    """The number of processes the launcher says it started (1 when none did)."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 1:
            return int(value)
    return 1


def world() -> World | None:
    """The MPI world when this process is one of several, else None (mpi4py then is not imported)."""
    global _world, _checked
    if _checked:
        return _world
    size = launched_size()
    if size > 1:
        try:
            from mpi4py import MPI
        except ImportError:
            raise DistributedError(f"this process is one of {size} started by an MPI launcher, but mpi4py is not "
                                   "installed: each would work alone. Install it: pip install "
                                   "'convlayer[distributed]' (it needs an MPI, e.g. Debian's openmpi-bin).") from None
        comm = MPI.COMM_WORLD
        if comm.Get_size() > 1:
            _world = World(comm, MPI, comm.Get_rank(), comm.Get_size())
    _checked = True
    return _world


def is_root() -> bool:
    """True in a single process and on rank 0 of an MPI job: the one that prints and writes files."""
    w = world()
    return w is None or w.is_root


def default_threads(w: World) -> int:
    """Threads per rank: the machine's cores divided by the ranks on it, within this rank's binding."""
    cores = os.cpu_count() or 1
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return max(1, min(allowed, cores // max(1, w.local_size())))


def shard_bounds(count: int, rank: int, size: int) -> tuple[int, int]:
    """This rank's contiguous slice [start, stop) of ``count`` items; sizes differ by at most one.

    >>> [shard_bounds(5, r, 2) for r in range(2)]
    [(0, 2), (2, 5)]
    """
    return count * rank // size, count * (rank + 1) // size


# ---------------------------------------------------------------------------- model state


def broadcast_model(w: World, model, optimizer=None) -> None:
    """Make every replica equal to rank 0's: weights in place (Bcast), optimizer state (bcast)."""
    for layer in model.layers:
        for value in layer.params.values():
            w.comm.Bcast(value, root=0)
    if optimizer is not None:
        state = w.comm.bcast(optimizer.state_dict() if w.is_root else None, root=0)
        if not w.is_root:
            optimizer.load_state_dict(state)


def load_checkpoint(w: World, path):
    """``checkpoint.load(path)`` on rank 0, sent to every rank (other ranks need not see the file).

    A file rank 0 cannot read raises the same ``CheckpointError`` on every rank.
    """
    from . import checkpoint as ckpt
    from . import optimizers as optimizers_mod
    from .models import MODEL_CLASSES

    loaded, payload = None, None
    if w.is_root:
        try:
            loaded = ckpt.load(path)
            model = loaded.model
            payload = {"class": type(model).__name__, "config": model.get_config(), "loss": model.loss,
                       "optimizer": None if loaded.optimizer is None else loaded.optimizer.get_config(),
                       "state": loaded.training_state, "meta": loaded.meta}
        except ckpt.CheckpointError as exc:
            payload = {"error": str(exc)}
    payload = w.comm.bcast(payload, root=0)
    if "error" in payload:
        raise ckpt.CheckpointError(payload["error"])
    if not w.is_root:
        model = MODEL_CLASSES[payload["class"]].from_config(payload["config"])
        if isinstance(payload["loss"], str):
            model.loss = payload["loss"]
        optimizer = None if payload["optimizer"] is None else optimizers_mod.from_config(payload["optimizer"])
        loaded = ckpt.Checkpoint(model, optimizer, payload["state"], payload["meta"])
    broadcast_model(w, loaded.model, loaded.optimizer)
    return loaded


def weights_checksum(model) -> int:
    """A 62-bit hash of every weight's bytes: equal replicas give equal checksums."""
    digest = hashlib.blake2b(digest_size=8)
    for layer in model.layers:
        for value in layer.params.values():
            digest.update(np.ascontiguousarray(value).data)
    return int.from_bytes(digest.digest(), "little") >> 2


def check_replicas(w: World, model, epoch: int) -> None:
    """Stop with a message when the replicas' weights differ (Allreduce MIN and MAX of a checksum)."""
    checksum = weights_checksum(model)
    both = np.array([checksum, -checksum], np.int64)
    w.comm.Allreduce(w.MPI.IN_PLACE, both, op=w.MPI.MIN)
    if both[0] != -both[1]:
        raise DistributedError(f"the {w.size} replicas' weights differ after epoch {epoch}: the ranks did not take "
                               "the same steps (an MPI whose Allreduce gives ranks different sums?); training "
                               "stopped. The last epoch the replicas agreed on is in last.npz.")


# ---------------------------------------------------------------------------- data-parallel training


class DataParallel:
    """Shards global batches over the ranks and averages the gradients; set as ``model.data_parallel``.

    ``Sequential.fit`` calls ``shard`` on each (augmented) global batch and ``train_step`` calls
    ``reduce_gradients`` between backward and the optimizer step.
    """

    def __init__(self, w: World, model, seed: int):
        self.world, self.seed = w, int(seed)
        self.variables = [(layer, key) for layer in model.layers if layer.trainable for key in layer.params]
        dtypes = {layer.params[key].dtype for layer, key in self.variables}
        if dtypes != {np.dtype(np.float32)}:
            raise DistributedError(f"data-parallel training reduces float32 gradients; this model's parameters "
                                   f"are {', '.join(sorted(d.name for d in dtypes))}.")
        self.sizes = [layer.params[key].size for layer, key in self.variables]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.buffer = np.zeros(int(self.offsets[-1]), np.float32)  # every gradient, contiguous
        self.weight = 1.0  # this shard's share of the global batch, times P
        self.seen = 0  # images this rank trained on this epoch (a padding image counts, see shard)

    @property
    def nbytes(self) -> int:
        return self.buffer.nbytes

    def shard(self, x_batch, y_batch):
        """This rank's contiguous part of a global batch.

        A global batch smaller than P (only ever the last one) leaves some ranks without images:
        they train on the batch's first image with weight 0, so the gradient is exact.
        """
        count, w = len(x_batch), self.world
        start, stop = shard_bounds(count, w.rank, w.size)
        self.weight = (stop - start) * w.size / count
        if stop == start:
            start, stop = 0, 1
        self.seen += stop - start
        return x_batch[start:stop], y_batch[start:stop]

    def reduce_gradients(self, model) -> None:
        """Average the gradients over the ranks in one Allreduce; layers' grads become views of the buffer."""
        buffer, MPI = self.buffer, self.world.MPI
        for (layer, key), lo, hi in zip(self.variables, self.offsets[:-1], self.offsets[1:]):
            buffer[lo:hi] = layer.grads[key].reshape(-1)
        if self.weight != 1.0:
            buffer *= np.float32(self.weight)
        self.world.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        buffer /= np.float32(self.world.size)
        for (layer, key), lo, hi in zip(self.variables, self.offsets[:-1], self.offsets[1:]):
            layer.grads[key] = buffer[lo:hi].reshape(layer.params[key].shape)

    def reseed_dropout(self, model, epoch: int) -> None:
        """Each rank's dropout stream for ``epoch``, spawned from the seed (the same for any resume)."""
        for index, layer in enumerate(model.layers):
            layer.rng = np.random.default_rng(
                np.random.SeedSequence(self.seed, spawn_key=(0xD1, epoch, self.world.rank, index)))


def evaluate(w: World, model, x, y) -> dict:
    """{'loss', 'accuracy'} of ``model`` on (x, y), each rank predicting its shard, summed with Allreduce."""
    start, stop = shard_bounds(len(x), w.rank, w.size)
    loss_sum, correct = 0.0, 0.0
    if stop > start:
        result = model.evaluate(x[start:stop], y[start:stop])
        loss_sum, correct = result["loss"] * (stop - start), result["accuracy"] * (stop - start)
    totals = w.sum([loss_sum, correct])
    return {"loss": float(totals[0] / len(x)), "accuracy": float(totals[1] / len(x))}


def evaluate_best(w: World, model, path, x, y) -> dict:
    """Rank 0 reads the checkpoint at ``path`` and sends its weights into every rank's ``model``;
    then ``evaluate`` on shards."""
    from . import checkpoint as ckpt

    if w.is_root:
        model.set_weights(ckpt.load(path).model.get_weights())
    broadcast_model(w, model)
    return evaluate(w, model, x, y)


class EpochSync:
    """A ``fit`` callback: per-rank dropout streams, global epoch metrics, sharded validation, drift check.

    It must come before the callbacks that read the logs (progress bar, recorder).
    """

    def __init__(self, parallel: DataParallel, validation=None):
        self.parallel, self.validation = parallel, validation

    def on_epoch_begin(self, epoch, model):
        self.parallel.seen = 0
        self.parallel.reseed_dropout(model, epoch)

    def on_batch_begin(self, step, model):
        pass

    def on_batch_end(self, step, logs, model):
        logs["images_per_second"] *= self.parallel.world.size  # this rank's rate times P, for the bar

    def on_epoch_end(self, epoch, logs, model):
        w, seen = self.parallel.world, self.parallel.seen
        totals = w.sum([logs["loss"] * seen, logs["accuracy"] * seen, seen])
        logs["loss"], logs["accuracy"] = float(totals[0] / totals[2]), float(totals[1] / totals[2])
        logs["seconds"] = w.max(logs["seconds"])
        logs["images_per_second"] = float(totals[2] / logs["seconds"])
        if self.validation is not None and len(self.validation[0]):
            result = evaluate(w, model, *self.validation)
            logs["val_loss"], logs["val_accuracy"] = result["loss"], result["accuracy"]
        check_replicas(w, model, epoch + 1)


# ---------------------------------------------------------------------------- ending the job


def run_or_abort(w: World, function, *args) -> int:
    """``function(*args)`` on this rank; any failure ends the whole job, never a hang.

    An exception prints its traceback, prefixed by the rank, and calls MPI_Abort (as
    ``python -m mpi4py`` does). A non-zero exit code (an error already printed as one line) waits
    ``FAILURE_GRACE_SECONDS`` for the other ranks to finish too: when they all do (the same
    mistake everywhere) the job ends normally with that code, otherwise it is aborted.
    """
    try:
        code = function(*args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - every failure must end the job
        sys.stdout.flush()
        lines = traceback.format_exc().rstrip().splitlines()
        sys.stderr.write("".join(f"[rank {w.rank}/{w.size}] {line}\n" for line in lines))
        sys.stderr.flush()
        w.comm.Abort(1)
        return 1  # pragma: no cover - Abort does not return
    code = int(code or 0)
    sys.stdout.flush()
    sys.stderr.flush()
    request = w.comm.Ibarrier()
    deadline = time.monotonic() + FAILURE_GRACE_SECONDS if code else None
    while not request.Test():
        if deadline is not None and time.monotonic() > deadline:
            w.comm.Abort(code)
        time.sleep(0.01)
    return code
