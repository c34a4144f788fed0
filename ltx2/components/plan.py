"""What the files say about one component, read once per build: headers, config, key map, the meta model, which
file keys to read, the fp8 scales of a release file, and from those the bytes it will hold under a policy.

Everything that needs the checkpoint's header or the component's layout (the budget's estimate, the check that
the files match the config, layer selection, block streaming, the build itself) takes it from here, so one
build parses each header once and makes one meta model: the one that is checked, selected from and finally
loaded into.
"""

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from ltx_core.loader import SingleGPUModelBuilder

from ...errors import LTX2InputError, LTX2LoadError
from ...memory.streaming import streaming_units, unit_of
from ...quant.layers import TABLE as QUANTIZED_LAYERS
from ...quant.layers import select_layers
from ...quant.policy import Policy
from ..files.config_fields import defaults_taken
from ..files.safetensors_file import FP8_DTYPES, SafetensorsHeader, read_header
from ..files.stored_formats import SCALE_SUFFIXES, StoredLayout, read_layout
from .state_dict_loader import StreamingStateDictLoader
from .table import COMPONENTS, Bundle, Component

# Parameters a model may have beyond its files' tensors: those derived from another (Gemma's lm_head is its token
# embedding), with room to spare.
DERIVED_SLACK = 16


@contextlib.contextmanager
def bounded_build(name: str, where: str, tensors: int, check: Callable[[str], None] | None = None):
    """Around the making of a meta model from a file's config: stops it as soon as it has registered more
    parameters than the files hold tensors (each parameter is read from one), and calls `check` (the interrupt)
    at most every 0.2 s. A config claiming thousands of layers over a file holding 48 is then refused after 48,
    in milliseconds, instead of building the whole model first; and the making can be interrupted."""
    owner, count, last = threading.get_ident(), 0, [time.monotonic()]

    def on_parameter(module, param_name, param):  # noqa: ARG001 - torch's hook signature
        nonlocal count
        if threading.get_ident() != owner:
            return None
        count += 1
        if count > tensors + DERIVED_SLACK:
            raise LTX2LoadError(
                f"{name}: the config of {where} describes more weights than its files hold ({tensors} tensors): it "
                "asks for more layers or blocks than are there. The file is damaged or of another model; download "
                "it again."
            )
        if check is not None and time.monotonic() - last[0] > 0.2:
            last[0] = time.monotonic()
            check("")
        return None

    handle = torch.nn.modules.module.register_module_parameter_registration_hook(on_parameter)
    try:
        yield
    finally:
        handle.remove()


@dataclass
class ComponentPlan:
    bundle: Bundle
    name: str
    builder: SingleGPUModelBuilder  # ltx-core's builder, its loader bound to the parsed headers
    headers: dict[str, SafetensorsHeader]  # path -> header, every file the component reads
    meta: torch.nn.Module  # the one meta model of this build (the builder's base module ops applied)
    shapes: dict[str, tuple[int, ...]]  # model key -> shape, every tensor the config asks for
    renames: dict[str, str]  # file key -> model key, for the file keys this component reads
    layouts: dict[str, StoredLayout] = field(default_factory=dict)  # path -> how the file stores its weights
    _scales: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    _packed: dict[str, tuple[StoredLayout, str]] = field(default_factory=dict, repr=False)  # model key -> file key
    defaults: list[str] = field(default_factory=list)  # release config fields the file lacks (files/config_fields.py)
    component: Component | None = field(default=None, repr=False)  # its row of the component table
    _block_scales: dict[str, tuple[StoredLayout, str]] | None = field(default=None, repr=False)  # model key -> file's

    @classmethod
    def read(cls, bundle: Bundle, name: str, check: Callable[[str], None] | None = None) -> "ComponentPlan":
        """Reads the headers and makes the meta model; refuses files that do not match the config, naming the
        key, before any weight is read. `check` is called now and then while the meta model is made (the
        interrupt)."""
        if name not in COMPONENTS:
            raise LTX2InputError(f"Unknown LTX-2 component '{name}'. Known: {', '.join(COMPONENTS)}.")
        component = COMPONENTS[name]
        reading = component.read(bundle)
        paths = reading.paths
        layouts = {p: read_layout(read_header(p), reading.renames[p]) for p in paths}
        headers = {p: layout.header for p, layout in layouts.items()}
        config = reading.config if reading.config is not None else _merged_config(component, bundle, headers)
        builder = SingleGPUModelBuilder(
            model_class_configurator=component.configurator(bundle),
            model_path=paths[0] if len(paths) == 1 and not component.gemma else tuple(paths),
            model_sd_ops=component.sd_ops,
            module_ops=reading.module_ops,
            model_loader=StreamingStateDictLoader(headers, config),
        )
        with bounded_build(name, reading.where, sum(len(h.entries) for h in headers.values()), check):
            meta = builder.meta_model(config, ())
        module_ops = reading.module_ops
        if component.key_ops is not None:  # the key and module ops of the release that made the meta model
            sd_ops, follow = component.key_ops(meta)
            builder = dataclasses.replace(builder, model_sd_ops=sd_ops, module_ops=(*follow, *module_ops))
            module_ops = builder.module_ops
        shapes = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
        for op in module_ops:  # what the builder would do to its meta model, on this one
            if op.matcher(meta):
                meta = op.mutator(meta)
        plan = cls(bundle, name, builder, headers, meta, shapes, {}, layouts)
        plan.component = component
        plan.renames = plan._check_files(needed=set(shapes) | set(meta.state_dict()))
        plan.defaults = defaults_taken(name, config)
        return plan

    @property
    def paths(self) -> list[str]:
        return list(self.headers)

    @property
    def where(self) -> str:
        return self.paths[0] if len(self.paths) == 1 else str(Path(self.paths[0]).parent)

    @property
    def policy_input(self) -> str:
        """The loader input that chooses this component's policy (for messages)."""
        return self.component.policy_input or "quantization"

    def _check_files(self, needed: set[str]) -> dict[str, str]:
        """File key -> model key for the tensors this component reads (a checkpoint holds several components),
        after checking that every tensor the config asks for is there with its shape. ltx-core only warns when
        a parameter is missing and returns a half-built model; here the file is refused, naming the key."""
        sd_ops = self.builder.model_sd_ops
        found, renames = {}, {}
        for path, header in self.headers.items():
            layout = self.layouts[path]
            for key, entry in header.entries.items():
                mapped = key if sd_ops is None else sd_ops.apply_to_key(key)
                if mapped is None:
                    continue
                # Key-value ops may rename or duplicate a tensor; run them on a meta stand-in of its shape.
                placeholder = torch.empty(entry.shape, dtype=entry.dtype, device="meta")
                results = [(mapped, placeholder)] if sd_ops is None else sd_ops.apply_to_key_value(mapped, placeholder)
                for new_key, value in results:
                    shape = tuple(value.shape)
                    if layout.packed(key) and new_key in self.shapes and layout.fits(key, self.shapes[new_key]):
                        shape = self.shapes[new_key]  # packed (nvfp4 ...): what it unpacks to
                        self._packed[mapped] = (layout, key)
                    found[new_key] = (key, shape)
                    if new_key in needed or key.endswith(SCALE_SUFFIXES):
                        renames[key] = mapped
        missing = [k for k in self.shapes if k not in found]
        if missing:
            raise LTX2LoadError(
                f"{self.name}: {self.where} lacks {len(missing)} tensor(s) the config asks for, e.g. "
                f"{', '.join(missing[:3])}. The file is incomplete or of another model version; download it again."
            )
        wrong = [(found[k][0], found[k][1], s) for k, s in self.shapes.items() if found[k][1] != s]
        if wrong:
            key, got, want = wrong[0]
            raise LTX2LoadError(
                f"{self.name}: tensor '{key}' in {self._file_of(key)} has shape {list(got)}, the config asks for "
                f"{list(want)} ({len(wrong)} mis-shaped in all). The file does not match its own config; download it "
                "again."
            )
        return renames

    def file_names(self) -> list[str]:
        """The files it reads tensors from, by name (a Gemma folder's shards by the folder's), for the load report."""
        names = []
        for path, header in self.headers.items():
            if any(key in self.renames for key in header.entries):
                path = Path(path)
                names.append(
                    path.name
                    if self.component is None or not self.component.gemma or len(self.paths) == 1
                    else path.parent.name
                )
        return list(dict.fromkeys(names))

    def _file_of(self, key: str) -> str:
        return next((p for p, h in self.headers.items() if key in h.entries), self.where)

    @property
    def quantizable(self) -> bool:
        return self.name in QUANTIZED_LAYERS

    def stored(self, key: str) -> tuple[StoredLayout, str] | None:
        """(layout, file key) of the model weight `key` when its file stores it quantized (any format), else None."""
        if key in self._packed:
            return self._packed[key]
        for layout in self.layouts.values():
            file_key = next((f for f, m in self.renames.items() if m == key and f in layout.formats), None)
            if file_key is not None:
                return layout, file_key
        return None

    def packed_weights(self) -> dict[str, tuple[str, dict, tuple[str, ...]]]:
        """{model weight key: (format, its layer's options, the names of the scales stored beside it)} of the
        weights its files store packed (not fp8: quant/formats.py)."""
        found = {}
        for key, (layout, file_key) in self._packed.items():
            names = tuple(layout.scales_of(file_key))
            found[key] = (layout.formats[file_key], layout.options.get(file_key, {}), names)
        return found

    def fp8_scales(self) -> dict[str, torch.Tensor]:
        """Model weight key -> stored scale, when the component's file is an fp8 release (its block linears stored
        in fp8 with a scale each); empty otherwise. The scales were read and checked with the file's layout."""
        if self._scales is None:
            self._scales = {}
            for path, header in self.headers.items():
                layout = self.layouts[path]
                fp8 = layout.fp8_weights()
                for key in header.entries:
                    # (Each fp8 weight has its scale: stored_formats.read_layout refused the file otherwise.)
                    if key.endswith(".weight_scale") and key in self.renames and key.removesuffix("_scale") in fp8:
                        weight = self.renames[key].removesuffix("_scale")
                        self._scales[weight] = layout.small[key].float()
        return self._scales

    def unpack(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """The model weight `key` in bf16 when its file packs it (nvfp4, mxfp8, int8...: quant/formats.py), else
        `value` as it is."""
        if key not in self._packed:
            return value
        layout, file_key = self._packed[key]
        return layout.dequantize(file_key, value, self.shapes[key])

    def check_streamed(self, key: str, value: torch.Tensor) -> None:
        """A block scale (too large to read with the header) checked as it streams in: `key` is its model key."""
        if self._block_scales is None:
            self._block_scales = {
                mapped: (layout, file_key)
                for layout in self.layouts.values()
                for file_key, mapped in self.renames.items()
                if file_key in layout.header.entries
                and (found := layout.scale_of(file_key)) is not None
                and not found[1].small
            }
        if key in self._block_scales:
            layout, file_key = self._block_scales[key]
            layout.check_scale(file_key, value)

    @property
    def stored_formats(self) -> dict[str, int]:
        """{format: how many weights}, over the component's files (for the load report)."""
        counts: dict[str, int] = {}
        for layout in self.layouts.values():
            for key, fmt in layout.formats.items():
                if key in self.renames:
                    counts[fmt] = counts.get(fmt, 0) + 1
        return counts

    def stored_bytes(self) -> dict[str, tuple[int, int]]:
        """{format: (weights, bytes they and their scales take in the files)}, over the component's files."""
        found: dict[str, tuple[int, int]] = {}
        for layout in self.layouts.values():
            for key, fmt in layout.formats.items():
                if key in self.renames:
                    nbytes = sum(layout.header.entries[k].nbytes for k in (key, *layout.scales_of(key).values()))
                    count, total = found.get(fmt, (0, 0))
                    found[fmt] = (count + 1, total + nbytes)
        return found

    def selected(self, policy: Policy) -> tuple[set[str], dict[str, str]]:
        """(weight keys the policy quantizes, {layer: why not} for the others), from the layer table."""
        selection = select_layers(self.meta, self.name, fp8=policy.fp8)
        if not (self.quantizable and policy.quantizes):
            return set(), selection.skipped
        return selection.weight_keys(), selection.skipped

    def sizes(self, policy: Policy) -> dict[str, int]:
        """What each tensor (by model key) will hold once built under `policy`: quantized linears at the
        policy's bytes per weight (an fp8 release's weights stay fp8 under a policy that keeps them), other
        floating tensors in bf16 (fp8 is dequantized), the rest as stored. Scales are small and left out, but
        under a policy that keeps every weight as stored (as_stored), where a packed weight's block scales are an
        eighth of its bytes: there each stored tensor counts as the file stores it."""
        selected, _ = self.selected(policy)
        keeps_fp8 = policy.on_fp8_release is not None
        sizes = {}
        for path, header in self.headers.items():
            layout = self.layouts[path]
            for key, entry in header.entries.items():
                if key not in self.renames:
                    continue
                mapped, elements = self.renames[key], layout.elements(key, entry)
                packed = layout.packed(key) is not None  # dequantized to bf16 while it loads, or kept packed
                if key.endswith(SCALE_SUFFIXES):
                    if policy.keeps_stored and layout.scale_of(key) is not None:
                        weight = layout.header.entries[key.rsplit(".", 1)[0] + ".weight"]
                        if not layout.format_of(weight.key).fp8:
                            sizes[mapped] = entry.nbytes
                        elif key.endswith(".weight_scale"):  # fp8_scaled's layer keeps it per row, in float32
                            sizes[mapped] = weight.shape[0] * 4
                    continue
                if policy.keeps_stored and packed:
                    sizes[mapped] = entry.nbytes
                elif mapped in selected or (entry.dtype in FP8_DTYPES and keeps_fp8 and not packed):
                    sizes[mapped] = int(elements * policy.weight_bytes if mapped in selected else elements)
                elif entry.dtype.is_floating_point or packed:
                    sizes[mapped] = elements * 2
                else:
                    sizes[mapped] = entry.nbytes
        return sizes

    def units(self) -> list[str]:
        """The block-streaming units of this component (transformer blocks or Gemma's decoder layers, and the big
        layers beside them); none for a component that is not streamed."""
        return streaming_units(self.meta, self.component.blocks)

    def unit_sizes(self, policy: Policy) -> tuple[dict[str, int], int]:
        """({unit: bytes}, bytes outside any unit) under `policy`."""
        units = self.units()
        unit_bytes, other = dict.fromkeys(units, 0), 0
        for key, nbytes in self.sizes(policy).items():
            unit = unit_of(key, units)
            if unit is None:
                other += nbytes
            else:
                unit_bytes[unit] += nbytes
        return unit_bytes, other


def _merged_config(component: Component, bundle: Bundle, headers: dict[str, SafetensorsHeader]) -> dict:
    """The main file's config, each section a split file brings taken from that file (its `config` metadata)."""
    main = str(getattr(bundle, component.file))
    config = dict(headers[main].config()) if main in headers else {}
    for part in component.parts:
        path = getattr(bundle, part.field)
        if path is not None and part.section is not None:
            section = headers[str(path)].config().get(part.section)
            if section is not None:
                config[part.section] = section
    return config
