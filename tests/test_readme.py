"""The README's quick start prints what its comments say."""

import importlib.util
import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_quick_start_prints_what_it_claims():
    blocks = python_blocks()
    assert blocks, "README has no python block"
    checked = 0
    for block in blocks:
        if "import numpy as np, torch" in block and importlib.util.find_spec("torch") is None:
            continue          # the interop example needs the interop extra
        namespace = {}
        for line in block.splitlines():
            match = re.match(r"print\((.*)\)\s*#\s*(\S.*?)(\s{2,}\(.*)?$", line)
            if match:
                value = eval(match.group(1), namespace)
                actual = re.sub(r"\s+", "", str(np.asarray(value)))
                expected = re.sub(r"\s+", "", match.group(2))
                assert actual == expected, f"README line {line!r} prints {actual}"
                checked += 1
            else:
                exec(line, namespace)
    assert checked >= 4


def test_the_layers_row_names_every_registered_layer_and_nothing_else():
    # the README's "What is here" table lists the layers by hand: tie it to the registry
    from refattr.layers.registry import registered
    row = next(line for line in README.read_text().splitlines() if line.startswith("| layers |"))
    listed = set(re.findall(r"`([A-Z][A-Za-z0-9]*)(?:\(|`)", row.split(";")[0]))
    assert listed == {entry.name for entry in registered()}
