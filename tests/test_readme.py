"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "README.md has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    output = capsys.readouterr().out
    assert "(16, 117)" in output and "117 {1: 4, 2: 16, 3: 88, 4: 9}" in output
    # the decoding example recovers methanol, species included, to the 1e-6 threshold
    assert "CH4O True" in output
    assert " 0.0000 A" in output
