"""Networks that come from outside the harness (NIR graphs, netx files) and go back out."""
