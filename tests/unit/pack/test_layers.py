"""The pack's layers import downward only (nodes -> ltx2 -> quant | memory -> errors), function-local imports
included, and ComfyUI is imported only by the node layer and the entry point. Inside ltx2/ the rooms do too:
a2v/ (the pipeline) -> components/ (making components) -> files/ (reading files). cluster/ stands beside them: a client
of ComfyUI's HTTP API that imports no layer of the pack nor ComfyUI, and no layer (nor the entry point) imports it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RANK = {"errors": 0, "quant": 1, "memory": 1, "ltx2": 2, "nodes": 3}
COMFY = {
    "comfy",
    "comfy_api",
    "comfy_execution",
    "comfy_extras",
    "folder_paths",
    "server",
    "execution",
    "nodes",
    "app",
    "latent_preview",
}


# The rooms of the model layer, lowest first.
LTX2_ROOMS = {"files": 0, "components": 1, "a2v": 2}


def imports(path: Path, root: Path, depth: int = 1) -> list[tuple[int, str]]:
    """(line, what) for every import in the file: pack layers as 'pack:<layer>' (with `depth` 2,
    'pack:<layer>/<room>'), others by top-level name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module.split(".")[0]))
                continue
            base = path.parent.relative_to(root).parts
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            target = (*base, *(node.module.split(".") if node.module else []))
            if not target:  # `from . import x` at the root: the entry point importing the pack
                target = tuple(alias.name for alias in node.names)
            found.append((node.lineno, "pack:" + "/".join(target[:depth])))
    return found


def violations(root: Path) -> list[str]:
    wrong = []
    files = [
        (layer, p)
        for layer in RANK
        for p in ([root / "errors.py"] if layer == "errors" else (root / layer).rglob("*.py"))
        if p.is_file()
    ]
    for layer, path in files:
        for line, what in imports(path, root):
            target = what.removeprefix("pack:")
            if what.startswith("pack:") and target != layer and RANK.get(target, 99) >= RANK[layer]:
                wrong.append(f"{path.relative_to(root)}:{line} ({layer}) imports {target}")
            if what in COMFY and layer != "nodes":
                wrong.append(f"{path.relative_to(root)}:{line} ({layer}) imports ComfyUI's {what}")
    return wrong


def room_violations(root: Path) -> list[str]:
    """Imports inside ltx2/ that go sideways or up between its rooms."""
    wrong = []
    for room, rank in LTX2_ROOMS.items():
        for path in sorted((root / "ltx2" / room).rglob("*.py")):
            for line, what in imports(path, root, depth=2):
                layer, _, target = what.removeprefix("pack:").partition("/")
                if what.startswith("pack:") and layer == "ltx2" and LTX2_ROOMS.get(target, 99) > rank:
                    wrong.append(f"{path.relative_to(root)}:{line} (ltx2/{room}) imports ltx2/{target}")
    return wrong


def cluster_violations(root: Path) -> list[str]:
    wrong = []
    for path in sorted((root / "cluster").rglob("*.py")):
        for line, what in imports(path, root):
            target = what.removeprefix("pack:")
            if (what.startswith("pack:") and target != "cluster") or what in RANK or what == "ltx2_a2v":
                wrong.append(f"{path.relative_to(root)}:{line} (cluster) imports the pack's {target}")
            elif what in COMFY:
                wrong.append(f"{path.relative_to(root)}:{line} (cluster) imports ComfyUI's {what}")
    pack_files = [
        root / "__init__.py",
        root / "errors.py",
        *(p for layer in RANK for p in (root / layer).rglob("*.py")),
    ]
    for path in (p for p in pack_files if p.is_file()):
        wrong += [
            f"{path.relative_to(root)}:{line} imports cluster"
            for line, what in imports(path, root)
            if what in ("pack:cluster", "cluster")
        ]
    return wrong


def test_every_import_goes_down_a_layer_and_only_nodes_import_comfyui():
    assert violations(ROOT) == []


def test_the_model_layers_rooms_import_downward_only():
    assert {p.name for p in (ROOT / "ltx2").iterdir() if p.suffix == ".py"} == {"__init__.py"}
    assert room_violations(ROOT) == []


def test_an_upward_import_between_rooms_is_caught(tmp_path):
    for room in ("files", "components"):
        (tmp_path / "ltx2" / room).mkdir(parents=True)
    (tmp_path / "ltx2" / "files" / "a.py").write_text("from ..components.plan import ComponentPlan\n")
    (tmp_path / "ltx2" / "components" / "b.py").write_text("def f():\n    from ..a2v import stages\n")
    (tmp_path / "ltx2" / "components" / "c.py").write_text("from ..files.lora_file import LoraFactors\n")
    assert room_violations(tmp_path) == [
        "ltx2/files/a.py:1 (ltx2/files) imports ltx2/components",
        "ltx2/components/b.py:2 (ltx2/components) imports ltx2/a2v",
    ]


def test_the_entry_point_is_seen_importing_the_node_layer():
    assert "pack:nodes" in [what for _, what in imports(ROOT / "__init__.py", ROOT)]


def test_an_upward_or_sideways_import_and_a_comfyui_import_are_caught(tmp_path):
    (tmp_path / "quant").mkdir()
    (tmp_path / "quant" / "x.py").write_text("def f():\n    from ..ltx2.model_spec import ModelSpec\n")
    (tmp_path / "quant" / "y.py").write_text("from ..memory.budget import BUDGET\n")
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "z.py").write_text("import comfy.model_management\n")
    assert sorted(violations(tmp_path)) == [
        "memory/z.py:1 (memory) imports ComfyUI's comfy",
        "quant/x.py:2 (quant) imports ltx2",
        "quant/y.py:1 (quant) imports memory",
    ]


def test_cluster_and_the_pack_do_not_import_each_other():
    assert (ROOT / "cluster" / "tasks.py").is_file()
    assert cluster_violations(ROOT) == []


def test_a_cluster_import_of_the_pack_or_comfyui_and_a_pack_import_of_cluster_are_caught(tmp_path):
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "a.py").write_text("from ..memory.budget import BUDGET\nfrom .app import app\n")
    (tmp_path / "cluster" / "b.py").write_text("def f():\n    import comfy.utils\n    import ltx2\n")
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "c.py").write_text("from ..cluster import submit\n")
    (tmp_path / "__init__.py").write_text("import cluster\n")
    assert sorted(cluster_violations(tmp_path)) == [
        "__init__.py:1 imports cluster",
        "cluster/a.py:1 (cluster) imports the pack's memory",
        "cluster/b.py:2 (cluster) imports ComfyUI's comfy",
        "cluster/b.py:3 (cluster) imports the pack's ltx2",
        "nodes/c.py:1 imports cluster",
    ]
