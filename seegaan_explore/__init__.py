"""seegaan-explore: explore what a style-based generative adversarial autoencoder learned about chest radiographs."""

__version__ = "0.1.0"
