"""The ``edgewatch`` console script: one entry point, a subcommand per component.

Each component keeps its own ``main(argv)``; they are imported only when asked for, so a
gateway with only the ``agent`` extra installed never imports FastAPI.
"""

from __future__ import annotations

import importlib
import sys

from edgewatch.processes import die_with_parent

# subcommand -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "agent": ("agent.cli", "run a gateway agent (field gateways)"),
    "controller": ("controller.cli", "run the central controller: ingest, health, API"),
    "sim": ("firmware_sim.cli", "serve simulated device firmware on pseudo-terminals"),
    "center": ("edgewatch.center", "run a reference tier center (HTTP receiver)"),
    "demo": ("edgewatch.demo", "run the whole system on this machine"),
}

USAGE = (
    "usage: edgewatch {"
    + ",".join(COMMANDS)
    + "} ...\n\n"
    + "\n".join(f"  {name:<11} {help_text}" for name, (_, help_text) in COMMANDS.items())
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"edgewatch: unknown command {name!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    die_with_parent()  # a child of the demo or of a test: never outlive it
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = {"agent": "agent", "controller": "controller", "sim": "sim"}.get(name, "all")
        print(
            f"edgewatch {name}: missing dependency ({exc.name}); "
            f"install it with: pip install 'edgewatch[{extra}]'",
            file=sys.stderr,
        )
        return 2
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    sys.exit(main())
