"""Developer tools that are not part of the product: console screenshots, browser helper."""
