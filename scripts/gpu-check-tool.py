#!/usr/bin/env python3
"""Helpers of scripts/gpu-check.sh, in plain python3 (the GPU machine may have no numpy):

  gpu-check-tool.py test-targets BUILD_DIR REGEX   build targets of the tests `ctest -R REGEX` runs
  gpu-check-tool.py compare GEN_DIR [--json FILE]  the CUDA generations against the CPU one
  gpu-check-tool.py summary LOG_DIR                the closing table (from the step statuses,
                                                   the benchmark JSON, the comparison, ctest)
  gpu-check-tool.py selftest                       checks the PNG/safetensors readers and the
                                                   summary on made-up files (ctest runs it)
"""

import glob
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

# ---------------------------------------------------------------- PNG (8-bit, non-interlaced)


def read_png(path):
    """(width, height, channels, bytes) of an 8-bit non-interlaced PNG (gray, RGB, +alpha)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError(f"{path}: no IHDR chunk")
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace != 0:
        raise ValueError(f"{path}: only 8-bit non-interlaced gray/RGB(A) PNGs are read "
                         f"(depth {depth}, color type {color}, interlace {interlace})")
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        filt = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if filt == 1:
                line[i] = (line[i] + a) & 255
            elif filt == 2:
                line[i] = (line[i] + b) & 255
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
            elif filt != 0:
                raise ValueError(f"{path}: bad filter type {filt} in row {y}")
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return width, height, channels, bytes(out)


def write_png(path, width, height, rgb):
    """An 8-bit RGB PNG (filter 0); for the self-test."""
    rows = b"".join(b"\x00" + rgb[y * width * 3:(y + 1) * width * 3] for y in range(height))

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(rows)))
        f.write(chunk(b"IEND", b""))


def compare_png(ref_path, test_path):
    w1, h1, c1, a = read_png(ref_path)
    w2, h2, c2, b = read_png(test_path)
    if (w1, h1, c1) != (w2, h2, c2):
        raise ValueError(f"{test_path} is {w2}x{h2}x{c2}, {ref_path} is {w1}x{h1}x{c1}")
    max_diff, sq, total = 0, 0, 0
    for x, y in zip(a, b):
        d = abs(x - y)
        max_diff = max(max_diff, d)
        sq += d * d
        total += d
    n = len(a)
    mse = sq / n
    psnr = float("inf") if mse == 0 else 10 * math.log10(255 * 255 / mse)
    return {"max_diff": max_diff, "mean_abs_diff": total / n, "psnr_db": psnr,
            "size": f"{w1}x{h1}"}

# ---------------------------------------------------------------- safetensors (no numpy)


def read_safetensors(path):
    """{name: list of floats} for F32 / F16 / BF16 tensors."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin:base + end]
        dtype = info["dtype"]
        if dtype == "F32":
            vals = struct.unpack(f"<{len(raw) // 4}f", raw)
        elif dtype == "F16":
            vals = struct.unpack(f"<{len(raw) // 2}e", raw)
        elif dtype == "BF16":
            halves = struct.unpack(f"<{len(raw) // 2}H", raw)
            vals = struct.unpack(f"<{len(halves)}f", struct.pack(f"<{len(halves)}I",
                                                                 *(h << 16 for h in halves)))
        else:
            continue
        out[name] = list(vals)
    return out


def compare_latents(ref_path, test_path):
    a, b = read_safetensors(ref_path), read_safetensors(test_path)
    result = {}
    for name in a:
        if name not in b or len(a[name]) != len(b[name]):
            raise ValueError(f"{test_path}: tensor '{name}' missing or of another size")
        x, y = a[name], b[name]
        max_ref = max((abs(v) for v in x), default=0.0)
        max_diff = max((abs(u - v) for u, v in zip(x, y)), default=0.0)
        finite = all(math.isfinite(v) for v in y)
        result[name] = {"max_abs_diff": max_diff, "max_abs_ref": max_ref,
                        "rel": max_diff / max_ref if max_ref > 0 else max_diff,
                        "finite": finite}
    return result

# ---------------------------------------------------------------- compare


# (file, what it is, PSNR floor in dB, max pixel difference allowed or None). The CPU computes
# in f32: CUDA f32 differs from it by reassociation only (a pixel level at most); bf16 keeps
# ~3 significant digits per op, so after 4 steps the image is close, not equal. The floors are
# first guesses for a 64x64 image of flat shapes: the numbers matter more than the verdict.
PNG_CASES = [
    ("cuda_f32.png", "CUDA f32", 40.0, 4),
    ("cuda_bf16.png", "CUDA bf16 (cuDNN attention)", 25.0, None),
    ("cuda_bf16_paradit.png", "CUDA bf16 (paradit attention)", 25.0, None),
]
LATENT_REL_F32 = 1e-3


def cmd_compare(args):
    gen_dir = args[0]
    json_path = args[args.index("--json") + 1] if "--json" in args else None
    ref = os.path.join(gen_dir, "cpu.png")
    rows, ok = [], True
    if not os.path.exists(ref):
        print(f"compare: {ref} is missing (the CPU generation failed): nothing to compare")
        ok = False
    else:
        for name, what, psnr_floor, max_allowed in PNG_CASES:
            path = os.path.join(gen_dir, name)
            row = {"case": what, "file": name}
            if not os.path.exists(path):
                row.update(status="missing")
                ok = False
            else:
                try:
                    row.update(compare_png(ref, path))
                    good = row["psnr_db"] >= psnr_floor and (max_allowed is None or
                                                              row["max_diff"] <= max_allowed)
                    row["status"] = "ok" if good else "FAIL"
                    row["limits"] = (f"PSNR >= {psnr_floor:g} dB" +
                                     (f", max diff <= {max_allowed}" if max_allowed else ""))
                    ok = ok and good
                except Exception as e:  # a malformed file is a failure of that case
                    row.update(status="FAIL", error=str(e))
                    ok = False
            rows.append(row)
    lat_ref = os.path.join(gen_dir, "cpu_latent.safetensors")
    lat_test = os.path.join(gen_dir, "cuda_f32_latent.safetensors")
    row = {"case": "CUDA f32 latents", "file": os.path.basename(lat_test)}
    if os.path.exists(lat_ref) and os.path.exists(lat_test):
        try:
            per = compare_latents(lat_ref, lat_test)
            worst = max(per.values(), key=lambda r: r["rel"]) if per else None
            row.update(worst or {})
            good = worst is not None and worst["rel"] <= LATENT_REL_F32 and worst["finite"]
            row["status"] = "ok" if good else "FAIL"
            row["limits"] = f"max|diff|/max|ref| <= {LATENT_REL_F32:g}"
            ok = ok and good
        except Exception as e:
            row.update(status="FAIL", error=str(e))
            ok = False
    else:
        row["status"] = "missing"
        ok = False
    rows.append(row)
    for r in rows:
        print(format_compare_row(r))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"ok": ok, "rows": rows}, f, indent=2)
    return 0 if ok else 1


def format_compare_row(r):
    if r.get("status") == "missing":
        return f"  {r['case']:<32} MISSING ({r['file']} was not written)"
    if "error" in r:
        return f"  {r['case']:<32} FAIL: {r['error']}"
    if "psnr_db" in r:
        return (f"  {r['case']:<32} {r['status']:<4} max pixel diff {r['max_diff']:3d}, "
                f"mean {r['mean_abs_diff']:.3f}, PSNR {r['psnr_db']:.1f} dB ({r['limits']})")
    return (f"  {r['case']:<32} {r['status']:<4} max|diff| {r.get('max_abs_diff', 0):.3g} of "
            f"max|ref| {r.get('max_abs_ref', 0):.3g} (rel {r.get('rel', 0):.2g}; "
            f"{r.get('limits', '')})")

# ---------------------------------------------------------------- test targets


def cmd_test_targets(args):
    """The executables under BUILD_DIR that the tests ctest -R REGEX lists would run. Read from
    the CTestTestfile.cmake files: before a build, ctest's own JSON leaves out the commands of
    tests whose executable does not exist yet. Executables are named after their targets."""
    build_dir, regex = os.path.abspath(args[0]), args[1]
    listing = subprocess.run(["ctest", "-N", "-R", regex], cwd=build_dir, capture_output=True,
                             text=True, check=True).stdout
    names = set(re.findall(r"Test\s+#\d+: (\S+)", listing))
    print(" ".join(targets_of_tests(build_dir, names)))
    return 0


def targets_of_tests(build_dir, names):
    targets = set()
    for root, _, files in os.walk(build_dir):
        if "CTestTestfile.cmake" not in files:
            continue
        for line in open(os.path.join(root, "CTestTestfile.cmake"), errors="replace"):
            m = re.match(r"add_test\((?:\[(=*)\[(.*?)\]\1\]|(\S+))\s(.*)\)\s*$", line)
            if not m or (m.group(2) if m.group(2) is not None else m.group(3)) not in names:
                continue
            for word in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(4)):
                if word.startswith(build_dir + os.sep):
                    targets.add(os.path.basename(word))
    return sorted(targets)

# ---------------------------------------------------------------- summary


def read_statuses(log_dir):
    rows = []
    path = os.path.join(log_dir, "status.tsv")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 3:
                    rows.append((parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else ""))
    return rows


def load_bench(log_dir):
    rows, meta = [], {}
    for path in sorted(glob.glob(os.path.join(log_dir, "bench", "*.json"))):
        try:
            with open(path) as f:
                j = json.load(f)
        except Exception as e:
            rows.append({"part": "?", "name": os.path.basename(path), "status": "error",
                         "message": f"unreadable JSON: {e}"})
            continue
        for k in ("device", "cudnn", "compute_capability"):
            if k in j:
                meta[k] = j[k]
        if j.get("status") == "skipped":
            rows.append({"part": "?", "name": os.path.basename(path), "status": "skipped",
                         "message": j.get("reason", "")})
        rows.extend(j.get("results", []))
    return rows, meta


def ctest_summary(log_dir):
    path = os.path.join(log_dir, "tests.log")
    if not os.path.exists(path):
        return None, [], []
    text = open(path, errors="replace").read()
    m = re.search(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", text)
    failed = re.findall(r"^\s*\d+ - (\S+) \(([^)]+)\)", text.split("The following tests FAILED:")[-1],
                        re.M) if "The following tests FAILED:" in text else []
    gtest_failed = []
    for line in text.splitlines():
        g = re.search(r"\[  FAILED  \] (\S+)", line)
        if g and g.group(1) not in gtest_failed and "listed below" not in line:
            gtest_failed.append(g.group(1))
    counts = None
    if m:
        total, nfail = int(m.group(3)), int(m.group(2))
        counts = (total - nfail, nfail, total)
    else:
        # No closing line (the step was killed): count the tests that finished, from ctest's
        # "1/6 Test #5: name ....   Passed    0.01 sec" lines.
        done = re.findall(r"^\s*\d+/(\d+) Test\s+#\d+: (\S+) \.+\**\s*(Passed|[^\d]+?)\s+[\d.]+ sec",
                          text, re.M)
        if done:
            passed = sum(1 for _, _, r in done if r == "Passed")
            failed = [(n, r.strip()) for _, n, r in done if r != "Passed"]
            total = int(done[0][0])
            counts = (passed, len(failed), total)
            failed.append((f"{total - len(done)} more", "not finished: the step was cut short"))
    return counts, failed, gtest_failed


def key_lines(path, limit=6):
    """The lines of a log most likely to say what went wrong."""
    if not os.path.exists(path):
        return []
    lines = open(path, errors="replace").read().splitlines()
    pat = re.compile(r"error|fail|fatal|cannot|not found|abort|what\(\)|segmentation|illegal|"
                     r"missing|timeout|non-finite|skipped", re.I)
    hits = [l.strip() for l in lines if pat.search(l)]
    out = []
    for h in hits:
        if h not in out:
            out.append(h[:220])
        if len(out) >= limit:
            break
    return out or [l.strip()[:220] for l in lines[-5:]]


def backend_notes(log_dir):
    """What the CUDA backend said while benchmarking, beyond GEMM plans that fused as planned: an
    attention that left cuDNN, a GEMM epilogue cuBLASLt refused. Distinct lines, in order."""
    out = []
    for path in sorted(glob.glob(os.path.join(log_dir, "bench-*.log"))):
        for line in open(path, errors="replace"):
            if not line.startswith("[paradit cuda]"):
                continue
            text = line[len("[paradit cuda]"):].strip()
            if re.match(r"GEMM plan .*: fused$", text):
                continue
            if text not in out:
                out.append(text[:200])
    return out


def fmt(v, spec, none="—"):
    return none if v is None else format(v, spec)


def cmd_summary(args):
    log_dir = args[0]
    statuses = read_statuses(log_dir)
    bench, meta = load_bench(log_dir)
    env = {}
    env_path = os.path.join(log_dir, "env.txt")
    if os.path.exists(env_path):
        for line in open(env_path, errors="replace"):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    print("=" * 100)
    print("paradit gpu-check summary" + (f" — {meta['device']}" if "device" in meta else ""))
    if env:
        print("  " + ", ".join(f"{k} {v}" for k, v in env.items()))
    print("-" * 100)
    print("steps (status, seconds):")
    failed_steps = []
    for name, status, secs, note in statuses:
        print(f"  {name:<24} {status:<8} {secs:>5} s  {note}")
        if status != "ok":
            failed_steps.append(name)

    gemm = [r for r in bench if r.get("part") == "gemm"]
    if gemm:
        print("-" * 100)
        print("GEMM bf16 (core::linear)              ms     TFLOP/s   anchor (PyTorch, H100)")
        for r in gemm:
            if r.get("status") != "ok":
                print(f"  {r['name']:<34} ERROR {r.get('message', '')[:60]}")
                continue
            anchor = r.get("anchor_tflops")
            pct = f"  ({100 * r['tflops'] / anchor:.0f} % of it)" if anchor else ""
            print(f"  {r['name']:<34} {r['ms']:7.3f} {r['tflops']:9.1f}   "
                  f"{fmt(anchor, '.0f', '')}{pct}")
    attn = [r for r in bench if r.get("part") == "attention"]
    if attn:
        print("-" * 100)
        print("attention bf16, B=1 H=24 D=128   cudnn TFLOP/s (ms)    paradit TFLOP/s (ms)   "
              "anchor TFLOP/s (cuDNN via PyTorch)")
        for S in (4608, 16384):
            by = {r.get("backend"): r for r in attn if r.get("S") == S and "backend" in r}
            errs = [r for r in attn if r.get("status") == "error" and str(S) in r.get("name", "")]
            if not by and not errs:
                continue
            cells = []
            for b in ("cudnn", "paradit"):
                r = by.get(b)
                if r is None or r.get("status") != "ok":
                    cells.append(f"{'ERROR':>20}")
                else:
                    cells.append(f"{r['tflops']:7.1f} ({r['ms']:.3f})".rjust(20))
            anchor = "594" if S == 4608 else "614-642"
            print(f"  S={S:<29}{cells[0]}  {cells[1]}   {anchor}")
            agree = [r for r in attn if r.get("name") == f"S={S} agreement"]
            if agree and agree[0].get("status") == "ok":
                a = agree[0]
                print(f"    cudnn vs paradit: max|diff| {a['max_abs_diff']:.3g} (max|out| "
                      f"{a['max_abs_out']:.3g}){'' if a.get('finite') else ', NON-FINITE'}")
            for r in errs:
                print(f"    {r['name']}: {r.get('message', '')[:150]}")
    mods = [r for r in bench if r.get("part") == "model"]
    if mods:
        print("-" * 100)
        print("transformer step, bf16, random weights  paradit ms  diffusers eager ms  "
              "paradit/eager  TFLOP/s  peak GiB  bind s")
        for r in mods:
            if r.get("status") != "ok":
                print(f"  {r.get('name', '?'):<37} ERROR {r.get('message', '')[:120]}")
                continue
            title = f"{r['title']} b{r['batch']}"
            note = "" if r.get("output_finite", True) else "  NON-FINITE output"
            print(f"  {title:<37} {r['ms']:10.1f} {r['diffusers_eager_ms']:19.1f} "
                  f"{r['ratio_to_eager']:14.2f} {r['tflops']:8.1f} {r['peak_gib']:9.2f} "
                  f"{r['bind_s']:7.1f}{note}")
        flux = [r for r in mods if r.get("name") == "flux" and r.get("status") == "ok"]
        if flux:
            ms = flux[0]["ms"]
            verdict = ("goal met" if ms <= 110 else "first target met" if ms <= 150
                       else "targets not met")
            print(f"  issue 16: Flux.1-dev 1024² step ≤ 150 ms first target, ≤ 110 ms goal "
                  f"(diffusers + torch.compile 131.2 ms): {ms:.1f} ms, {verdict}")
    notes = backend_notes(log_dir)
    if notes:
        print("  the CUDA backend's notes (PARADIT_CUDA_VERBOSE; plain fused GEMM plans left out):")
        for n in notes[:8]:
            print(f"    {n}")
        if len(notes) > 8:
            print(f"    ... {len(notes) - 8} more in the bench-*.log files")
    other = [r for r in bench if r.get("status") in ("skipped",) or r.get("part") in ("setup", "?")]
    for r in other:
        print(f"  bench {r.get('name')}: {r.get('status')} {r.get('message', '')[:150]}")

    cmp_path = os.path.join(log_dir, "generate", "compare.json")
    print("-" * 100)
    print("generate: 4 steps of the shipped shapes-pixart model on CUDA vs the CPU PNG")
    if os.path.exists(cmp_path):
        with open(cmp_path) as f:
            for r in json.load(f).get("rows", []):
                print(format_compare_row(r))
    else:
        print("  no comparison (see the generate-* steps)")

    counts, failed, gtest_failed = ctest_summary(log_dir)
    print("-" * 100)
    if counts:
        print(f"tests: {counts[0]} passed, {counts[1]} failed of {counts[2]}"
              + (": " + ", ".join(f"{n} ({why})" for n, why in failed) if failed else ""))
        for g in gtest_failed[:15]:
            print(f"  [  FAILED  ] {g}")
        if len(gtest_failed) > 15:
            print(f"  ... {len(gtest_failed) - 15} more failed test cases in tests.log")
    else:
        print("tests: no ctest result (see the tests step)")

    if failed_steps:
        print("-" * 100)
        print("what failed (key lines of each failed step's log):")
        for name in failed_steps:
            print(f"  {name}:")
            for line in key_lines(os.path.join(log_dir, name + ".log")):
                print(f"    {line}")
    print("=" * 100)
    verdict = "PASS" if not failed_steps else f"FAIL ({len(failed_steps)} of {len(statuses)} steps)"
    print(f"gpu-check: {verdict}; logs in {os.path.abspath(log_dir)}")
    return 0

# ---------------------------------------------------------------- self-test


def cmd_selftest(_args):
    with tempfile.TemporaryDirectory() as d:
        w, h = 5, 5  # five rows: one per PNG filter type below
        rgb = bytes((x * 40 + y * 7 + c * 3) % 256 for y in range(h) for x in range(w)
                    for c in range(3))
        write_png(os.path.join(d, "a.png"), w, h, rgb)
        assert read_png(os.path.join(d, "a.png")) == (w, h, 3, rgb)
        # Every filter type decodes to the same pixels (row y written with filter y).
        rows = []
        prev = bytes(w * 3)
        for y in range(h):
            line = rgb[y * w * 3:(y + 1) * w * 3]
            filt = y % 5
            enc = bytearray()
            for i, v in enumerate(line):
                a = line[i - 3] if i >= 3 else 0
                b = prev[i]
                c = prev[i - 3] if i >= 3 else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = [0, a, b, (a + b) // 2,
                        a if pa <= pb and pa <= pc else (b if pb <= pc else c)][filt]
                enc.append((v - pred) & 255)
            rows.append(bytes([filt]) + bytes(enc))
            prev = line
        raw = b"".join(rows)
        with open(os.path.join(d, "f.png"), "wb") as f:
            def chunk(kind, body):
                return (struct.pack(">I", len(body)) + kind + body +
                        struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))
            f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2,
                                                                       0, 0, 0)) +
                    chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
        assert read_png(os.path.join(d, "f.png"))[3] == rgb
        noisy = bytes(min(255, v + (1 if i % 2 else 0)) for i, v in enumerate(rgb))
        for name in ("cpu.png", "cuda_f32.png", "cuda_bf16.png"):
            write_png(os.path.join(d, name), w, h, rgb if name != "cuda_bf16.png" else noisy)
        r = compare_png(os.path.join(d, "cpu.png"), os.path.join(d, "cuda_bf16.png"))
        assert r["max_diff"] == 1 and r["psnr_db"] > 40, r

        def st(path, values, dtype):
            if dtype == "F32":
                raw = struct.pack(f"<{len(values)}f", *values)
            else:  # BF16: the top halves of the f32 bits
                bits = struct.unpack(f"<{len(values)}I", struct.pack(f"<{len(values)}f", *values))
                raw = struct.pack(f"<{len(values)}H", *(b >> 16 for b in bits))
            header = json.dumps({"latents": {"dtype": dtype, "shape": [len(values)],
                                             "data_offsets": [0, len(raw)]}}).encode()
            with open(path, "wb") as f:
                f.write(struct.pack("<Q", len(header)) + header + raw)

        st(os.path.join(d, "cpu_latent.safetensors"), [1.0, -2.0, 0.5], "F32")
        st(os.path.join(d, "cuda_f32_latent.safetensors"), [1.0, -2.0, 0.5], "BF16")
        lat = compare_latents(os.path.join(d, "cpu_latent.safetensors"),
                              os.path.join(d, "cuda_f32_latent.safetensors"))
        assert lat["latents"]["max_abs_diff"] == 0.0, lat
        assert cmd_compare([d, "--json", os.path.join(d, "compare.json")]) == 1  # paradit missing
        # Test programs from CTestTestfile.cmake lines, in both spellings of CMake versions.
        os.makedirs(os.path.join(d, "b", "tests"))
        with open(os.path.join(d, "b", "tests", "CTestTestfile.cmake"), "w") as f:
            f.write(f'add_test([=[cuda_host]=] "{d}/b/tests/test_cuda_host")\n'
                    f'add_test(comm_np2 "/usr/bin/mpirun" "-np" "2" "{d}/b/tests/test_comm" '
                    f'"--gtest_filter=-Abort.*")\n'
                    f'add_test([=[core]=] "{d}/b/tests/test_core")\n')
        got = targets_of_tests(os.path.join(d, "b"), {"cuda_host", "comm_np2"})
        assert got == ["test_comm", "test_cuda_host"], got
        with open(os.path.join(d, "tests.log"), "w") as f:
            f.write("1/3 Test #5: cuda_host ........................   Passed    0.01 sec\n"
                    "2/3 Test #2: comm .............................***Failed    2.50 sec\n")
        counts, failed_tests, _ = ctest_summary(d)
        assert counts == (1, 1, 3) and failed_tests[0] == ("comm", "Failed"), (counts,
                                                                                failed_tests)
        # A summary over made-up logs runs through every section.
        os.makedirs(os.path.join(d, "bench"))
        os.makedirs(os.path.join(d, "generate"))
        os.replace(os.path.join(d, "compare.json"), os.path.join(d, "generate", "compare.json"))
        with open(os.path.join(d, "status.tsv"), "w") as f:
            f.write("build\tok\t90\t\ntests\tFAIL\t40\texit 8\n")
        with open(os.path.join(d, "tests.log"), "w") as f:
            f.write("[  FAILED  ] Ops.Attention\n50% tests passed, 1 tests failed out of 2\n"
                    "The following tests FAILED:\n\t  3 - backend_ops (Failed)\n")
        with open(os.path.join(d, "bench", "x.json"), "w") as f:
            json.dump({"device": "test", "results": [
                {"part": "gemm", "name": "8192x8192x8192", "status": "ok", "ms": 1.5,
                 "tflops": 733.0, "anchor_tflops": 765},
                {"part": "attention", "name": "S=4608 cudnn", "status": "ok", "backend": "cudnn",
                 "S": 4608, "ms": 0.45, "tflops": 580.0},
                {"part": "attention", "name": "S=4608 paradit", "status": "error",
                 "backend": "paradit", "S": 4608, "message": "boom"},
                {"part": "model", "name": "flux", "title": "Flux.1-dev 1024²", "batch": 1,
                 "status": "ok", "ms": 140.0, "diffusers_eager_ms": 183.9,
                 "ratio_to_eager": 0.76, "tflops": 531.0, "peak_gib": 25.0, "bind_s": 1.2},
                {"part": "model", "name": "wan", "status": "error", "message": "out of memory"}]},
                f)
        with open(os.path.join(d, "bench-flux.log"), "w") as f:
            f.write("[paradit cuda] GEMM plan M=1 N=2 K=3 batch=1 BF16→BF16 epilogue none: fused\n"
                    "[paradit cuda] attention B=1 ...: paradit's kernels instead of cuDNN\n")
        import contextlib
        import io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            cmd_summary([d])
        text = buf.getvalue()
        for needle in ("733.0", "580.0", "140.0", "first target met", "backend_ops",
                       "instead of cuDNN",
                       "Ops.Attention", "out of memory", "FAIL (1 of 2 steps)"):
            assert needle in text, (needle, text)
    print("gpu-check-tool: self-test passed")
    return 0


def main(argv):
    commands = {"test-targets": (cmd_test_targets, 2), "compare": (cmd_compare, 1),
                "summary": (cmd_summary, 1), "selftest": (cmd_selftest, 0)}
    if len(argv) < 1 or argv[0] not in commands or len(argv) - 1 < commands[argv[0]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    fn, _ = commands[argv[0]]
    return fn(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
