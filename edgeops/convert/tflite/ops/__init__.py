"""One module per op family; importing this package registers every converter."""

from . import activation, compare, control, conv, elementwise, linear, norm, pool, recurrent, reduce, resize, shape  # noqa: F401
