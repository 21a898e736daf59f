"""The one compiled part: `shared.logs._rows` (see shared/logs/_rows.c), built where `pip install`
finds a C compiler and Python's headers. It is optional: without them the install goes on, and the
log writers take their pure-Python path (same bytes, slower NDJSON and `cursors=true`)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "shared.logs._rows",
            ["shared/logs/_rows.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
