"""`softpool-bench SUBCOMMAND [key=value ...]`: dispatch to one benchmark module's ``main(argv)``.

Every benchmark takes the grammar of all softpool tools (``softpool_video.cli``): ``key=value``
options, ``--help`` and ``--version``; ``softpool-bench SUBCOMMAND --help`` lists its options.
"""

from __future__ import annotations

import importlib
import sys

from softpool_video import cli

# subcommand -> (module, one-line description)
SUBCOMMANDS = {
    "op": ("softpool_video.bench.operator", "SoftPool3d vs max/avg pooling and composites (speed, memory)"),
    "models": ("softpool_video.bench.models", "training-step time of backbones, SoftPool vs original pools"),
    "data": ("softpool_video.bench.data", "clips/s of our loaders vs pytorchvideo (pyav, decord)"),
    "retention": (
        "softpool_video.bench.retention",
        "information retention (PSNR/SSIM) of soft/max/avg pooling",
    ),
    "gpu-check": (
        "softpool_video.bench.gpu_check",
        "every CUDA test, the CUDA operator benchmark and a SlowFast step, in one report",
    ),
}

PROG = "softpool-bench"


def _usage() -> str:
    lines = [f"usage: {PROG} SUBCOMMAND [key=value ...]", "", "subcommands:"]
    lines += [f"  {name:<10} {description}" for name, (_, description) in SUBCOMMANDS.items()]
    lines.append(f"\n`{PROG} SUBCOMMAND --help` shows the options of one benchmark; --version the version.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in cli.HELP_FLAGS:
        if not argv:
            cli.print_error(
                PROG, f"no SUBCOMMAND given; choose from {', '.join(SUBCOMMANDS)} (see {PROG} --help)"
            )
            return cli.EXIT_USAGE
        print(_usage())
        return cli.EXIT_OK
    if argv[0] == cli.VERSION_FLAG:
        print(cli.version_text(PROG))
        return cli.EXIT_OK
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        cli.print_error(
            PROG,
            f"unknown subcommand {name!r}{cli.did_you_mean(name, SUBCOMMANDS)}; "
            f"choose from {', '.join(SUBCOMMANDS)}",
        )
        return cli.EXIT_USAGE
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
