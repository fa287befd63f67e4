"""The performance harness: `python -m benchmarks [--quick] [--json out.json] [--only name]`.

Every scenario runs on the real stack (embedded NATS and PostgreSQL, the emulators, the
services) and is reported next to raw baselines measured in the same run: see
`docs/performance.md`.
"""
