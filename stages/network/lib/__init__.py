"""The network stage's and commands' helpers: the model, its renderers, staging, the RPM."""
