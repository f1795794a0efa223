"""Print the JSON Schema of ``result.json``: ``python -m ftbench.schema`` (or ``ftbench-schema``).

Other tools can validate or read ftbench's results with it. The same text ships in the package
as ``ftbench/run/result.schema.json``; after a change to ``ftbench.run.schema`` it is written
again with ``python -m ftbench.schema > src/ftbench/run/result.schema.json``.
"""

from __future__ import annotations

import json
import sys

from ftbench.run.schema import json_schema

SCHEMA_FILE = "run/result.schema.json"  # inside the ftbench package


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        print(f"ftbench-schema: error: unexpected argument {args[0]!r}; allowed: none "
              "(it prints the JSON Schema of result.json)", file=sys.stderr)
        return 2
    sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
