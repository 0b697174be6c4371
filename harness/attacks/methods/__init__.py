"""One file per registered attack (:mod:`harness.attacks.interface`)."""
