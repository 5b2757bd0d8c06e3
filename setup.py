"""Builds the host kernel library (kernels_arm/src) into the package as
edgekit/kernels/_ek_kernels*.so: a plain C shared library loaded with ctypes
(edgekit.kernels), compiled at install time, never on first use."""

from setuptools import Extension, setup

KERNELS = "kernels_arm"

setup(ext_modules=[Extension(
    "edgekit.kernels._ek_kernels",
    sources=[f"{KERNELS}/src/{name}.c" for name in ("ek_scalar", "ek_autovec", "ek_neon",
                                                    "ek_x86", "ek_compose", "ek_dispatch")]
    + [f"{KERNELS}/runtime/ekr_runtime.c"],
    include_dirs=[f"{KERNELS}/include", f"{KERNELS}/src", f"{KERNELS}/runtime"],
    depends=[f"{KERNELS}/include/ek_kernels.h", f"{KERNELS}/src/ek_common.h",
             f"{KERNELS}/src/ek_portable.inc", f"{KERNELS}/src/ek_compose.inc",
             f"{KERNELS}/include/ekr.h",
             f"{KERNELS}/runtime/ekr_format.h"],
    extra_compile_args=["-O3", "-std=c11"],
    libraries=["m", "pthread"],
    py_limited_api=False,
)])
