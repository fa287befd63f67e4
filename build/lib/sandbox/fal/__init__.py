"""FAL AI emulator: queue, storage, signed webhooks and faults, for the unmodified fal-client."""

from sandbox.fal.emulator import FalEmulator

__all__ = ["FalEmulator"]
