"""Ray's token authentication, made explicit.

Ray 2.60 turns token authentication on for a cluster whenever `~/.ray/auth_token` exists, and a
process joining a cluster sends the token only if it is told to. Left implicit, whether rezerv
works would depend on what some earlier `ray.init()` left in the home directory. So every
rezerv process that starts or joins Ray gets `RAY_AUTH_MODE=token` and the path of a token of
its own: the data directory's for `rezerv up`, a temporary one for tests and benchmarks. Token
mode stays on because Ray's GCS and raylet listen on every interface, not only on 127.0.0.1.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_FILE = "ray_auth_token"


def ensure_token(path: Path) -> Path:
    """Create the token file (mode 600) if it does not exist; returns its path."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path


def auth_env(token_path: Path) -> dict[str, str]:
    """Environment that makes Ray (server or client) use this token."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}


def use_token(token_path: Path) -> None:
    """Apply `auth_env` to this process, before `ray.init`."""
    os.environ.update(auth_env(ensure_token(token_path)))
    os.environ.pop("RAY_AUTH_TOKEN", None)
    import sys

    if "ray._raylet" in sys.modules:
        # Ray caches its configuration when first imported; refresh it as Ray itself does when it
        # turns token mode on (ray/_private/authentication/authentication_token_setup.py).
        from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
