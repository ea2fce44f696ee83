"""Every port (a Protocol for something outside the process) is declared in engine/ports.py.

The rule of that module's docstring, checked on the source: a Protocol declared anywhere else in
the product's packages must be one of the few seams below, each inside one component, with the
reason it is not a port.
"""

from __future__ import annotations

import ast
from pathlib import Path

import engine.ports

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "api", "actors", "stack")  # the product; the load-test tooling has its own seams

NOT_PORTS = {
    # what GenerationalConsumer needs of a MessageConsumer: two parts of one adapter
    ("engine/adapters/kafka_generations.py", "GenerationReader"),
    # a projection's runner as the rebuild command drives it: both live in the adapters
    ("engine/adapters/pg_rebuild.py", "Runner"),
    # the API's checks for /readyz over the adapters it already holds
    ("api/dependencies.py", "Dependency"),
    # what `rezerv up` starts and stops: processes of the stack itself
    ("stack/up.py", "Stoppable"),
    ("stack/up.py", "_Restartable"),
}


def _protocols(path: Path) -> list[str]:
    """The classes declared in `path` with Protocol (or Protocol[...]) among their bases."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for base in node.bases:
            target = base.value if isinstance(base, ast.Subscript) else base
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name == "Protocol":
                found.append(node.name)
    return found


def _declared_outside_ports() -> set[tuple[str, str]]:
    ports = Path(engine.ports.__file__).resolve()
    out = set()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.resolve() == ports:
                continue
            out |= {(str(path.relative_to(ROOT)), name) for name in _protocols(path)}
    return out


def test_no_protocol_is_declared_outside_engine_ports_except_the_named_seams() -> None:
    assert _declared_outside_ports() == NOT_PORTS


def test_the_ports_module_declares_the_stores_the_services_and_the_api_depend_on() -> None:
    declared = set(_protocols(Path(engine.ports.__file__)))
    wanted = {
        "EventStore",
        "Fencing",
        "LogReader",
        "Publisher",
        "AccountStore",
        "FailureCounter",
        "TopupStore",
        "PaymentProvider",
        "NotificationStore",
        "CatalogReader",
        "RevocationStore",
        "BookingsRepository",
        "MoneyReads",
        "SalesReadModel",
        "PendingSagas",
    }
    assert wanted <= declared, wanted - declared


def test_a_protocol_declared_outside_the_ports_module_is_found(tmp_path: Path) -> None:
    module = tmp_path / "stray.py"
    module.write_text(
        "from typing import Protocol\nimport typing\n\n"
        "class Store(Protocol):\n    async def get(self) -> int: ...\n\n"
        "class Generic(typing.Protocol[int]):\n    pass\n\n"
        "class Plain:\n    pass\n"
    )
    assert _protocols(module) == ["Store", "Generic"]
