"""``python -m jaxllm.interop import PATH --out RUN_DIR``: a Hugging Face checkpoint folder
(GPT-2, or BertForMaskedLM, with its tokenizer.json) as a jaxllm run folder."""

from __future__ import annotations

import argparse
import sys

from jaxllm.interop.run_folder import import_hf_run
from jaxllm.interop.tensor_map import CheckpointMismatchError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxllm.interop", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("import", help="make a run folder from a checkpoint folder")
    command.add_argument("path", help="a save_pretrained folder (config.json, weights, tokenizer)")
    command.add_argument("--out", required=True, help="the run folder to create")
    args = parser.parse_args(argv)
    try:
        run_dir = import_hf_run(args.path, args.out)
    except (CheckpointMismatchError, FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"--- run folder: {run_dir} ---")
    return 0


if __name__ == "__main__":
    sys.exit(main())
