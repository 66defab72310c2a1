"""The version of softpool_video, in one place.

setup.py/pyproject.toml read this file as text (it must stay a single literal assignment), so building
never imports the package; ``softpool_video.__version__`` and every tool's ``--version`` import it.
"""

__version__ = "0.2.0"
