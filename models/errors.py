"""Errors raised by the models package, in one hierarchy."""


class ModelsError(Exception):
    """Base class for everything the models package raises on purpose."""


class NotAVolumeError(ModelsError):
    """The instances of a series do not form one regular 3D volume; the message says why."""


class PipelineNotFoundError(ModelsError):
    """No pipeline of that name is registered."""


class BundleError(ModelsError):
    """A MONAI bundle lacks what a pipeline needs; the message names what and where."""
