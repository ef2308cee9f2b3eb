#!/usr/bin/env python3
"""A stand-in for tiledbvcf, for what the real one cannot be made to do on demand (fail once, be a legacy release,
write no file for a sample, run long). conftest.install_standin installs it as ``tiledbvcf``.

Every call but ``--version`` is logged to STANDIN_LOG, one JSON list of arguments a line. The environment says
what it does:

- ``--version``: prints STANDIN_VERSION (0.40.3's line by default).
- ``list``: the names in STANDIN_LISTED (comma-separated); with STANDIN_LIST_EXIT, fails as 0.40 does on a dataset
  that does not exist.
- ``create -u DIR``: makes DIR (a local dataset, as far as the scripts look).
- ``store``: STANDIN_SEE=PATH writes PATH.seen, whether PATH existed when store ran; STANDIN_SLEEP=SECONDS writes
  its pid to STANDIN_LOG.pid, then sleeps; the first STANDIN_FAIL_TIMES stores fail (attempts counted in
  STANDIN_LOG.attempts); then ``--remove-sample-file`` removes the -f file, as tiledbvcf does after it stored,
  unless STANDIN_KEEPS_SAMPLE_FILE is set.
- ``export``: writes NAME.bcf (or the suffix of its -O) into -d for each name of its partition of -f (cut as
  --sample-partition cuts it), or of STANDIN_NAMES when -f is not a file, but those in STANDIN_SKIP; like 0.40.x
  with --upload-dir s3://, it uploads nothing. With -O v the file is a real VCF of no record; other files are not
  real (their index fails). ``export -c`` prints the number of names of -f not in STANDIN_EMPTY (one record each).

It then exits with STANDIN_EXIT (0 by default).
"""

import json
import os
import sys
import time
from pathlib import Path


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def store(args: list[str]) -> None:
    if os.environ.get("STANDIN_SEE"):  # what store saw: was the started marker written before it ran?
        with open(os.environ["STANDIN_SEE"] + ".seen", "w") as seen:
            seen.write(str(os.path.exists(os.environ["STANDIN_SEE"])))
    if os.environ.get("STANDIN_SLEEP"):
        with open(os.environ["STANDIN_LOG"] + ".pid", "w") as pid:
            pid.write(str(os.getpid()))
        time.sleep(float(os.environ["STANDIN_SLEEP"]))
    counter = os.environ["STANDIN_LOG"] + ".attempts"
    seen = int(Path(counter).read_text()) if os.path.exists(counter) else 0
    Path(counter).write_text(str(seen + 1))
    if seen < int(os.environ.get("STANDIN_FAIL_TIMES", "0")):
        print("[critical] Error: stand-in failure " + str(seen + 1))
        sys.exit(1)
    if "--remove-sample-file" in args and not os.environ.get("STANDIN_KEEPS_SAMPLE_FILE"):
        os.remove(option(args, "-f"))


SUFFIXES = {"b": ".bcf", "u": ".bcf", "z": ".vcf.gz", "v": ".vcf"}


def count(args: list[str]) -> None:
    names = [line.strip() for line in Path(option(args, "-f")).read_text().splitlines() if line.strip()]
    empty = os.environ.get("STANDIN_EMPTY", "").split(",")
    print(sum(name not in empty for name in names))


def export(args: list[str]) -> None:
    if "-c" in args:
        count(args)
        return
    out = option(args, "-d")
    if not os.path.isdir(out):
        print("[critical] output directory does not exist: " + out)
        sys.exit(1)
    names_file = option(args, "-f")
    if os.path.exists(names_file):
        names = sorted({line.strip() for line in Path(names_file).read_text().splitlines() if line.strip()})
        partition = option(args, "--sample-partition") if "--sample-partition" in args else "0:1"
        index, parts = (int(x) for x in partition.split(":"))
        size, extra = divmod(len(names), parts)
        start = index * size + min(index, extra)
        names = names[start : start + size + (1 if index < extra else 0)]
    else:
        names = [name for name in os.environ.get("STANDIN_NAMES", "").split(",") if name]
    skip = os.environ.get("STANDIN_SKIP", "").split(",")
    form = option(args, "-O") if "-O" in args else "b"
    for name in names:
        if name not in skip:
            with open(os.path.join(out, name + SUFFIXES[form]), "wb") as exported:
                exported.write(f"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{name}\n"
                               .encode() if form == "v" else b"BCF\2\2" + name.encode())  # fmt: skip


def main(args: list[str]) -> None:
    if args[:1] == ["--version"]:
        print(os.environ.get("STANDIN_VERSION", "TileDB-VCF version 0.40.3"))
        sys.exit(0)
    with open(os.environ["STANDIN_LOG"], "a") as log:
        log.write(json.dumps(args) + "\n")
    command = args[0] if args else ""
    if command == "list":
        if os.environ.get("STANDIN_LIST_EXIT"):
            print("[info] Opening dataset")
            print("[critical] Exception: TileDB-VCF dataset does not exist")
            sys.exit(int(os.environ["STANDIN_LIST_EXIT"]))
        print("".join(name + "\n" for name in os.environ.get("STANDIN_LISTED", "").split(",") if name), end="")
        sys.exit(0)
    if command == "create" and not option(args, "-u").startswith("s3://"):
        os.makedirs(option(args, "-u"), exist_ok=True)
        Path(option(args, "-u"), "__group").touch()
    if command == "store":
        store(args)
    if command == "export":
        export(args)
    sys.exit(int(os.environ.get("STANDIN_EXIT", "0")))


if __name__ == "__main__":
    main(sys.argv[1:])
