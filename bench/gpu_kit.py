"""The GPU proving ground in one command, on a GPU machine with Python and torch but no package registry
(docs/development.md, "GPU benchmarks"). Standard library only until the kit is installed.

    python3 bench/gpu_kit.py plan
    python3 bench/gpu_kit.py check
    python3 bench/gpu_kit.py install [--kit gpu_kit] [--site .gpu-site]
    python3 bench/gpu_kit.py run [--bundle-dir build/full] [--preset full] [--drop-page-cache]
        [proving-ground options: --policies, --modes, --size, --steps, --runs]

plan     the commands that fit a session of DEVICE_MINUTES on a lent machine (PLAN), each within one command's
         time limit, with the time each is allowed; run them in order, carrying gpu_kit with the first.
check    what the machine is (Python, torch, CUDA, GPU, RAM, disk) and which of the modules the proving ground
         imports fail to import or are the wrong release, by distribution, with the tools/make_gpu_kit.py command
         that packs them.
install  puts KIT/kit.tar.xz (made by tools/make_gpu_kit.py: the wheels' contents) in place in SITE, with the
         standard library (the kit is the resolution; nothing is looked up; no pip needed), then checks again.
run      install, check (stops if something is still missing), write the `full` bundle into --bundle-dir
         unless a complete one is there (on the GPU: minutes), run bench/proving_ground.py with the options
         given (--policies, --modes, --size, --steps, --runs), and copy its table, JSON and chart into $OUT
         when it is set. A run that does not fit one command's time is split by --policies / --modes: the
         bundle and .gpu-site stay while the machine does, and each run writes its own table.
"""

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from make_gpu_kit import MODULES, OPTIONAL  # noqa: E402  (standard library only)

# A lent machine's session: device minutes in all (its start, each command, idle waits), one command at most
# COMMAND_SECONDS. The plan's allowances are stated, not measured (no GPU has run the pack yet): a machine's start,
# the kit put in place and the `full` bundle written on the GPU (36 GiB checkpoint + 7 GiB LoRA: minutes at the
# disk's speed), and per cell a fresh process (imports, the transformer read from the page cache) and its runs
# (30 steps of stage 1 at 384x256x97 with CFG and STG, 3 of stage 2, the tiny VAEs). Each command writes the table
# after every cell, so one stopped at its limit keeps what it finished; the second gives what the first left out.
DEVICE_MINUTES, COMMAND_SECONDS, START_SECONDS = 15, 600, 150
PLAN = (
    (
        "the kit, the full bundle, fp8_scaled cold_start and streamed (2 runs each: cold, then warm)",
        ["run", "--policies", "fp8_scaled", "--modes", "cold_start,streamed", "--runs", "2"],
        480,
    ),
    (
        "fp8_scaled persistent (the bundle and .gpu-site stay while the machine does)",
        ["run", "--policies", "fp8_scaled", "--modes", "persistent", "--runs", "2"],
        180,
    ),
)

# Imports each module in a fresh interpreter (with .gpu-site first on the path) and says what it found.
PROBE = r"""
import importlib, importlib.metadata, json, sys
out = {"python": sys.version.split()[0], "modules": {}}
for pair in sys.argv[1:]:
    name, distribution = pair.split("=")
    try:
        module = importlib.import_module(name)
        try:
            out["modules"][name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            out["modules"][name] = getattr(module, "__version__", "") or "present"
    except Exception as error:  # a missing module, or one built for another torch
        out["modules"][name] = "error: " + f"{type(error).__name__}: {error}".strip()[:200]
try:
    import torch
    out["torch"] = torch.__version__
    out["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        capability = ".".join(map(str, torch.cuda.get_device_capability()))
        out["gpu"] = (f"{torch.cuda.get_device_name()} (compute capability {capability}, "
                      f"{total / 2**30:.1f} GiB, {free / 2**30:.1f} free)")
except Exception as error:
    out["torch"] = "error: " + str(error)[:200]
print(json.dumps(out))
"""


def child_env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    if site.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    return env


def wrong_release(module: str, version: str, torch_version: str) -> str | None:
    """Why an importable release is not one the pack runs with, or None."""

    def parts(v: str) -> tuple[int, ...]:
        return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in v.split("+")[0].split(".")[:3])

    if module == "transformers" and not (4, 52) <= parts(version)[:2] < (6, 0):
        return "the pack runs with transformers 4.52 to 5.x"
    if module in ("ltx_core", "ltx_pipelines") and version != "present" and parts(version)[:2] != (1, 0):
        return "the pack runs with 1.0.x"
    if module == "torchao":
        # The pack's table, read as text: importing the pack needs what this check looks for.
        table = (ROOT / "quant" / "torchao_policies.py").read_text()
        line = next(line for line in table.splitlines() if line.startswith("TORCHAO_FOR_TORCH"))
        release = ast.literal_eval(line.split("=", 1)[1].strip()).get(parts(torch_version)[:2])
        if release and version.split("+")[0] != release:
            return f"torch {torch_version} needs torchao {release}"
    return None


def check(site: Path) -> tuple[dict, list[str]]:
    pairs = [f"{module}={distribution}" for module, distribution in {**MODULES, **OPTIONAL}.items()]
    done = subprocess.run([sys.executable, "-c", PROBE, *pairs], capture_output=True, text=True, env=child_env(site))
    if done.returncode != 0:
        raise SystemExit(f"gpu kit: the probe failed: {done.stderr.strip()[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    missing = []
    print(
        f"python {found['python']}, torch {found.get('torch')}, CUDA {found.get('cuda')}, "
        f"GPU {found.get('gpu', 'none')}"
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    shm = f", /dev/shm {shutil.disk_usage('/dev/shm').free / 2**30:.0f} GiB" if Path("/dev/shm").is_dir() else ""
    print(f"RAM {memory:.0f} GiB, free disk here {shutil.disk_usage(ROOT).free / 2**30:.0f} GiB{shm}")
    for module, state in found["modules"].items():
        distribution = {**MODULES, **OPTIONAL}[module]
        reason = (
            state.removeprefix("error: ")
            if state.startswith("error: ")
            else wrong_release(module, state, found.get("torch", ""))
        )
        optional = " (optional: the chart)" if module in OPTIONAL else ""
        print(f"  {'MISSING' if reason else 'ok':8s} {distribution:16s} {state if not reason else reason}{optional}")
        if reason and module in MODULES:
            missing.append(distribution)
    torch_release = found.get("torch", "2.11.0").split("+")[0]  # torchaudio is built for this very release
    python_minor = ".".join(found["python"].split(".")[:2])
    if missing:
        print(
            f"gpu kit: pack them here with\n  .venv/bin/python tools/make_gpu_kit.py --missing {','.join(missing)} "
            f"--torch {torch_release} --python {python_minor}\nand carry gpu_kit with the next command."
        )
    else:
        print("gpu kit: everything the proving ground imports is here.")
    return found, missing


def unpack(kit: Path, site: Path) -> None:
    """KIT/kit.tar.xz's wheels put in place: each member is <wheel>/<path in the wheel>; a wheel's .data folder's
    purelib / platlib go into the site too (its scripts and headers are not needed)."""
    site.mkdir(parents=True, exist_ok=True)
    wheels = set()
    with tarfile.open(kit, "r:xz") as tar:
        for member in tar:
            wheel, _, path = member.name.partition("/")
            parts = Path(path).parts
            if not member.isfile() or not parts or ".." in parts or Path(path).is_absolute():
                continue
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            target = site.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            target.chmod(member.mode | 0o644)
            wheels.add(wheel)
    for wheel in sorted(wheels):
        print(f"gpu kit: installed {wheel}", flush=True)


def install(kit: Path, site: Path) -> None:
    if not (kit / "kit.tar.xz").is_file():
        print(f"gpu kit: no kit.tar.xz under {kit}; nothing to install")
        return
    unpack(kit / "kit.tar.xz", site)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_kit.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["plan", "check", "install", "run"])
    parser.add_argument("--kit", type=Path, default=ROOT / "gpu_kit", help="where tools/make_gpu_kit.py wrote")
    parser.add_argument("--site", type=Path, default=ROOT / ".gpu-site", help="where the kit is installed")
    parser.add_argument("--bundle-dir", type=Path, default=ROOT / "build" / "full")
    parser.add_argument("--preset", default="full", help="the bundle's preset (tiny: tests on a CPU)")
    parser.add_argument(
        "--drop-page-cache",
        action="store_true",
        help="cold-start loads read the disk, not the page cache (LTX2_DROP_PAGE_CACHE=1)",
    )
    args, rest = parser.parse_known_args(argv)
    if args.command == "plan":
        print(f"gpu kit: a session of {DEVICE_MINUTES} device minutes ({START_SECONDS} s for the machine's start):")
        for what, command, seconds in PLAN:
            print(f"  timeout {seconds:3d} s: python3 bench/gpu_kit.py {' '.join(command)}\n      {what}")
        return 0
    if args.command != "check":
        install(args.kit, args.site)
    found, missing = check(args.site)
    if args.command != "run":
        return 0
    if missing:
        print("gpu kit: stopped; install what is missing first", file=sys.stderr)
        return 1
    env = child_env(args.site)
    if args.drop_page_cache:
        env["LTX2_DROP_PAGE_CACHE"] = "1"
    complete = args.bundle_dir / f".complete-{args.preset}"
    if not complete.is_file():
        # Written whole or not at all: a bundle cut short by the command's time limit is written again.
        print(f"gpu kit: writing the {args.preset} bundle into {args.bundle_dir}", flush=True)
        device = "cuda" if "gpu" in found else "cpu"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "tools" / "make_tiny_bundle.py"),
                "--models-dir",
                str(args.bundle_dir),
                "--preset",
                args.preset,
                "--device",
                device,
            ],
            check=True,
            env=env,
        )
        complete.write_text("written by bench/gpu_kit.py\n")
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "bench" / "results"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "proving_ground.py"),
            "--models-dir",
            str(args.bundle_dir),
            "--preset",
            args.preset,
            "--out",
            str(out),
            *rest,
        ],
        env=env,
    )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
