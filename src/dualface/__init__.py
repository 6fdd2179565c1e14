"""dualface: a face-swap studio built on the classic shared-encoder, per-identity-decoder autoencoder."""

__version__ = "0.1.0"
