"""Training runs with a run directory: the DDPM (`ddpm`) and the classifier (`classifier`)."""
