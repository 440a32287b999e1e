"""What a wrapper (engine plugin) may import: the async result ``callback`` and the data types."""

from ase_serving.wrapper.plugin import Plugin, PluginError, load_plugin
from ase_serving.wrapper.push import callback

__all__ = ["Plugin", "PluginError", "callback", "load_plugin"]
