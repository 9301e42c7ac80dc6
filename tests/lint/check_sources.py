#!/usr/bin/env python3
"""Source rules of paradit that a compiler does not check (run by ctest as `lint_sources`):

1. Layers (DESIGN.md): a folder of src/ includes only headers of its own layer or the layers
   below it. Order, lowest first: backend < core < io < comm < parallel < models < schedulers
   < pipelines < apps (cli, server). The kernels (backend) may use core's leaf headers
   core/dtype.h and core/error.h (element types and errors), nothing else of core.
2. No raw access to tensor data in models, schedulers and pipelines: their math runs through
   core ops on any device. `data<`, `raw_data()` and `item_at(` are refused there, except in
   the files listed in ALLOWED_DATA (host-only code: make-model's random weight generation).
Prints one line per violation (file:line: rule) and exits 1 when there is any.
  check_sources.py SRC_DIR"""
import pathlib
import re
import sys

LAYER = {
    "backend": 0, "core": 1, "io": 2, "comm": 3, "parallel": 4, "models": 5,
    "schedulers": 6, "pipelines": 7, "cli": 8, "server": 8,
}
BACKEND_MAY_USE = {"core/dtype.h", "core/error.h"}
NO_RAW_DATA = ("models", "schedulers", "pipelines")
ALLOWED_DATA = {
    "models/common/random_weights.cpp",  # make-model: random weights generated on the host
    "models/pipeline_maker.cpp",         # make-model: writes whole random pipelines
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([^"]+)"')
RAW = re.compile(r"\bdata<|\braw_data\(\)|\bitem_at\(")


def main() -> int:
    src = pathlib.Path(sys.argv[1]).resolve()
    problems = []
    files = sorted(p for p in src.rglob("*") if p.suffix in {".h", ".cpp", ".cu", ".cuh", ".inc"})
    for path in files:
        rel = path.relative_to(src).as_posix()
        folder = rel.split("/")[0]
        if folder not in LAYER:
            problems.append(f"{rel}: folder '{folder}' has no layer in tests/lint/check_sources.py")
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = INCLUDE.match(line)
            if m and m.group(1) in LAYER:
                target = f"{m.group(1)}/{m.group(2)}"
                if LAYER[m.group(1)] > LAYER[folder] and not (
                        folder == "backend" and target in BACKEND_MAY_USE):
                    problems.append(f"{rel}:{n}: {folder} (layer {LAYER[folder]}) includes "
                                    f"{target} (layer {LAYER[m.group(1)]}), a layer above it")
                if folder == "backend" and m.group(1) == "core" and target not in BACKEND_MAY_USE:
                    problems.append(f"{rel}:{n}: the kernels include {target}; only "
                                    f"{', '.join(sorted(BACKEND_MAY_USE))} of core")
            code = line.split("//")[0]
            if folder in NO_RAW_DATA and rel not in ALLOWED_DATA and RAW.search(code):
                problems.append(f"{rel}:{n}: raw tensor data access in {folder} "
                                f"(`{code.strip()}`): make it an op")
    for p in problems:
        print(p)
    print(f"check_sources: {len(files)} files, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
