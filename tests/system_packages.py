"""Debian packages some tests need (Chromium for the browser test, opus-tools and codec2 for the
codec baselines), installed with apt-get when missing; a test is skipped only when that truly
cannot happen, and says why."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def apt_install(*packages: str) -> str:
    """Install Debian packages; '' when done, else why not."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available on this system"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return f"installing needs root (apt-get install -y {' '.join(packages)})"
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    cmd = ["apt-get", "install", "-y", "-qq", *packages]
    for attempt in range(2):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        except subprocess.TimeoutExpired:
            return "apt-get install timed out"
        if done.returncode == 0:
            return ""
        if attempt == 0:  # the package lists may be missing or stale
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, env=env)
    return f"apt-get install {' '.join(packages)} failed: {done.stderr.strip()[-300:]}"


def ensure_programs(package: str, *programs: str, purpose: str) -> dict[str, str]:
    """Paths of ``programs`` (from Debian ``package``, installed when missing), or skip the test."""
    if not all(shutil.which(p) for p in programs):
        why = apt_install(package)
        missing = [p for p in programs if not shutil.which(p)]
        if missing:
            pytest.skip(f"{purpose} needs {', '.join(missing)} (Debian {package}) and it could not be installed: "
                        f"{why or 'not found after installing'}")
    return {p: shutil.which(p) for p in programs}
