"""The pack's safetensors header parser, fuzzed for a bounded time: any bytes give a parsed header or the
pack's own clear error, never another exception."""

import json
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.files.safetensors_file import parse_header, read_header

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
entries = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["BF16", "F32", "F8_E4M3", "I64", "XX", ""]) | json_values,
        "shape": st.lists(st.integers(-3, 70), max_size=4) | json_values,
        "data_offsets": st.lists(st.integers(-10, 5000), min_size=0, max_size=3) | json_values,
    }
)
headers = st.dictionaries(st.text(max_size=12), entries | json_values, max_size=5)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=headers, file_size=st.integers(0, 10_000))
def test_structured_headers_parse_or_fail_clearly(tmp_path_factory, header, file_size):
    raw = json.dumps(header).encode()
    try:
        parsed = parse_header(raw, 8 + len(raw) + file_size, tmp_path_factory.mktemp("f") / "x.safetensors")
    except LTX2InputError as exc:
        assert "x.safetensors" in str(exc)
    else:
        for entry in parsed.entries.values():
            assert entry.start + entry.nbytes <= 8 + len(raw) + file_size


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=512), claimed=st.integers(0, 2**64 - 1))
def test_arbitrary_bytes_read_or_fail_clearly(tmp_path, content, claimed):
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(struct.pack("<Q", claimed) + content)
    try:
        read_header(path)
    except LTX2InputError as exc:
        assert "fuzz.safetensors" in str(exc)
