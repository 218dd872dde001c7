"""Only here because cffi's out-of-line build hooks into setup(); metadata lives in pyproject.toml."""
from setuptools import setup

setup(cffi_modules=["csrc/build_shim.py:ffibuilder"])
