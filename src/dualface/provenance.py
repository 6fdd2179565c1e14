"""Labelling what dualface makes as synthetic. Every image it writes carries this PNG text metadata."""

from PIL import PngImagePlugin

from dualface import __version__

SYNTHETIC_NOTICE = "Synthetic image made with dualface (face swap). Not a real recording."


def png_info(kind: str) -> PngImagePlugin.PngInfo:
    """PNG text chunks that label an image as synthetic: `kind` says what it is (e.g. "training preview")."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", f"dualface {__version__}")
    info.add_text("dualface:synthetic", "true")
    info.add_text("Description", f"{SYNTHETIC_NOTICE} ({kind})")
    return info
