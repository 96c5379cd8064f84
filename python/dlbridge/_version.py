"""The version of dlbridge, written in this one place.

``setup.py`` (the wheel) and ``build.sbt`` (the jar, which carries it as the
resource ``dlbridge/version.properties``) both read it from this file.
"""
__version__ = "0.1.0"
