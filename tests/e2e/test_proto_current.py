"""The generated protobuf code in horae_sdk.proto matches proto/: regenerate it and compare byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import REPO_ROOT

GENERATED = REPO_ROOT / "plugin_sdk" / "horae_sdk" / "proto"
HINT = "the generated code is stale: run `make proto` and commit the result"


def files_under(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_generated_code_is_current(tmp_path):
    out = tmp_path / "proto"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_proto.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"scripts/gen_proto.py failed: {result.stderr}"

    fresh, committed = files_under(out), files_under(GENERATED)
    assert fresh, "gen_proto.py generated nothing"
    assert sorted(fresh) == sorted(committed), (
        f"{HINT}; only in a fresh run: {sorted(set(fresh) - set(committed))}, "
        f"only in the repository: {sorted(set(committed) - set(fresh))}"
    )
    differing = sorted(name for name in fresh if fresh[name] != committed[name])
    assert not differing, f"{HINT}; these files differ: {differing}"
    assert any(name.endswith("_pb2_grpc.py") for name in fresh)
