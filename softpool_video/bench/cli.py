"""`softpool-bench SUBCOMMAND [args]`: dispatch to one benchmark module's ``main(argv)``."""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one-line description)
SUBCOMMANDS = {
    "op": ("softpool_video.bench.operator", "SoftPool3d vs max/avg pooling and composites (speed, memory)"),
    "models": ("softpool_video.bench.models", "training-step time of backbones, SoftPool vs original pools"),
    "data": ("softpool_video.bench.data", "clips/s of our loaders vs pytorchvideo (pyav, decord)"),
    "retention": (
        "softpool_video.bench.retention",
        "information retention (PSNR/SSIM) of soft/max/avg pooling",
    ),
}


def _usage() -> str:
    lines = ["usage: softpool-bench SUBCOMMAND [options]", "", "subcommands:"]
    lines += [f"  {name:<10} {description}" for name, (_, description) in SUBCOMMANDS.items()]
    lines.append("\n`softpool-bench SUBCOMMAND --help` shows the options of one benchmark.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"softpool-bench: unknown subcommand {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
