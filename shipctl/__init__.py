"""shipctl: bulk shipping labels from a manifest, through EasyPost, safely and fast."""

__version__ = "0.1.0"
