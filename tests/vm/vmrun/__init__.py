"""The qemu guest runner behind `tests/vm/run`.

Split by concern so each piece can be read (and unit-tested) alone:
`cpio` writes archives, `rootfs` decides what goes into the guest,
`initramfs` assembles and caches the archives, `kernels` finds and fetches
Debian's cloud kernels, `guest` runs qemu and reads the exit marker, `cli`
ties them together.
"""
