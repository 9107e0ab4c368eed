"""``edgeops.convert`` and ``edgeops.validate`` are packages you can call: one mechanism, edgeops._callable."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from edgeops._callable import CallablePackage


@pytest.mark.parametrize("name, function", [("convert", "edgeops.convert.api:convert"),
                                            ("validate", "edgeops.validate.core:validate")])
def test_the_package_is_the_module_and_calls_its_function(name, function):
    code = f"""
import sys, edgeops, edgeops.{name}
module, attr = "{function}".split(":")
__import__(module)
package = getattr(edgeops, "{name}")
assert package is sys.modules["edgeops.{name}"], package
assert type(package).__call__ is getattr(sys.modules[module], attr)
assert getattr(package, "{name}") is getattr(sys.modules[module], attr)
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_package_class_must_name_its_function():
    class Nameless(CallablePackage):
        pass

    sys.modules["edgeops_test_nameless"] = types.ModuleType("edgeops_test_nameless")
    try:
        with pytest.raises(TypeError, match="__call__"):
            Nameless.install("edgeops_test_nameless")
    finally:
        del sys.modules["edgeops_test_nameless"]


def test_install_makes_a_module_callable():
    def double(x: int) -> int:
        return 2 * x

    class Doubling(CallablePackage):
        __call__ = staticmethod(double)

    module = types.ModuleType("edgeops_test_doubling")
    sys.modules[module.__name__] = module
    try:
        Doubling.install(module.__name__)
        assert module(21) == 42 and isinstance(module, types.ModuleType)
    finally:
        del sys.modules[module.__name__]
