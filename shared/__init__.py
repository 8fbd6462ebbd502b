"""Code that more than one Swatch service uses: settings, images, the pattern model."""
