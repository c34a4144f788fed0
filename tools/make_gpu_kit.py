"""Packs the wheels the GPU proving ground needs on a GPU machine that has no package registry (README, "GPU
proving ground"): run here, where the registry is reachable; the kit travels with the code.

    .venv/bin/python tools/make_gpu_kit.py [--missing ltx-core,scipy,...] [--torch 2.11] [--python 3.12]
        [--transformers4] [--out gpu_kit]

Writes OUT/wheels/*.whl (for Linux x86_64, the Python given) and OUT/manifest.json, and refuses a kit larger
than LIMIT_MIB (what such a machine accepts beside the code). Without `--missing` it packs DEFAULT: what a
machine with torch and transformers preinstalled lacks. `python3 bench/gpu_kit.py check`, run on the machine,
prints the `--missing` list it needs. `--transformers4` adds transformers 4.57.1 (with its tokenizers and
huggingface_hub), the release ltx-pipelines' own Gemma loader needs, for the reference comparison.

Versions: the pinned lane's (constraints.txt), except what is built for one torch: torchao (the release for
`--torch`, quant/torchao_policies.py) and torchaudio (the same version as torch). No dependency is resolved on
the machine: the kit is the resolution, each wheel installed with --no-deps.
"""

import argparse
import json
import subprocess
import sys
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
DEFAULT = ("ltx-core", "ltx-pipelines", "torchao", "einops", "accelerate", "sentencepiece", "protobuf")
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
    if name == "torchaudio":
        return f"torchaudio=={torch_version}.0" if torch_version.count(".") == 1 else f"torchaudio=={torch_version}"
    if name == "transformers":
        return "transformers==4.57.1"
    return f"{name}=={pinned[name]}" if name in pinned else name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--missing", help="distributions to pack, comma-separated (bench/gpu_kit.py check prints them)")
    parser.add_argument("--torch", default="2.11", help="the machine's torch, major.minor")
    parser.add_argument("--python", default="3.12", help="the machine's Python, major.minor")
    parser.add_argument("--transformers4", action="store_true", help="also pack transformers 4.57.1")
    parser.add_argument("--out", type=Path, default=ROOT / "gpu_kit")
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

    wheels = args.out / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for old in wheels.glob("*.whl"):
        old.unlink()
    abi = "cp" + args.python.replace(".", "")
    command = [
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
        args.python,
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
    print("gpu kit:", " ".join(requirements), flush=True)
    subprocess.run(command, check=True)

    files = sorted(wheels.glob("*.whl"))
    total = sum(f.stat().st_size for f in files)
    manifest = {
        "python": args.python,
        "torch": args.torch,
        "requirements": requirements,
        "wheels": {f.name: f.stat().st_size for f in files},
        "bytes": total,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for f in files:
        print(f"  {f.stat().st_size / 2**20:6.2f} MiB  {f.name}")
    print(f"gpu kit: {len(files)} wheels, {total / 2**20:.1f} MiB in {args.out}")
    if total > LIMIT_MIB * 2**20:
        largest = max(files, key=lambda f: f.stat().st_size)
        print(
            f"gpu kit: {total / 2**20:.1f} MiB is more than the {LIMIT_MIB} MiB a machine takes beside the code; "
            f"the largest is {largest.name} ({largest.stat().st_size / 2**20:.1f} MiB). Pack it in a kit of its "
            "own (--missing), carry and install that first (bench/gpu_kit.py install), then the rest.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
