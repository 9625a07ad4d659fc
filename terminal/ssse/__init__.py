"""The social security application (SSSE) of China's social security card."""
