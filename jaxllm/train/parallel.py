"""Where a training step runs: one device, data-parallel ``jax.pmap``, or a sharded device mesh,
in one process or across hosts with ``jax.distributed``.

Every layout runs the same pure ``step(state, batch)`` of :func:`make_train_step` and gives the
same numbers (up to float rounding):

- ``"none"``: ``jax.jit`` on the default device.
- ``"pmap"``: the state is replicated on every local device, each global batch is split over
  them, and gradients are summed with ``lax.psum`` over the ``"data"`` axis inside the step.
- ``"mesh"``: ``jax.jit`` over a ``Mesh`` with a ``"data"`` and an ``"fsdp"`` axis. The batch is
  split over every device; parameters and optimiser state are stored split along ``"fsdp"``
  and replicated along ``"data"`` (FSDP/ZeRO style): the step all-gathers the weights for the
  forward and backward pass and reduce-scatters the gradients, so the optimiser updates only
  its own shard. With several processes each one feeds only its own rows.

A layout places the state and the batches, compiles the step, and gives back a plain state for
checkpoints and evaluation. Checkpoints hold global arrays, so one written under any layout
restores under any other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
import threading
import time
from typing import Any, Literal, get_args

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxllm.config import require
from jaxllm.losses import LossFn
from jaxllm.privacy.dp_sgd import DPConfig
from jaxllm.train.checkpoint import Checkpointer
from jaxllm.train.state import TrainState
from jaxllm.train.step import TrainStep, make_train_step

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
ParallelMode = Literal["none", "pmap", "mesh"]
MODES = get_args(ParallelMode)


@dataclasses.dataclass(frozen=True)
class ParallelConfig:
    """How a training step is spread over devices and processes.

    Attributes:
      mode: ``"none"`` (one device), ``"pmap"`` (data-parallel over this process's devices) or
        ``"mesh"`` (``jax.jit`` over a data × fsdp device mesh, across processes too).
      data: size of the mesh's data axis; -1 takes every device not used by ``fsdp``.
      fsdp: size of the mesh's parameter axis (1: parameters replicated, plain data parallelism).
      devices: use only the first N devices (0: all of them).
      microbatches: gradient accumulation: each batch is split into this many equal parts,
        run one after another inside the compiled step.
      coordinator: ``host:port`` of process 0's coordination service for a multi-process run
        (empty: a single process, unless ``num_processes`` > 1 asks for the cluster's own).
      num_processes: processes taking part (each started with its own ``process_id``).
      process_id: this process's index, ``0 .. num_processes - 1``.
      init_timeout_s: give up joining the other processes after this many seconds.
    """

    mode: ParallelMode = "none"
    data: int = -1
    fsdp: int = 1
    devices: int = 0
    microbatches: int = 1
    coordinator: str = ""
    num_processes: int = 1
    process_id: int = 0
    init_timeout_s: int = 120

    def __post_init__(self):
        require(
            self.mode in MODES, f"ParallelConfig.mode must be one of {MODES}, got {self.mode!r}"
        )
        require(
            self.data == -1 or self.data >= 1,
            f"ParallelConfig.data must be >= 1 or -1, got {self.data}",
        )
        require(
            self.fsdp >= 1 and self.devices >= 0 and self.microbatches >= 1,
            "ParallelConfig.fsdp and microbatches must be >= 1 and devices >= 0",
        )
        require(
            self.num_processes >= 1,
            f"ParallelConfig.num_processes must be >= 1, got {self.num_processes}",
        )
        require(
            0 <= self.process_id < self.num_processes,
            f"ParallelConfig.process_id {self.process_id} is out of range for {self.num_processes} "
            f"processes: pass 0 .. {self.num_processes - 1}",
        )
        require(
            self.mode != "pmap" or self.num_processes == 1,
            "parallel mode 'pmap' runs in one process; use mode 'mesh' across processes",
        )
        require(self.init_timeout_s > 0, "ParallelConfig.init_timeout_s must be > 0")


class DistributedInitError(RuntimeError):
    """The processes of a multi-process run could not find each other."""


def initialize_distributed(
    coordinator: str = "",
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout_s: int = 120,
    bind_address: str | None = None,
    exit_on_timeout: bool = False,
) -> None:
    """Join a multi-process run (``jax.distributed.initialize``); call before any JAX work.

    Args:
      coordinator: ``host:port`` of process 0, which starts the coordination service there.
        Empty: JAX detects the cluster (SLURM, Open MPI, Cloud TPU, Kubernetes) from the
        environment, or ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``.
      num_processes: this run's number of processes (from the environment when ``None``).
      process_id: this process's index (from the environment when ``None``).
      timeout_s: stop waiting for the other processes after this many seconds.
      bind_address: where process 0's service listens; default: the coordinator's own address,
        never every interface.
      exit_on_timeout: when the other processes do not all join in time, print one
        ``error:`` line and end the process with status 2 (what scripts want: XLA itself
        aborts the process with a C++ stack trace); ``False``: XLA's behaviour.

    Raises:
      ValueError: a process id outside ``0 .. num_processes - 1`` or a malformed address.
      DistributedInitError: the coordinator did not answer within ``timeout_s``.
    """
    coordinator, num_processes, process_id = _join_settings(coordinator, num_processes, process_id)
    if jax.distributed.is_initialized():
        return
    if coordinator and process_id not in (None, 0):
        # XLA aborts the whole process (no exception) when the coordinator never answers, so
        # first check, with the same deadline, that something listens there.
        _wait_for_coordinator(coordinator, timeout_s, process_id, num_processes)
    watchdog = _JoinWatchdog(process_id, num_processes, timeout_s) if exit_on_timeout else None
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator or None,
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=timeout_s + (30 if watchdog else 0),  # the watchdog first
            coordinator_bind_address=bind_address or (coordinator or None),
        )
    except Exception as e:  # XLA raises bare runtime errors (DEADLINE_EXCEEDED, UNAVAILABLE, ...)
        with contextlib.suppress(Exception):  # leave no half-made client behind
            jax.distributed.shutdown()
        raise DistributedInitError(
            f"process {process_id} of {num_processes} could not join the run coordinated at "
            f"{coordinator or '(from the environment)'} within {timeout_s} s ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). Start process 0 first (it hosts the "
            "coordinator), check the address and port are reachable from this host, and give "
            "every process the same --num-processes."
        ) from e
    finally:
        if watchdog is not None:
            watchdog.stop()


def _join_settings(
    coordinator: str, num_processes: int | None, process_id: int | None
) -> tuple[str, int | None, int | None]:
    """The arguments of :func:`initialize_distributed`, completed from JAX's environment
    variables and checked.

    Raises:
      ValueError: a process id outside ``0 .. num_processes - 1`` or a malformed address.
    """
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    if num_processes is None and "JAX_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in os.environ:
        process_id = int(os.environ["JAX_PROCESS_ID"])
    if num_processes is not None and process_id is not None and not 0 <= process_id < num_processes:
        raise ValueError(
            f"process id {process_id} is out of range for {num_processes} processes: "
            f"pass 0 .. {num_processes - 1}"
        )
    if coordinator and (":" not in coordinator or not coordinator.rsplit(":", 1)[1].isdigit()):
        raise ValueError(
            f"coordinator address {coordinator!r} is not host:port (e.g. 127.0.0.1:1234)"
        )
    return coordinator, num_processes, process_id


class _JoinWatchdog:
    """Ends the process after ``timeout_s`` with one ``error:`` line and status 2, unless
    stopped first: past its own deadline XLA aborts the process with a C++ stack trace (e.g.
    process 0 waiting for processes that never start)."""

    def __init__(self, process_id: int | None, num_processes: int | None, timeout_s: int):
        self._message = (
            f"process {process_id} of {num_processes}: the other processes of the run did not "
            f"all join within {timeout_s} s; start every process (the same "
            "--parallel.num-processes, each its own --parallel.process-id), or raise "
            "--parallel.init-timeout-s"
        )
        self._lock, self._stopped = threading.Lock(), False
        self._timer = threading.Timer(timeout_s, self._give_up)
        self._timer.daemon = True
        self._timer.start()

    def _give_up(self) -> None:
        with self._lock:
            if self._stopped:
                return
            print(f"error: {self._message}", file=sys.stderr, flush=True)
            os._exit(2)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self._timer.cancel()


def _wait_for_coordinator(
    coordinator: str, timeout_s: float, process_id: int, num_processes: int | None
) -> None:
    host, port = coordinator.rsplit(":", 1)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise DistributedInitError(
                    f"process {process_id} of {num_processes} could not join the run: nothing "
                    f"answered at the coordinator {coordinator} within {timeout_s} s ({e}). Start "
                    "process 0 first (it hosts the coordinator), check the address and port are "
                    "reachable from this host, or raise the timeout."
                ) from e
            time.sleep(0.2)


class Layout:
    """One device: ``jax.jit`` with the state donated. Base of the parallel layouts.

    Attributes:
      devices: the devices the step runs on.
      axis_name: the named axis the step sums gradients over (``None``: XLA does it).
    """

    axis_name: str | None = None

    def __init__(self, devices: list):
        self.devices = devices

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    @property
    def local_batch_divisor(self) -> int:
        """This process's rows of a batch must divide by this."""
        return 1

    def train_step(
        self, loss_fn: LossFn, optimizer, *, microbatches: int = 1, privacy: DPConfig | None = None
    ) -> TrainStep:
        """The compiled ``step(placed_state, local_batch) -> (placed_state, metrics)``
        (:func:`jaxllm.train.make_train_step`; ``privacy``: DP-SGD)."""
        step = jax.jit(
            make_train_step(
                loss_fn,
                optimizer,
                microbatches=microbatches,
                axis_name=self.axis_name,
                privacy=privacy,
            ),
            donate_argnums=0,
        )
        return lambda state, batch: step(state, self.place_batch(batch))

    def place_state(self, state: TrainState) -> TrainState:
        """A copy of ``state`` on this layout's devices (the step donates it, so the caller's
        arrays stay usable)."""
        return jax.device_put(state, self.devices[0], may_alias=False)

    def place_batch(self, batch: dict) -> dict:
        """This process's rows of a global batch, placed for the step."""
        self.check_batch(batch)
        return batch

    def plain_state(self, state: TrainState) -> TrainState:
        """The state as one logical copy, for checkpoints and evaluation."""
        return state

    def restore(
        self, checkpointer: Checkpointer, fresh: TrainState, step: int | None = None
    ) -> TrainState:
        """Checkpoint ``step`` (``None``: the newest that verifies), placed for this layout
        (``fresh`` gives shapes and dtypes), to continue training from: newer checkpoints are
        set aside (:meth:`Checkpointer.restore`)."""
        state, _ = checkpointer.restore(self.place_state(fresh), step, set_aside=True)
        return state

    def host_copy(self, tree: Any) -> Any:
        """NumPy copies of a tree of (possibly sharded, multi-process) arrays, on every process."""
        if all(getattr(x, "is_fully_addressable", True) for x in jax.tree.leaves(tree)):
            return jax.device_get(tree)
        return multihost_utils.process_allgather(tree, tiled=True)

    def check_batch(self, batch: dict) -> None:
        rows = {np.shape(x)[0] for x in jax.tree.leaves(batch)}
        require(
            len(rows) == 1,
            f"every array of a batch needs the same number of rows, got {sorted(rows)}",
            ValueError,
        )
        (n,) = rows
        if n % self.local_batch_divisor:
            raise ValueError(
                f"a batch of {n} rows per process cannot be split evenly over "
                f"{self.local_batch_divisor} devices; use a batch size divisible by "
                f"{self.local_batch_divisor * jax.process_count()}"
            )

    def describe(self) -> str:
        return f"1 device ({self.devices[0].platform})"


class PmapLayout(Layout):
    """``jax.pmap`` over this process's devices: a replica of the state on each, the batch split
    over them along its first axis, gradients summed over :data:`DATA_AXIS`."""

    axis_name = DATA_AXIS

    @property
    def local_batch_divisor(self) -> int:
        return self.num_devices

    def train_step(
        self, loss_fn: LossFn, optimizer, *, microbatches: int = 1, privacy: DPConfig | None = None
    ) -> TrainStep:
        step = jax.pmap(
            make_train_step(
                loss_fn,
                optimizer,
                microbatches=microbatches,
                axis_name=self.axis_name,
                privacy=privacy,
            ),
            axis_name=self.axis_name,
            devices=self.devices,
            donate_argnums=0,
        )

        def run(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
            state, metrics = step(state, self.place_batch(batch))
            return state, jax.tree.map(lambda m: m[0], metrics)  # identical on every device

        return run

    def place_state(self, state: TrainState) -> TrainState:
        # A copy per device, copy i on device i: the layout pmap consumes without moving data.
        replicas = NamedSharding(Mesh(np.asarray(self.devices), (DATA_AXIS,)), P(DATA_AXIS))
        return jax.tree.map(
            lambda x: jax.device_put(
                np.broadcast_to(np.asarray(x), (self.num_devices, *np.shape(x))), replicas
            ),
            state,
        )

    def place_batch(self, batch: dict) -> dict:
        self.check_batch(batch)
        return jax.tree.map(
            lambda x: np.reshape(x, (self.num_devices, -1, *np.shape(x)[1:])), batch
        )

    def plain_state(self, state: TrainState) -> TrainState:
        return jax.tree.map(lambda x: x[0], state)

    def restore(
        self, checkpointer: Checkpointer, fresh: TrainState, step: int | None = None
    ) -> TrainState:
        state, _ = checkpointer.restore(fresh, step, set_aside=True)
        return self.place_state(state)

    def describe(self) -> str:
        return f"pmap over {_devices(self.devices)}"


class MeshLayout(Layout):
    """``jax.jit`` over a ``data × fsdp`` :class:`Mesh` (possibly spanning processes)."""

    def __init__(self, devices: list, data: int, fsdp: int):
        super().__init__(devices)
        self.mesh = make_mesh(devices, data=data, fsdp=fsdp)
        self.batch_sharding = NamedSharding(self.mesh, P((DATA_AXIS, FSDP_AXIS)))
        self.replicated = NamedSharding(self.mesh, P())

    @property
    def local_batch_divisor(self) -> int:
        return len([d for d in self.devices if d.process_index == jax.process_index()])

    def state_sharding(self, state: TrainState) -> TrainState:
        """A ``NamedSharding`` per leaf of ``state`` (see :func:`fsdp_partition_spec`)."""
        fsdp = self.mesh.shape[FSDP_AXIS]
        return jax.tree.map(
            lambda x: NamedSharding(self.mesh, fsdp_partition_spec(np.shape(x), fsdp)), state
        )

    def train_step(
        self, loss_fn: LossFn, optimizer, *, microbatches: int = 1, privacy: DPConfig | None = None
    ) -> TrainStep:
        compiled: dict[str, Any] = {}

        def gathered_loss(params: Any, batch: dict, key: Any):
            # Each sharded weight is gathered whole for the forward and backward pass, and its
            # gradient reduce-scattered back to the shards (the transpose of the gather). Left
            # to itself, the partitioner instead reshards activations to match the weights.
            params = jax.lax.with_sharding_constraint(
                params, jax.tree.map(lambda _: self.replicated, params)
            )
            return loss_fn(params, batch, key)

        def run(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
            if "step" not in compiled:  # shardings follow the state's structure
                shardings = self.state_sharding(state)
                compiled["step"] = jax.jit(
                    make_train_step(
                        gathered_loss, optimizer, microbatches=microbatches, privacy=privacy
                    ),
                    in_shardings=(shardings, self.batch_sharding),
                    out_shardings=(shardings, self.replicated),
                    donate_argnums=0,
                )
            return compiled["step"](state, self.place_batch(batch))

        return run

    def place_state(self, state: TrainState) -> TrainState:
        shardings = self.state_sharding(state)
        if jax.process_count() == 1:
            # Through jit: its outputs are always new buffers, so donating them later never
            # deletes the caller's arrays (device_put may alias a replicated leaf's shard).
            return jax.jit(lambda s: s, out_shardings=shardings)(state)
        # Every process holds the same full values (same seed); each keeps its own shards.
        return jax.tree.map(
            lambda x, s: jax.make_array_from_callback(
                np.shape(x), s, lambda i, x=x: np.asarray(x)[i]
            ),
            state,
            shardings,
        )

    def place_batch(self, batch: dict) -> dict:
        self.check_batch(batch)
        global_rows = {np.shape(x)[0] * jax.process_count() for x in jax.tree.leaves(batch)}.pop()
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(
                self.batch_sharding, np.asarray(x), (global_rows, *np.shape(x)[1:])
            ),
            batch,
        )

    def describe(self) -> str:
        shape = " × ".join(f"{name} {size}" for name, size in self.mesh.shape.items())
        procs = f" in {jax.process_count()} processes" if jax.process_count() > 1 else ""
        return f"mesh {shape} over {_devices(self.devices)}{procs}"


def _devices(devices: list) -> str:
    """ "4 cpu devices", "1 gpu device"."""
    return f"{len(devices)} {devices[0].platform} device{'s' if len(devices) > 1 else ''}"


def make_mesh(devices: list, *, data: int = -1, fsdp: int = 1) -> Mesh:
    """A ``data × fsdp`` mesh of ``devices`` (in order, so each process's devices are adjacent).

    Axes are ``Auto``: XLA chooses the collectives for weights sharded along ``fsdp``.
    """
    n = len(devices)
    if fsdp < 1 or n % fsdp:
        raise ValueError(f"a mesh with fsdp={fsdp} does not fit {n} devices: fsdp must divide {n}")
    data = n // fsdp if data == -1 else data
    if data * fsdp != n:
        raise ValueError(
            f"a mesh of data={data} × fsdp={fsdp} = {data * fsdp} devices does not match "
            f"the {n} devices available; choose sizes whose product is {n} "
            "(or data=-1 to use the rest)"
        )
    grid = np.asarray(devices, dtype=object).reshape(data, fsdp)
    return Mesh(grid, (DATA_AXIS, FSDP_AXIS), axis_types=(AxisType.Auto, AxisType.Auto))


def fsdp_partition_spec(shape: tuple[int, ...], fsdp: int, *, min_size: int = 2**12) -> P:
    """How one parameter (or optimiser-state leaf) is split along the ``fsdp`` axis.

    Its largest dimension that ``fsdp`` divides is split (the first on ties), so a GPT's
    ``[width, 3·width]`` attention and ``[width, 4·width]`` MLP kernels are split along their
    wide output axis and the MLP's ``[width, 4·width]`` output-projection weight along its
    input axis.
    Scalars (Adam's step count), vectors (biases, LayerNorm scales), leaves smaller than
    ``min_size`` elements and leaves no dimension of which divides are replicated.
    """
    if fsdp == 1 or len(shape) < 2 or int(np.prod(shape)) < min_size:
        return P()
    candidates = [i for i, size in enumerate(shape) if size % fsdp == 0]
    if not candidates:
        return P()
    best = max(candidates, key=lambda i: (shape[i], -i))
    return P(*[FSDP_AXIS if i == best else None for i in range(len(shape))])


def make_layout(config: ParallelConfig) -> Layout:
    """The layout ``config`` asks for, on this run's devices (after ``initialize_distributed``)."""
    if config.mode == "mesh":
        devices = jax.devices()  # global: every process's devices
    else:
        devices = jax.local_devices()
    if config.devices:
        if config.devices > len(devices):
            raise ValueError(
                f"ParallelConfig.devices={config.devices} but only {len(devices)} "
                f"{devices[0].platform} devices exist; on a CPU, set "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={config.devices} "
                "before JAX starts"
            )
        devices = devices[: config.devices]
    if config.mode == "none":
        return Layout(devices[:1])
    if config.mode == "pmap":
        return PmapLayout(devices)
    return MeshLayout(devices, data=config.data, fsdp=config.fsdp)


def setup_parallel(config: ParallelConfig) -> Layout:
    """Join the other processes if ``config`` names several, then build the layout. Processes
    that do not all join within ``config.init_timeout_s`` end with one ``error:`` line and
    status 2 (:func:`initialize_distributed` with ``exit_on_timeout``)."""
    if config.num_processes > 1 or config.coordinator:
        initialize_distributed(
            config.coordinator,
            config.num_processes,
            config.process_id,
            timeout_s=config.init_timeout_s,
            exit_on_timeout=True,
        )
    return make_layout(config)


__all__ = [
    "DATA_AXIS",
    "FSDP_AXIS",
    "DistributedInitError",
    "Layout",
    "MeshLayout",
    "ParallelConfig",
    "PmapLayout",
    "fsdp_partition_spec",
    "initialize_distributed",
    "make_layout",
    "make_mesh",
    "setup_parallel",
]
