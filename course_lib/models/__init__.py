"""Models of the course, one module per family: import from the submodule, e.g.
``from course_lib.models.vae import VAE``."""
