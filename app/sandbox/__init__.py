"""Running plugin WebAssembly components: engine and compile cache, warm instance pools, limits,
the host API (on the one record service) and the crash policy.

Public face: `Sandbox` (one per process, `app.state.sandbox`), `GuestFailure`, `CallStats`.
"""

from app.sandbox.engine import INTERFACE_VERSION, ComponentRejected, check_component_bytes
from app.sandbox.outcomes import CallStats, GuestFailure
from app.sandbox.runner import Sandbox

__all__ = [
    "INTERFACE_VERSION",
    "CallStats",
    "ComponentRejected",
    "GuestFailure",
    "Sandbox",
    "check_component_bytes",
]
