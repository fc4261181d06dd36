"""Files written through temporary names or by safetensors get the mode an ordinary ``open`` would give.

``tempfile.mkstemp`` / ``mkdtemp`` create 0600 files and 0700 folders, and safetensors' ``save_file`` writes 0600
files, whatever the umask: renamed into place, results, checkpoints and weights would be readable by their writer
only. These helpers set 0666 / 0777 less the process umask.
"""

from __future__ import annotations

import os
from pathlib import Path


def _umask() -> int:
    current = os.umask(0o022)  # reading the umask means setting it; it is put back at once
    os.umask(current)
    return current


def give_ordinary_mode(path: str | os.PathLike[str]) -> Path:
    """chmod ``path`` to what ``open`` (a file) or ``mkdir`` (a folder) would have created; returns it."""
    path = Path(path)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())
    return path
