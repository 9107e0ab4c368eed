"""Packages that are also their main function: ``edgeops.convert(...)`` and ``edgeops.validate(...)``.

``edgeops.convert`` is a package (``edgeops.convert.api``, ``edgeops.convert.from_torch``) and, called,
its function :func:`edgeops.convert.api.convert`; the same for ``edgeops.validate``. Python sets a
package as an attribute of its parent when it is imported, so the package object itself has to be
callable: :meth:`CallablePackage.install` gives the package's module a subclass of
:class:`CallablePackage` whose ``__call__`` is the plain function. That subclass is also what
``edgeops/__init__.py`` declares for the type checker, so a call is checked against the function's
own signature. This module is the one place that does it.
"""

from __future__ import annotations

import sys
import types

__all__ = ["CallablePackage"]


class CallablePackage(types.ModuleType):
    """Base of a package's module class; a subclass sets ``__call__ = staticmethod(the_function)``."""

    @classmethod
    def install(cls, name: str) -> None:
        """Make the module ``name`` (a package's ``__name__``) an instance of this class: callable."""
        if "__call__" not in vars(cls):
            raise TypeError(f"{cls.__name__} must set __call__ = staticmethod(the package's function)")
        sys.modules[name].__class__ = cls
