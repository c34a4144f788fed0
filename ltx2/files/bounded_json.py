"""JSON from model files, parsed with a bounded nesting depth.

Python's json parser recurses once per nesting level: a header or config of a few kB of `[[[[...` raises a bare
RecursionError naming nothing (or, on a deep enough stack, takes the thread down). No model file nests deeper
than a few levels (a safetensors header: 3; a Gemma-3 config.json: 3; tokenizer.json: 5), so the depth is
counted first, in one pass outside the strings, and a deeper text is refused before the parser sees it."""

import itertools
import json
import re

MAX_DEPTH = 64
# Strings (with their escapes) first, so brackets inside them are not counted; then the brackets themselves. An
# unterminated string runs to the end (the closing quote is optional): each character is looked at once however
# the quotes are placed, and json refuses such a text anyway.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*+"?', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class TooDeep(ValueError):
    """The text nests deeper than MAX_DEPTH; the caller names the file."""

    def __init__(self, depth: int):
        super().__init__(f"nested more than {MAX_DEPTH} levels deep (at least {depth})")
        self.depth = depth


def depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text` (outside strings)."""
    brackets = _BRACKET.findall(_STRING.sub("", text))
    return max(itertools.accumulate(_STEP[b] for b in brackets), default=0)


def loads(text: str | bytes, max_depth: int = MAX_DEPTH):
    """json.loads, refusing a text nested deeper than `max_depth` with TooDeep (a ValueError) before parsing.
    Other errors are json's own (json.JSONDecodeError, UnicodeDecodeError)."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    found = depth(text)
    if found > max_depth:
        raise TooDeep(found)
    try:
        return json.loads(text)
    except RecursionError:  # not reached below MAX_DEPTH; kept so that no stack limit can surface unnamed
        raise TooDeep(found) from None
