"""respin's built-in stages, one domain per subpackage (kernel, initrd, network)."""
