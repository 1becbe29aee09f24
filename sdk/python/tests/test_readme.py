"""The README's examples run as written (but for the address)."""

import pathlib
import re
import subprocess
import sys
import time

README = pathlib.Path(__file__).parent.parent / "README.md"


def _example(name: str, addr: str) -> str:
    match = re.search(rf"<!-- {name} example -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert match, f"README.md has no '{name} example'"
    return match.group(1).replace("127.0.0.1:50051", addr)


def test_the_readme_agent_is_approved_by_the_readme_human(addr_a, addr_b):
    agent = subprocess.Popen(
        [sys.executable, "-c", _example("agent", addr_a)], stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(400):
            exec(_example("human", addr_b), {})
            if agent.poll() is not None:
                break
            time.sleep(0.05)
        output, _ = agent.communicate(timeout=30)
    finally:
        agent.kill()
    assert agent.returncode == 0
    assert output == "Deploying, approved by alice@example.com: Looks good to deploy\n"
