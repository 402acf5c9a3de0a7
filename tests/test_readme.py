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


def first_block_commands() -> list[str]:
    """The command lines of the README's first code block."""
    block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S).group(1)
    return [line.split("   #")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_starts_with_two_commands_and_ci_runs_the_second():
    """The first block: set-up + the main job, set-up + the tests; .ci/run runs the second
    exactly as written (so that what CI checks is what a new user types)."""
    run, tests = first_block_commands()
    assert run.startswith("pip install torch==2.13.0 && ") and run.endswith("snakemake --cores 2")
    assert tests.startswith("pip install torch==2.13.0 && ") and tests.endswith("python -m pytest -q")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    ci_commands = [line.strip().strip("()") for line in ci.splitlines() if not line.startswith("#")]
    assert tests in ci_commands
    pinned = re.search(r"^torch==(\S+)$", (README.parent / "requirements" / "constraints.txt")
                       .read_text(), flags=re.M).group(1)
    assert f"torch=={pinned}" in tests
