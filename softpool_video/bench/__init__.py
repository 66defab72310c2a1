"""Benchmarks (`softpool-bench SUBCOMMAND`): each prints ratios measured side by side in one run."""
