"""Packs what the GPU proving ground needs on a GPU machine that has no package registry (docs/development.md, "GPU
benchmarks"): run here, where the registry is reachable; the kit travels with the code.

    .venv/bin/python tools/make_gpu_kit.py [--missing ltx-core,scipy,...] [--torch 2.11.0] [--python 3.12]
        [--transformers4] [--out gpu_kit] [--xz-preset 6]

Downloads the wheels (for Linux x86_64, the Python given) and writes OUT/kit.tar.xz, their contents compressed
again with xz (the wheels' own zip compression leaves a third on the table: 85 MiB of wheels are 57 MiB so), and
OUT/manifest.json; a kit larger than LIMIT_MIB (what such a machine accepts beside the code) is refused. Without
`--missing` it packs DEFAULT: everything the proving ground imports (MODULES) that the GPU machines lent here do
not have (MACHINE_HAS, the list it is checked against), av and scipy included, in one kit.
`python3 bench/gpu_kit.py check`, run on a machine, prints the `--missing` list it needs. `--transformers4` adds
transformers 4.57.1 (with its tokenizers and huggingface_hub), the release ltx-pipelines' own Gemma loader needs,
for the reference comparison.

Versions: the pinned lane's (constraints.txt), except what is built for one torch: torchao (the release for
`--torch`, quant/torchao_policies.py) and torchaudio (the same version as torch). No dependency is resolved on
the machine: the kit is the resolution, each wheel's contents put in place as they are.
"""

import argparse
import io
import json
import lzma
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MIB = 60  # the machine takes 64 MiB of carried files in all; the rest is margin for results and scripts

# What the proving ground imports (the pack, ltx-core, ltx-pipelines, the bundle tool), as import name ->
# distribution. bench/gpu_kit.py imports each on the machine; a missing or wrong one is named by distribution.
MODULES = {
    "numpy": "numpy",
    "safetensors": "safetensors",
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "huggingface_hub": "huggingface-hub",
    "torchaudio": "torchaudio",
    "scipy": "scipy",
    "einops": "einops",
    "accelerate": "accelerate",
    "PIL": "pillow",
    "tqdm": "tqdm",
    "av": "av",
    "sentencepiece": "sentencepiece",
    "google.protobuf": "protobuf",
    "psutil": "psutil",
    "torchao": "torchao",
    "ltx_core": "ltx-core",
    "ltx_pipelines": "ltx-pipelines",
}
# Only the chart needs it; without it the table and the JSON are still written.
OPTIONAL = {"matplotlib": "matplotlib"}
# What the GPU machines lent here have (checked 2026-11-23, /work/shared/NOTES.md): Python 3.12, torch 2.11
# (cu130), transformers 5.17 with what it requires (numpy, tokenizers, huggingface-hub, tqdm), safetensors and
# sentencepiece. The pack runs with transformers 5.x; ltx-pipelines' own Gemma loader needs 4.57 (--transformers4).
MACHINE_HAS = ("numpy", "safetensors", "transformers", "tokenizers", "huggingface-hub", "tqdm", "sentencepiece")
# Everything else the proving ground imports: one kit carries it all (within LIMIT_MIB, xz-compressed).
DEFAULT = tuple(d for d in dict.fromkeys(MODULES.values()) if d not in MACHINE_HAS)
TRANSFORMERS4 = ("transformers", "tokenizers", "huggingface-hub")
# matplotlib's own dependencies, packed with it.
MATPLOTLIB = ("matplotlib", "contourpy", "cycler", "fonttools", "kiwisolver", "pyparsing", "python-dateutil", "six")


def pins() -> dict[str, str]:
    """Distribution -> version from the pinned lane's constraints."""
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.split("#")[0].strip().partition("==")
        if version:
            found[name.lower().replace("_", "-")] = version
    return found


def requirement(name: str, torch_version: str, pinned: dict[str, str]) -> str:
    if name == "torchao":
        sys.path.insert(0, str(ROOT / "tools"))
        from _pack import import_pack

        import_pack()
        from ltx2_a2v.quant.torchao_policies import TORCHAO_FOR_TORCH

        release = TORCHAO_FOR_TORCH.get(tuple(int(x) for x in torch_version.split(".")[:2]))
        if release is None:
            raise SystemExit(
                f"--torch {torch_version}: no torchao release is known for it "
                f"(quant/torchao_policies.py knows {', '.join('.'.join(map(str, k)) for k in TORCHAO_FOR_TORCH)})"
            )
        return f"torchao=={release}"
    if name == "torchaudio":  # built for one torch release: the machine's own (give --torch as check prints it)
        return f"torchaudio=={torch_version}.0" if torch_version.count(".") == 1 else f"torchaudio=={torch_version}"
    if name == "transformers":
        return "transformers==4.57.1"
    return f"{name}=={pinned[name]}" if name in pinned else name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--missing", help="distributions to pack, comma-separated (bench/gpu_kit.py check prints them)")
    parser.add_argument("--torch", default="2.11.0", help="the machine's torch (major.minor[.patch])")
    parser.add_argument("--python", default="3.12", help="the machine's Python, major.minor")
    parser.add_argument("--transformers4", action="store_true", help="also pack transformers 4.57.1")
    parser.add_argument("--out", type=Path, default=ROOT / "gpu_kit")
    parser.add_argument("--xz-preset", type=int, default=6, choices=range(10), help="xz's level (0: fast, larger)")
    parser.add_argument("--limit-mib", type=float, default=LIMIT_MIB, help=argparse.SUPPRESS)  # for the tests
    args = parser.parse_args(argv)

    names = [n.strip().lower() for n in args.missing.split(",") if n.strip()] if args.missing else list(DEFAULT)
    known = set(MODULES.values()) | set(OPTIONAL.values())
    if bad := [n for n in names if n not in known]:
        parser.error(
            f"--missing: {', '.join(bad)} is not something the proving ground needs; known: {', '.join(sorted(known))}"
        )
    if args.transformers4:
        names += [n for n in TRANSFORMERS4 if n not in names]
    if "matplotlib" in names:
        names += [n for n in MATPLOTLIB if n not in names]
    pinned = pins()
    requirements = [requirement(n, args.torch, pinned) for n in names]

    args.out.mkdir(parents=True, exist_ok=True)
    for old in (*args.out.glob("wheels/*.whl"), args.out / "kit.tar.xz"):
        old.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-kit-") as download:
        wheels = Path(download)
        print("gpu kit:", " ".join(requirements), flush=True)
        subprocess.run(download_command(wheels, args.python, requirements), check=True)
        files = sorted(wheels.glob("*.whl"))
        for f in files:
            print(f"  {f.stat().st_size / 2**20:6.2f} MiB  {f.name}")
        kit = args.out / "kit.tar.xz"
        pack(files, kit, args.xz_preset)
        manifest = {
            "python": args.python,
            "torch": args.torch,
            "requirements": requirements,
            "wheels": {f.name: f.stat().st_size for f in files},
            "wheel_bytes": sum(f.stat().st_size for f in files),
            "bytes": kit.stat().st_size,
        }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total, wheel_total = manifest["bytes"], manifest["wheel_bytes"]
    print(f"gpu kit: {len(files)} wheels ({wheel_total / 2**20:.1f} MiB), {total / 2**20:.1f} MiB as {kit}")
    if total > args.limit_mib * 2**20:
        largest = max(manifest["wheels"], key=manifest["wheels"].get)
        print(
            f"gpu kit: {total / 2**20:.1f} MiB is more than the {args.limit_mib:g} MiB a machine takes beside the "
            f"code; the largest wheel is {largest} ({manifest['wheels'][largest] / 2**20:.1f} MiB). Pack it in a "
            "kit of its own (--missing), carry and install that first (bench/gpu_kit.py install), then the rest.",
            file=sys.stderr,
        )
        kit.unlink()
        return 1
    return 0


def download_command(wheels: Path, python: str, requirements: list[str]) -> list[str]:
    abi = "cp" + python.replace(".", "")
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--dest",
        str(wheels),
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--abi",
        abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
        *(f"--platform=manylinux_2_{v}_x86_64" for v in (28, 27, 24, 17, 12)),
        "--platform",
        "manylinux2014_x86_64",
        "--platform",
        "any",
        *requirements,
    ]


def pack(wheels: list[Path], kit: Path, preset: int) -> None:
    """The wheels' contents in one xz tar, each under its wheel's name (bench/gpu_kit.py puts them in place)."""
    with tarfile.open(kit, "w:xz", preset=preset | (lzma.PRESET_EXTREME if preset == 9 else 0)) as tar:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                for info in archive.infolist():
                    if info.is_dir():
                        continue
                    member = tarfile.TarInfo(f"{wheel.name}/{info.filename}")
                    member.size, member.mode = info.file_size, (info.external_attr >> 16) or 0o644
                    tar.addfile(member, io.BytesIO(archive.read(info)))


if __name__ == "__main__":
    sys.exit(main())
