"""respin's engine: stages, runner, fingerprints, manifest. Knows no domain.

What a script or a plugin uses of it is offered by the `respin` package itself
(respin.load, respin.Runner, respin.Stage, ...).
"""

__version__ = "0.1.0"
