"""Initrd images: inspect, extract safely, modify and repack them reproducibly."""
