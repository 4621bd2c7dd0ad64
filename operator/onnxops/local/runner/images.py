"""Image -> local command mapping: which images the local runtime can "run", and the argv they run.

Our images (`*/onnxops-trainer:*`, `*/onnxops-serving:*`, `*/onnxops-operator:*`) contain this very Python
package, so their containers run in the local Python environment: the container's `command`/`args` are
used as given, with `python` mapped to the runtime's interpreter. Any other image cannot be run locally
(`None` from `lookup`): the pod's container waits with `ErrImagePull`, then `ImagePullBackOff`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LocalImage:
    """What the image would contain: its ENTRYPOINT and CMD (used when the container leaves them out)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


OUR_IMAGES: dict[str, LocalImage] = {
    "onnxops-trainer": LocalImage(("python", "-m", "onnxops.trainer")),
    "onnxops-serving": LocalImage(("python", "-m", "onnxops.serving")),
    "onnxops-operator": LocalImage(("python", "-m", "onnxops", "operator")),
}

_OUR_IMAGE_RE = re.compile(
    r"^(?:[^@]*/)?(?P<name>onnxops-(?:trainer|serving|operator))(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_PYTHON_RE = re.compile(r"^(?:.*/)?python(?:3(?:\.\d+)?)?$")


def lookup(image: str, extra_images: Mapping[str, LocalImage] | None = None) -> LocalImage | None:
    """The local stand-in for `image`, or None when the image cannot be run locally."""
    if extra_images and image in extra_images:
        return extra_images[image]
    m = _OUR_IMAGE_RE.match(image or "")
    return OUR_IMAGES[m.group("name")] if m else None


def container_argv(img: LocalImage, command: Sequence[str] | None, args: Sequence[str] | None) -> list[str]:
    """Kubernetes semantics: `command` replaces ENTRYPOINT (and drops CMD); `args` replaces CMD."""
    if command:
        return [*command, *(args or [])]
    return [*img.entrypoint, *(args if args else img.cmd)]


def localize_argv(argv: Sequence[str], python: str) -> list[str]:
    """Map the image's interpreter (`python`, `python3`, `/usr/local/bin/python3.11`) to the local one."""
    if not argv:
        raise ValueError("container has neither command nor args and the image has no entrypoint")
    head, *rest = argv
    if _PYTHON_RE.match(head):
        return [python, *rest]
    if head == "onnxops":  # the console script our images install
        return [python, "-m", "onnxops", *rest]
    return list(argv)
