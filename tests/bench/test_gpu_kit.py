"""bench/gpu_kit.py and tools/make_gpu_kit.py on a machine made here to look like the GPU machines: an interpreter
without pip whose packages are this lane's less the ones such a machine lacks (DEFAULT: everything the proving
ground imports but what the lent machines have, MACHINE_HAS: av and scipy included). The check names exactly
those, the kit is downloaded from the registry (as it is where the kit is made), put in place without a registry
and without pip, and the proving ground runs from it on the tiny preset. The real kit, for the lent machines'
Python and torch, fits what one command carries (a long test: it downloads and compresses 80 MiB)."""

import json
import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import make_gpu_kit  # noqa: E402  (tools/)

# Top-level entries of site-packages that belong to each distribution the machine lacks.
ENTRIES = {
    "ltx-core": ("ltx_core",),
    "ltx-pipelines": ("ltx_pipelines",),
    "torchao": ("torchao",),
    "einops": ("einops",),
    "accelerate": ("accelerate",),
    "protobuf": ("google", "protobuf"),
    "scipy": ("scipy",),
    "av": ("av",),
    "pillow": ("pil",),
    "torchaudio": ("torchaudio",),
    "psutil": ("psutil",),
    "matplotlib": ("matplotlib",),
}
LACKING = tuple(e for d in (*make_gpu_kit.DEFAULT, "matplotlib") for e in ENTRIES[d])


def test_the_kit_is_everything_the_proving_ground_imports_but_what_the_lent_machines_have():
    distributions = set(make_gpu_kit.MODULES.values())
    assert set(make_gpu_kit.DEFAULT) | set(make_gpu_kit.MACHINE_HAS) == distributions
    assert not set(make_gpu_kit.DEFAULT) & set(make_gpu_kit.MACHINE_HAS)
    assert {"av", "scipy", "ltx-core", "torchao"} <= set(make_gpu_kit.DEFAULT)


@pytest.fixture(scope="module")
def machine(tmp_path_factory) -> Path:
    """The interpreter of a machine with torch, transformers & co. but none of LACKING, and no pip."""
    root = tmp_path_factory.mktemp("machine")
    venv.EnvBuilder(with_pip=False).create(root / "env")
    python = root / "env" / "bin" / "python"
    packages = root / "site-packages"
    packages.mkdir()
    for entry in Path(site.getsitepackages()[0]).iterdir():
        if (
            entry.name.endswith(".pth")
            or entry.name.startswith(("_distutils_hack", "pip"))
            or entry.name.lower().startswith(LACKING)
        ):
            continue
        (packages / entry.name).symlink_to(entry)
    own = subprocess.run(
        [python, "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (Path(own) / "machine.pth").write_text(f"{packages}\n")
    assert subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode != 0
    return python


def gpu_kit(python: Path, *args: str, out: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"OUT": str(out)} if out else {})}
    return subprocess.run(
        [python, ROOT / "bench" / "gpu_kit.py", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )


def test_check_names_what_the_machine_lacks_and_the_command_that_packs_it(machine, tmp_path):
    done = gpu_kit(machine, "check", "--site", str(tmp_path / "site"))
    assert done.returncode == 0, done.stderr
    missing = {line.split()[1] for line in done.stdout.splitlines() if line.strip().startswith("MISSING")}
    assert missing == {*make_gpu_kit.DEFAULT, "matplotlib"}
    assert "matplotlib" in next(line for line in done.stdout.splitlines() if "optional" in line)
    command = next(line for line in done.stdout.splitlines() if "make_gpu_kit.py --missing" in line)
    assert set(command.split("--missing ")[1].split()[0].split(",")) == set(make_gpu_kit.DEFAULT)


def test_run_stops_before_anything_when_something_is_missing(machine, tmp_path):
    done = gpu_kit(
        machine,
        "run",
        "--kit",
        str(tmp_path / "no-kit"),
        "--site",
        str(tmp_path / "site"),
        "--bundle-dir",
        str(tmp_path / "bundle"),
        "--preset",
        "tiny",
        "--allow-cpu",
    )
    assert done.returncode == 1 and "install what is missing first" in done.stderr
    assert not (tmp_path / "bundle").exists()


def test_the_kit_installs_without_registry_or_pip_and_the_proving_ground_runs_from_it(machine, tmp_path):
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    torch_release = __import__("torch").__version__.split("+")[0]
    kit = tmp_path / "kit"
    # xz's fastest level here (the kit's size for the lent machines is the long test's): 250 MiB unpacked.
    argv = ["--python", version, "--torch", torch_release, "--out", str(kit), "--xz-preset", "0", "--limit-mib", "500"]
    assert make_gpu_kit.main(argv) == 0
    wheels = json.loads((kit / "manifest.json").read_text())["wheels"]
    assert {w.split("-")[0].lower() for w in wheels} == {d.replace("-", "_") for d in make_gpu_kit.DEFAULT}

    out = tmp_path / "out"
    done = gpu_kit(
        machine,
        "run",
        "--kit",
        str(kit),
        "--site",
        str(tmp_path / "site"),
        "--bundle-dir",
        str(tmp_path / "bundle"),
        "--preset",
        "tiny",
        "--allow-cpu",
        "--size",
        "128x128x9",
        "--steps",
        "2",
        "--runs",
        "1",
        "--policies",
        "fp8_scaled",
        "--modes",
        "cold_start",
        out=out,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert all((tmp_path / "site" / name).is_dir() for name in ("ltx_core", "torchao", "scipy", "av", "PIL"))
    assert "no chart: matplotlib is not installed" in done.stdout
    assert "| fp8_scaled | cold_start |" in (out / "proving_ground.md").read_text()
    assert (tmp_path / "bundle" / ".complete-tiny").is_file()


def test_a_kit_too_large_to_carry_is_refused_naming_its_largest_wheel(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(make_gpu_kit, "LIMIT_MIB", 0.2)
    assert make_gpu_kit.main(["--missing", "einops,accelerate", "--out", str(tmp_path)]) == 1
    assert "accelerate-" in capsys.readouterr().err


def test_unknown_distributions_are_refused_with_the_known_ones(tmp_path, capsys):
    with pytest.raises(SystemExit):
        make_gpu_kit.main(["--missing", "tensorflow", "--out", str(tmp_path)])
    assert "tensorflow is not something the proving ground needs" in capsys.readouterr().err


@pytest.mark.long
def test_the_kit_for_the_lent_machines_fits_one_command(tmp_path):
    """Python 3.12 and torch 2.11 (NOTES): every distribution of DEFAULT, av and scipy included, in one kit
    within LIMIT_MIB (what one command carries, less room for the code and the results)."""
    assert make_gpu_kit.main(["--python", "3.12", "--torch", "2.11.0", "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["bytes"] <= make_gpu_kit.LIMIT_MIB * 2**20 < manifest["wheel_bytes"]
    assert {w.split("-")[0].lower() for w in manifest["wheels"]} == {d.replace("-", "_") for d in make_gpu_kit.DEFAULT}


def test_the_plan_fits_a_session_of_device_minutes(capsys):
    """Each command within one command's limit, all of them and the machine's start within the session, the first
    writing the bundle the others reuse; `plan` prints them."""
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_kit

    assert all(seconds <= gpu_kit.COMMAND_SECONDS for _, _, seconds in gpu_kit.PLAN)
    assert gpu_kit.START_SECONDS + sum(s for _, _, s in gpu_kit.PLAN) <= gpu_kit.DEVICE_MINUTES * 60 - 60
    assert gpu_kit.PLAN[0][1][0] == "run" and "full bundle" in gpu_kit.PLAN[0][0]
    assert gpu_kit.main(["plan"]) == 0
    assert "python3 bench/gpu_kit.py run --policies fp8_scaled" in capsys.readouterr().out
