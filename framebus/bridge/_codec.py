"""Frames to bytes and back: raw (exact, any dtype) or JPEG (uint8 gray or 3-channel images)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import FrameEncoding
from ._wire import Header, WireError

__all__ = ["decode", "encode", "jpeg_capable"]


def jpeg_capable(shape: tuple[int, ...], dtype: np.dtype[Any]) -> bool:
    """True if JPEG can carry frames of this shape and dtype."""
    image = len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3))
    return image and dtype == np.uint8


def encode(array: np.ndarray[Any, Any], encoding: FrameEncoding, quality: int) -> bytes:
    """The frame as bytes: the one copy out of shared memory (raw) or the compressed image."""
    if encoding is FrameEncoding.RAW:
        return array.tobytes()
    import cv2

    ok, buffer = cv2.imencode(".jpg", array, (cv2.IMWRITE_JPEG_QUALITY, quality))
    if not ok:
        raise WireError(f"OpenCV could not JPEG-encode a {array.shape} {array.dtype} frame")
    return bytes(buffer)


def decode(payload: bytes, header: Header) -> np.ndarray[Any, Any]:
    """The frame the header describes; raw frames are a view on `payload`, not a copy."""
    if header.encoding is FrameEncoding.RAW:
        if len(payload) != header.nbytes():
            raise WireError(
                f"frame {header.seq}: payload is {len(payload)} bytes, "
                f"shape {header.shape} of {header.dtype} needs {header.nbytes()}"
            )
        return np.frombuffer(payload, header.dtype).reshape(header.shape)
    if not jpeg_capable(header.shape, header.dtype):
        raise WireError(f"frame {header.seq}: JPEG cannot carry shape {header.shape} of {header.dtype}")
    import cv2

    flag = cv2.IMREAD_GRAYSCALE if len(header.shape) == 2 or header.shape[2] == 1 else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(np.frombuffer(payload, np.uint8), flag)
    except cv2.error as exc:  # a payload OpenCV's decoder chokes on rather than refuses
        raise WireError(f"frame {header.seq}: not a JPEG image OpenCV can decode") from exc
    if image is None or image.size != int(np.prod(header.shape)):
        got = None if image is None else image.shape
        raise WireError(f"frame {header.seq}: JPEG decodes to {got}, the header says {header.shape}")
    return image.reshape(header.shape)
