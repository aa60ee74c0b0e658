"""One process of the two-process tests in ``test_parallel.py`` (not collected by pytest).

Joins the run, trains the test GPT for ``--steps`` steps on a 2 × 2 mesh feeding only this
process's rows of each batch, writes an orbax checkpoint (every process takes part) and, on
process 0, the final parameters as ``params.npz``.
"""

import argparse
import sys
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

sys.path.insert(0, str(Path(__file__).parent))
from test_parallel import OPTIMIZER, gpt_problem  # noqa: E402

from jaxllm.train import Checkpointer, create_train_state  # noqa: E402
from jaxllm.train.parallel import ParallelConfig, setup_parallel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--init-timeout", type=int, default=60)
    args = parser.parse_args()

    config = ParallelConfig(
        mode="mesh",
        data=2,
        fsdp=2,
        coordinator=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
        init_timeout_s=args.init_timeout,
    )
    layout = setup_parallel(config)
    loss_fn, params, batches = gpt_problem()
    state = layout.place_state(create_train_state(params, OPTIMIZER, jax.random.key(1)))
    step = layout.train_step(loss_fn, OPTIMIZER)
    rows = batches[0]["inputs"].shape[0] // jax.process_count()
    mine = slice(jax.process_index() * rows, (jax.process_index() + 1) * rows)
    for batch in batches[: args.steps]:
        state, metrics = step(state, {k: v[mine] for k, v in batch.items()})
    print(f"process {jax.process_index()}: {layout.describe()}, loss {float(metrics['loss']):.6f}")

    with Checkpointer(args.out / "checkpoints") as checkpointer:
        checkpointer.save(args.steps, layout.plain_state(state))  # checksums of spread arrays
        fresh = create_train_state(params, OPTIMIZER, jax.random.key(1))
        restored = layout.restore(checkpointer, fresh)  # verified by every process together
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), *(
        multihost_utils.process_allgather(s.params, tiled=True) for s in (state, restored)
    ))  # fmt: skip
    assert all(jax.tree.leaves(same)), "the restored parameters differ from the saved ones"
    params = multihost_utils.process_allgather(state.params, tiled=True)
    if jax.process_index() == 0:
        flat = {
            "/".join(k.key for k in path): np.asarray(v)
            for path, v in jax.tree_util.tree_leaves_with_path(params)
        }
        np.savez(args.out / "params.npz", **flat)


if __name__ == "__main__":
    main()
