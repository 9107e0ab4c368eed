"""Bridge: the host side of ``firmware_bridge``, the serial link to a microcontroller.

* ``wire.py``: the wire format of ``firmware_bridge/WIRE.md`` in pure Python (COBS framing with a
  CRC-32 per frame, the streaming :class:`FrameDecoder`, one dataclass per message). The C library in
  ``firmware_bridge/`` implements the same format; golden frames in ``firmware_bridge/tests/golden``
  keep the two identical.
* ``image.py``: model images for the demo firmware's slots (``firmware_bridge/app``): the blob of a model
  compiled by ``--codegen --codegen-blob`` behind a header naming its graph; ``build_image``,
  ``read_image``, ``check_fits`` (does an image fit the device that sent this HELLO).

Importing this package is cheap: the standard library only.
"""

from __future__ import annotations

from .wire import Frame, FrameDecoder, WireError, decode_frame, decode_message, encode_frame, encode_message

__all__ = ["Frame", "FrameDecoder", "WireError", "decode_frame", "decode_message", "encode_frame",
           "encode_message"]
