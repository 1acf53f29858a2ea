"""Installing Debian packages a local server or tool needs (Redis; Chromium for the UI's browser tests), as root,
with the command a non-root user runs printed instead."""

from __future__ import annotations

import os
import shutil
import subprocess

from ma_ray.services.errors import ServiceError


def install_debian_packages(*packages: str, instead: str = "") -> None:
    """``apt-get install`` the packages (after ``apt-get update`` when the first try fails); ``ServiceError``
    naming the command, and ``instead`` (what else the user can do), when not root or apt-get fails."""
    apt = shutil.which("apt-get")
    names = " ".join(packages)
    if apt is None or os.geteuid() != 0:
        raise ServiceError(f"{names} not installed. Install with `sudo apt-get install {names}`{instead}.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode == 0:
        return
    subprocess.run([apt, "update", "-q"], env=env, capture_output=True, check=False)
    result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"apt-get install {names} failed:\n" + result.stderr[-2000:])
