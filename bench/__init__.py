"""WA Monitor benchmarks: `python -m bench` runs them all and writes a markdown table."""
