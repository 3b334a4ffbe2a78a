"""convlayer: a Keras-exact Conv2D and the lesson's CNN, from first principles on NumPy."""

__version__ = "0.1.0"
