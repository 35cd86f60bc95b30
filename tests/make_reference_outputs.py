"""Rewrite tests/data/reference_outputs.json from the current networks (see tests/reference_outputs.py).

    python tests/make_reference_outputs.py            # every model
    python tests/make_reference_outputs.py enet icnet  # only these, the others kept
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_outputs import PATH, digest  # noqa: E402
from rtseg.models import list_models  # noqa: E402


def main(names: list[str]) -> None:
    stored = json.loads(PATH.read_text()) if PATH.is_file() else {}
    for name in names or list_models():
        stored[name] = digest(name)
        print(f"{name}: mean {stored[name]['mean']:.6g}, std {stored[name]['std']:.6g}")
    PATH.parent.mkdir(parents=True, exist_ok=True)
    # One model per line: a regenerated file's diff names the models whose outputs moved.
    lines = [f" {json.dumps(name)}: {json.dumps(stored[name])}" for name in sorted(stored)]
    PATH.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main(sys.argv[1:])
