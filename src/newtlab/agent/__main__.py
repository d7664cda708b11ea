"""``python3 -m <agent> OP``: run one operation with JSON arguments on stdin.

Prints one JSON document: ``{"result": ...}``, or ``{"error": "..."}`` when
the operation failed in a way a user should read (``AgentError``). Bytes
travel as ``{"base64": "..."}``, in arguments and results alike. Anything
else is a bug: traceback on stderr, exit 1.
"""

from __future__ import annotations

import json
import sys

from . import AgentError, ops
from .wire import decode, encode


def main() -> None:
    operation = ops.OPERATIONS.get(sys.argv[1]) if len(sys.argv) == 2 else None
    if operation is None:
        known = ", ".join(sorted(ops.OPERATIONS))
        print(
            f"usage: python3 -m {__package__} OP < ARGS.json; OP is one of {known}", file=sys.stderr
        )
        sys.exit(2)
    arguments = {k: decode(v) for k, v in json.loads(sys.stdin.read() or "{}").items()}
    try:
        reply = {"result": encode(operation(**arguments))}
    except AgentError as exc:
        reply = {"error": str(exc)}
    sys.stdout.write(json.dumps(reply))


if __name__ == "__main__":
    main()
