"""The initrd stages' and commands' helpers: cpio newc, compression, reading, writing, checking."""
